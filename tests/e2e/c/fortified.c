/* Every fortified function glibc exports, called as glibc-built code calls
 * it: compiled with gcc -O2 -D_FORTIFY_SOURCE=2 against glibc's headers,
 * which turn the calls below into __*_chk calls (the sizes are not known
 * at compile time, so the checks stay). The few the headers cannot
 * produce (gets left C11; obstacks) are called by name. Linked into a
 * static executable with musl, fortified_failures() runs each once and
 * returns how many gave a wrong answer; fortified_overflow() overflows a
 * buffer, which must end the program. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>
#include <wchar.h>

/* Declared by glibc's headers with _FORTIFY_SOURCE, called by name here. */
extern char *__gets_chk(char *, size_t);
struct obstack;

static volatile size_t opaque_four = 4;   /* sizes the compiler cannot see */
static char text_bytes[] = "abc";
static char *volatile text_address = text_bytes;
#define text ((const char *)text_address)  /* contents the compiler cannot see */
static wchar_t wide[] = L"abc";
static int failures;

static void expect(int ok, const char *what)
{
    if (!ok) { failures++; fprintf(stderr, "fortified: %s gave a wrong answer\n", what); }
}

static int via_vsnprintf(char *buf, size_t n, const char *fmt, ...)
{ va_list ap; va_start(ap, fmt); int r = vsnprintf(buf, n, fmt, ap); va_end(ap); return r; }
static int via_vsprintf(char *buf, const char *fmt, ...)
{ va_list ap; va_start(ap, fmt); int r = vsprintf(buf, fmt, ap); va_end(ap); return r; }
static int via_vasprintf(char **out, const char *fmt, ...)
{ va_list ap; va_start(ap, fmt); int r = vasprintf(out, fmt, ap); va_end(ap); return r; }
static int via_vdprintf(int fd, const char *fmt, ...)
{ va_list ap; va_start(ap, fmt); int r = vdprintf(fd, fmt, ap); va_end(ap); return r; }
static int via_vfprintf(FILE *f, const char *fmt, ...)
{ va_list ap; va_start(ap, fmt); int r = vfprintf(f, fmt, ap); va_end(ap); return r; }
/* With extern inlines (-O2) the headers make vprintf __vfprintf_chk. */
static int via_vprintf(const char *fmt, ...)
{ va_list ap; va_start(ap, fmt); int r = __vprintf_chk(1, fmt, ap); va_end(ap); return r; }
static int via_vswprintf(wchar_t *buf, size_t n, const wchar_t *fmt, ...)
{ va_list ap; va_start(ap, fmt); int r = vswprintf(buf, n, fmt, ap); va_end(ap); return r; }
static int via_vfwprintf(FILE *f, const wchar_t *fmt, ...)
{ va_list ap; va_start(ap, fmt); int r = vfwprintf(f, fmt, ap); va_end(ap); return r; }
static int via_vwprintf(const wchar_t *fmt, ...)
{ va_list ap; va_start(ap, fmt); int r = vwprintf(fmt, ap); va_end(ap); return r; }
static void via_vsyslog(const char *fmt, ...)
{ va_list ap; va_start(ap, fmt); vsyslog(LOG_DEBUG, fmt, ap); va_end(ap); }
static int via_obstack_vprintf(const char *fmt, ...)
{ va_list ap; va_start(ap, fmt); int r = __obstack_vprintf_chk((struct obstack *)0, 1, fmt, ap); va_end(ap); return r; }

/* A string whose length the compiler does not follow into append(). */
static char joined[16];
__attribute__((noinline)) static void append(void) { strcat(joined, text); }

static void memory(void)
{
    char buf[16], out[16];
    size_t n = opaque_four;
    memset(buf, 'x', n); buf[n] = 0;
    expect(strcmp(buf, "xxxx") == 0, "memset");
    memcpy(out, buf, n + 1);
    expect(strcmp(out, "xxxx") == 0, "memcpy");
    memmove(out + 1, out, n);
    expect(memcmp(out, "xxxxx", 5) == 0, "memmove");
    expect(mempcpy(out, text, n - 1) == out + 3, "mempcpy");
    explicit_bzero(out, n);
    expect(out[0] == 0 && out[3] == 0, "explicit_bzero");
    strcpy(buf, text);
    expect(strcmp(buf, "abc") == 0, "strcpy");
    expect(stpcpy(buf, text) == buf + 3, "stpcpy");
    strncpy(buf, text, n);
    expect(strcmp(buf, "abc") == 0, "strncpy");
    expect(stpncpy(buf, text, n) == buf + 3, "stpncpy");
    strcpy(joined, text);
    append();
    expect(strcmp(joined, "abcabc") == 0, "strcat");
    strncat(joined, text, n);
    expect(strcmp(joined, "abcabcabc") == 0, "strncat");
}

static void wide_memory(void)
{
    wchar_t buf[16], out[16];
    size_t n = opaque_four;
    wmemset(buf, L'x', n); buf[n] = 0;
    expect(wcscmp(buf, L"xxxx") == 0, "wmemset");
    wmemcpy(out, buf, n + 1);
    expect(wcscmp(out, L"xxxx") == 0, "wmemcpy");
    wmemmove(out + 1, out, n);
    expect(wmemcmp(out, L"xxxxx", 5) == 0, "wmemmove");
    expect(wmempcpy(out, wide, n - 1) == out + 3, "wmempcpy");
    wcscpy(buf, wide);
    expect(wcscmp(buf, L"abc") == 0, "wcscpy");
    expect(wcpcpy(buf, wide) == buf + 3, "wcpcpy");
    wcsncpy(buf, wide, n);
    expect(wcscmp(buf, L"abc") == 0, "wcsncpy");
    expect(wcpncpy(buf, wide, n) == buf + 3, "wcpncpy");
    wcscat(buf, wide);
    expect(wcscmp(buf, L"abcabc") == 0, "wcscat");
    wcsncat(buf, wide, n);
    expect(wcscmp(buf, L"abcabcabc") == 0, "wcsncat");
}

static void conversions(void)
{
    wchar_t w[16];
    /* Under MB_LEN_MAX, so wcrtomb and wctomb are checked; at least
     * MB_CUR_MAX (glibc's 6 for UTF-8, musl's 4), so they pass. */
    char c[16], small[6];
    size_t n = opaque_four;
    const char *from = text;
    const wchar_t *wfrom = wide;
    mbstate_t state;
    expect(mbstowcs(w, text, n) == 3 && wcscmp(w, L"abc") == 0, "mbstowcs");
    memset(&state, 0, sizeof state);
    expect(mbsrtowcs(w, &from, n, &state) == 3, "mbsrtowcs");
    from = text;
    memset(&state, 0, sizeof state);
    expect(mbsnrtowcs(w, &from, 2, n, &state) == 2, "mbsnrtowcs");
    expect(wcstombs(c, wide, n) == 3 && strcmp(c, "abc") == 0, "wcstombs");
    memset(&state, 0, sizeof state);
    expect(wcsrtombs(c, &wfrom, n, &state) == 3, "wcsrtombs");
    wfrom = wide;
    memset(&state, 0, sizeof state);
    expect(wcsnrtombs(c, &wfrom, 2, n, &state) == 2, "wcsnrtombs");
    memset(&state, 0, sizeof state);
    expect(wcrtomb(small, L'z', &state) == 1 && small[0] == 'z', "wcrtomb");
    expect(wctomb(small, L'y') == 1 && small[0] == 'y', "wctomb");
}

static void formatted(void)
{
    char buf[32], *allocated = 0;
    wchar_t wbuf[32];
    size_t n = opaque_four * 8;
    int null = open("/dev/null", O_WRONLY);
    FILE *sink = fopen("/dev/null", "w");
    expect(sprintf(buf, "%s-%d", text, 7) == 5 && strcmp(buf, "abc-7") == 0, "sprintf");
    expect(via_vsprintf(buf, "%s+%d", text, 8) == 5 && strcmp(buf, "abc+8") == 0, "vsprintf");
    expect(snprintf(buf, n, "%d", 42) == 2 && strcmp(buf, "42") == 0, "snprintf");
    expect(via_vsnprintf(buf, n, "%d", 43) == 2 && strcmp(buf, "43") == 0, "vsnprintf");
    expect(asprintf(&allocated, "%d", 44) == 2 && strcmp(allocated, "44") == 0, "asprintf");
    free(allocated);
    expect(via_vasprintf(&allocated, "%d", 45) == 2 && strcmp(allocated, "45") == 0, "vasprintf");
    free(allocated);
    expect(dprintf(null, "%d", 46) == 2, "dprintf");
    expect(via_vdprintf(null, "%d", 47) == 2, "vdprintf");
    expect(fprintf(sink, "%d", 48) == 2, "fprintf");
    expect(via_vfprintf(sink, "%d", 49) == 2, "vfprintf");
    expect(printf("%s", "") == 0, "printf");
    expect(via_vprintf("%s", "") == 0, "vprintf");
    expect(swprintf(wbuf, n, L"%d", 50) == 2 && wcscmp(wbuf, L"50") == 0, "swprintf");
    expect(via_vswprintf(wbuf, n, L"%d", 51) == 2 && wcscmp(wbuf, L"51") == 0, "vswprintf");
    FILE *wide_sink = fopen("/dev/null", "w");  /* a stream is bytes or wide, not both */
    expect(fwprintf(wide_sink, L"%d", 52) == 2, "fwprintf");
    expect(via_vfwprintf(wide_sink, L"%d", 53) == 2, "vfwprintf");
    fclose(wide_sink);
    syslog(LOG_DEBUG, "%s", "fortified");
    via_vsyslog("%s", "fortified");
    expect(__obstack_printf_chk((struct obstack *)0, 1, "%d", 1) == -1 && errno == ENOSYS, "obstack_printf");
    expect(via_obstack_vprintf("%d", 1) == -1 && errno == ENOSYS, "obstack_vprintf");
    fclose(sink);
    close(null);
}

static void wide_stdout(void)
{   /* Wide output to stdout makes it a wide stream: done last, to nothing. */
    expect(freopen("/dev/null", "w", stdout) != 0, "freopen");
    expect(wprintf(L"%d", 54) == 2, "wprintf");
    expect(via_vwprintf(L"%d", 55) == 2, "vwprintf");
}

static void input(void)
{
    char buf[64], path[PATH_MAX];
    wchar_t wbuf[16];
    size_t n = opaque_four * 4;
    int fds[2];
    FILE *f = fopen("/proc/sys/kernel/ostype", "r");
    expect(f && fgets(buf, n, f) != 0, "fgets");
    rewind(f);
    expect(fgets_unlocked(buf, n, f) != 0, "fgets_unlocked");
    rewind(f);
    expect(fread(buf, 1, n, f) > 0, "fread");
    rewind(f);
    expect(fread_unlocked(buf, 1, n, f) > 0, "fread_unlocked");
    fclose(f);
    f = fopen("/proc/sys/kernel/ostype", "r");
    expect(fgetws(wbuf, opaque_four, f) != 0, "fgetws");
    expect(fgetws_unlocked(wbuf, opaque_four, f) != 0, "fgetws_unlocked");
    fclose(f);
    expect(freopen("/proc/sys/kernel/ostype", "r", stdin) != 0, "freopen stdin");
    expect(__gets_chk(buf, sizeof buf) == buf, "gets");
    int fd = open("/proc/sys/kernel/ostype", O_RDONLY);
    expect(read(fd, buf, n) > 0, "read");
    expect(pread(fd, buf, n, 0) > 0, "pread");
    expect(pread64(fd, buf, n, 0) > 0, "pread64");
    close(fd);
    expect(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0 && write(fds[0], "hey", 3) == 3,
           "socketpair");
    expect(recv(fds[1], buf, n, 0) == 3, "recv");
    expect(write(fds[0], "you", 3) == 3 && recvfrom(fds[1], buf, n, 0, 0, 0) == 3, "recvfrom");
    close(fds[0]); close(fds[1]);
    expect(readlink("/proc/self/exe", path, n) > 0, "readlink");
    expect(readlinkat(AT_FDCWD, "/proc/self/exe", path, n) > 0, "readlinkat");
    expect(getcwd(path, n * 64) != 0, "getcwd");
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    expect(getwd(path) != 0, "getwd");
    expect(realpath(".", path) != 0, "realpath");
    expect(confstr(_CS_PATH, buf, n) > 0, "confstr");
    gid_t groups[8];
    expect(getgroups((int)opaque_four, groups) >= 0 || errno == EINVAL, "getgroups");
    expect(gethostname(buf, n) == 0 || errno == ENAMETOOLONG, "gethostname");
    expect(getdomainname(buf, n) == 0 || errno == EINVAL, "getdomainname");
    expect(getlogin_r(buf, n) >= 0, "getlogin_r");
    expect(ttyname_r(-1, buf, n) != 0, "ttyname_r");
    expect(ptsname_r(-1, buf, n) != 0, "ptsname_r");
    struct pollfd polled[2] = {{.fd = -1}, {.fd = -1}};
    expect(poll(polled, opaque_four / 2, 0) == 0, "poll");
    struct timespec now = {0, 0};
    expect(ppoll(polled, opaque_four / 2, &now, 0) == 0, "ppoll");
    fd_set set;
    FD_ZERO(&set);
    int some_fd = (int)opaque_four;
    FD_SET(some_fd, &set);
    expect(FD_ISSET(some_fd, &set), "FD_SET");
}

static jmp_buf back;
static void jump(void) { longjmp(back, 7); }

static void nonlocal(void)
{
    int value = setjmp(back);
    if (value == 0) jump();
    expect(value == 7, "longjmp");
}

int fortified_failures(void)
{
    failures = 0;
    setlocale(LC_ALL, "C.UTF-8");
    memory();
    wide_memory();
    conversions();
    formatted();
    input();
    nonlocal();
    wide_stdout();
    return failures;
}

/* Copies `n` bytes into a buffer of 8: more must end the program. */
int fortified_overflow(int n)
{
    char small[8];
    volatile size_t length = (size_t)n;
    memset(small, 'o', length);
    return small[0];
}
