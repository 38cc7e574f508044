"""The canonical process of a release dump and its private directory:
fixed addresses, stack limit and umask; and PARENT/ID, a path the same
for every user, seen only by the dump (canonical.py says why)."""
import errno
import fcntl
import functools
import os
import resource
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path

from ..errors import LispFailure
from ..scratch import scratch_dir
from ..settings import RELEASE_DIR_VARIABLE

# Where release dumps run. The path shapes the image's bytes, so it is the
# same on every machine unless LISPBUILD_RELEASE_DIR says otherwise (a
# release's manifest records it, and `doit verify` rebuilds with it).
DEFAULT_RELEASE_DIR = "/tmp/lispbuild-release"

# personality(2) flag: no address-space randomisation (setarch -R).
ADDR_NO_RANDOMIZE = 0x0040000
CANONICAL_STACK_LIMIT = 8 << 20

CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 4096, 16384, 1 << 18


@functools.cache
def _c():
    """The C library (ctypes is loaded only by builds that release)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    return libc


def _check(result: int, what: str):
    if result == -1:
        import ctypes
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")


def _canonical_process():
    """In the child, before exec: fixed addresses (shared libraries, the
    C heap and the stack, which foreign pointers in the image point
    into), a fixed stack limit (it moves where the kernel maps memory),
    a fixed umask."""
    current = _c().personality(0xFFFFFFFF)
    _check(current, "personality")
    _check(_c().personality(current | ADDR_NO_RANDOMIZE), "personality(ADDR_NO_RANDOMIZE)")
    resource.setrlimit(resource.RLIMIT_STACK, (CANONICAL_STACK_LIMIT, CANONICAL_STACK_LIMIT))
    os.umask(0o022)


# --- a private PARENT/ID ---------------------------------------------------

def hidden_directory(visible: Path) -> Path:
    """The directory that an empty tmpfs covers in the dump's namespace:
    the nearest existing one above PARENT."""
    hidden = visible.parent.parent
    while not hidden.is_dir():
        hidden = hidden.parent
    return hidden


def _enter_namespace(uid: int, gid: int):
    """unshare a mount namespace (with a user namespace when not root, or
    when root may not: a container), mapping the user to itself."""
    if uid == 0 and _c().unshare(CLONE_NEWNS) == 0:
        return
    _check(_c().unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                       ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


def _private_view(uid: int, gid: int, hidden: Path, visible: Path, source: Path | None):
    """In a child: a mount namespace where `hidden` is an empty tmpfs and
    the directory `source` is mounted at `visible`, the working directory."""
    _enter_namespace(uid, gid)
    _check(_c().mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    # Opened in the new namespace (a bind mount's source must be in it),
    # before the tmpfs hides it.
    fd = os.open(source, os.O_PATH | os.O_DIRECTORY) if source is not None else None
    _check(_c().mount(b"tmpfs", bytes(hidden), b"tmpfs", MS_NOSUID | MS_NODEV, b"mode=0755"),
           f"mount tmpfs on {hidden}")
    if fd is None:
        return
    os.makedirs(visible, 0o755)
    _check(_c().mount(f"/proc/self/fd/{fd}".encode(), bytes(visible), None,
                      MS_BIND | MS_REC, None), f"mount --bind on {visible}")
    os.close(fd)
    os.chdir(visible)


_namespaces: dict[Path, bool] = {}


def namespaces_work(hidden: Path) -> bool:
    """Whether this process may make the private view (tried once, in a
    child: user namespaces may be off, or allowed without mounts)."""
    if hidden not in _namespaces:
        uid, gid = os.getuid(), os.getgid()
        _c()  # loaded here, not in the child
        pid = os.fork()
        if pid == 0:
            try:
                _private_view(uid, gid, hidden, hidden, None)
                os._exit(0)
            except BaseException:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        _namespaces[hidden] = os.waitstatus_to_exitcode(status) == 0
    return _namespaces[hidden]


def _refuse(path: Path, why: str):
    raise LispFailure(f"release dump directory {path}: {why}; remove it, or set "
                      f"{RELEASE_DIR_VARIABLE} to a directory of your own (it is part of the "
                      f"image's bytes)")


def _check_parent(parent: Path) -> bool:
    """PARENT exists, as a real directory that only we or root can change,
    or that is sticky (/tmp's way: nobody can replace another's entries).
    True if it was made here (then it is removed again when empty)."""
    made = False
    try:
        os.mkdir(parent, 0o700)
        made = True
    except FileExistsError:
        pass
    info = os.lstat(parent)
    if not stat.S_ISDIR(info.st_mode):
        _refuse(parent, "it is not a directory (a link?)")
    if info.st_uid not in (0, os.getuid()):
        _refuse(parent, f"it belongs to another user (uid {info.st_uid})")
    if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
        _refuse(parent, "others may write to it and it is not sticky")
    return made


def _open_own_directory(path: Path) -> int | None:
    """A locked descriptor of the directory `path`, made here if missing,
    once it is ours alone; None if the build that held it removed it."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            _refuse(path, "it is not a directory (a link?)")
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        info, now = os.fstat(fd), _lstat(path)
        if now is None or (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
            os.close(fd)
            return None
        if info.st_uid != os.getuid() or info.st_mode & 0o077:
            _refuse(path, f"it was made by another user (uid {info.st_uid}) or is open to "
                          f"others (mode {stat.S_IMODE(info.st_mode):o})")
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def claimed_directory(visible: Path):
    """PARENT/ID made for this dump alone (mode 0700, ours), where no
    private namespace can be made; held under a lock on the directory
    itself (another build of the same request waits), removed at the end
    (and PARENT, if it was made here and is empty). What another user put
    there fails the dump, naming it."""
    made = _check_parent(visible.parent)
    fd = None
    while fd is None:
        fd = _open_own_directory(visible)
    try:
        _empty(visible)
        yield
    finally:
        shutil.rmtree(visible, ignore_errors=True)
        os.close(fd)
        if made:
            try:
                os.rmdir(visible.parent)
            except OSError:
                pass


def _lstat(path: Path):
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _empty(directory: Path):
    for entry in os.scandir(directory):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


class DumpDirectory:
    """Where a release dump's files are (`real`), and how its process
    comes to see them at `visible` (`preexec`): through a private view
    that hides `hidden`, or (hidden None) where they are."""

    def __init__(self, real: Path, visible: Path, hidden: Path | None):
        self.real, self.visible, self.hidden = real, visible, hidden

    def preexec(self, uid: int, gid: int):
        _canonical_process()
        if self.hidden is not None:
            _private_view(uid, gid, self.hidden, self.visible, self.real)
        else:
            os.chdir(self.visible)


@contextmanager
def dump_directory(build: Path, visible: Path):
    """A DumpDirectory for one dump, gone when the block ends."""
    hidden = hidden_directory(visible)
    if namespaces_work(hidden):
        with scratch_dir(build, "release-") as real:
            yield DumpDirectory(Path(real), visible, hidden)
    else:
        with claimed_directory(visible):
            yield DumpDirectory(visible, visible, None)
