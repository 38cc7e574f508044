"""Release dumps: a fresh SBCL in a process that is the same whoever
starts it, wherever, whenever, so the image it saves is the same bytes.

SBCL allocates strings for its working directory and for every path it
loads, and hash codes (of types, of generic functions) mix in the next
allocation address: a longer project path moves them all. So the dump
runs in PARENT/ID (release_directory(), ID a digest of the request),
holding copies of what it loads at their paths relative to the project
root; every path it is given is relative, or inside that directory. The
environment, arguments, umask, stack limit and addresses (randomisation
off) are fixed too, and so is what SBCL would read from /dev/urandom for
a random state made while loading (seeded from the request's digest,
driver.lisp). Directory listings come in name order (sorteddir.c,
preloaded), whatever order the file system keeps.

PARENT/ID is the same path for every user, so it must not be a directory
that anyone else can reach. The dump runs in a mount namespace of its
own (a user namespace too when not root): there an empty tmpfs hides the
directory above PARENT (/tmp), and the build's own scratch directory is
mounted at PARENT/ID. Nothing is created in the shared directory, nothing
another user put there is seen, and nothing is left when the dump ends.
Where the kernel allows no namespace (user namespaces turned off, a
container's seccomp profile), PARENT/ID itself is created, owned by the
user, mode 0700, after checking that nobody else controls PARENT; a
directory or link of another user's there fails the task, naming it.
"""
import errno
import functools
import fcntl
import os
import resource
import shutil
import stat
import subprocess
from contextlib import contextmanager
from pathlib import Path

from ..digest import digest_bytes
from .driver import (LispJob, finished_job, job_form, lisp_plist, sorted_listings_action,
                     support_fasls, wait_while_owned)
from ..errors import LispFailure
from ..action import Context
from ..rebuild import ensure
from ..scratch import scratch_dir
from ..steps import SHARED_LIBRARIES
from ..toolchain import find_sbcl

# Where release dumps run. The path shapes the image's bytes, so it is the
# same on every machine unless LISPBUILD_RELEASE_DIR says otherwise (a
# release's manifest records it, and `doit verify` rebuilds with it).
RELEASE_DIR_VARIABLE = "LISPBUILD_RELEASE_DIR"
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


def release_directory() -> str:
    return os.environ.get(RELEASE_DIR_VARIABLE) or DEFAULT_RELEASE_DIR


def canonical_environment(preload: Path, shared_libraries: Path) -> dict:
    """All a release dump's SBCL sees of the environment: the same for
    every user, shell and machine (`preload` and `shared_libraries`, the
    project's C libraries, are in the canonical directory)."""
    return {"PATH": "/usr/bin:/bin", "SBCL_HOME": str(find_sbcl().core.parent),
            "HOME": "/nonexistent", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC",
            "LD_PRELOAD": str(preload), "LD_LIBRARY_PATH": str(shared_libraries)}


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


# Not copied with an .asd file's directory.
_NOT_SOURCES = ("build", "cache", "dist")


class CanonicalSbcl:
    """Each job in a fresh SBCL, in the canonical process of the module's
    doc, under the directory the job's hints name (release_directory)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    @staticmethod
    def _check_paths(parent: Path, steps):
        if not parent.is_absolute() or any(c in str(parent) for c in "*?["):
            raise LispFailure(f"{RELEASE_DIR_VARIABLE}={str(parent)!r}: give an absolute "
                              f"path without * ? or [ (SBCL reads them as wildcards)")
        hidden = hidden_directory(parent / "x")
        if hidden == Path("/"):
            raise LispFailure(f"{RELEASE_DIR_VARIABLE}={str(parent)!r}: give a directory "
                              f"below another than / (the dump hides the one above it)")
        sbcl = find_sbcl()
        read_where_they_are = [sbcl.program, sbcl.core] + [
            Path(path) for kind, *rest in steps if kind in ("load", "asdf")
            for path in [rest[0] if kind == "load" else rest[1]] if os.path.isabs(path)]
        for path in read_where_they_are:
            if path.is_relative_to(hidden):
                raise LispFailure(f"{path}: a release dump cannot read it, since it hides "
                                  f"{hidden} (the directory above {RELEASE_DIR_VARIABLE}="
                                  f"{parent}): set {RELEASE_DIR_VARIABLE} elsewhere")

    def run(self, job: LispJob) -> str:
        steps = job.state.steps()
        parent = Path(job.hints["release_directory"])
        self._check_paths(parent, steps)
        support = support_fasls(self.ctx)
        listings = sorted_listings_action()
        ensure(listings, self.ctx)
        outputs = {name: value for name, value in job.arguments.items()
                   if isinstance(value, Path)}
        arguments = {**job.arguments, **{name: Path("out", value.name)
                                         for name, value in outputs.items()}}
        form = job_form(LispJob(job.task, job.command, job.state, arguments, job.product),
                        steps, Path("out/diagnostics.txt"))
        seed = digest_bytes(form.encode())
        visible = parent / seed[:16]
        uid, gid = os.getuid(), os.getgid()
        with dump_directory(self.ctx.build, visible) as where:
            here = where.real
            self._copy_inputs(steps, support, here)
            shutil.copyfile(self.ctx.root / listings.outputs["library"],
                            here / "lispbuild/sorteddir.so")
            settings = {"asdf": "lispbuild/asdf.fasl",
                        "asdf_support": "lispbuild/asdf-support.fasl",
                        "asdf_cache": f"{visible}/asdf-cache/", "canonical": True,
                        "build_seed": seed}
            (here / "out/request.lisp").write_text(f"({form} {lisp_plist(settings)})\n",
                                                   encoding="utf-8")
            with open(here / "out/output.txt", "wb") as out:
                proc = subprocess.Popen(
                    [str(find_sbcl().program), "--script", "lispbuild/lispbuild.fasl", "run",
                     "out/request.lisp"], stdout=out, stderr=subprocess.STDOUT,
                    env=canonical_environment(visible / "lispbuild/sorteddir.so",
                                              visible / SHARED_LIBRARIES),
                    preexec_fn=lambda: where.preexec(uid, gid))
                returncode = wait_while_owned(proc, self.ctx.owner, job)
            for name, value in outputs.items():
                if (here / arguments[name]).exists():
                    shutil.move(here / arguments[name], value)
            if "reads" in outputs and outputs["reads"].exists():
                _files_read_in_project(outputs["reads"], visible, self.ctx.root)
            return finished_job(job, returncode, here / "out/diagnostics.txt",
                                here / "out/output.txt", self.ctx.build)

    def _copy_inputs(self, steps, support, here: Path):
        """lispbuild's FASLs, the project's FASLs and .asd files (with the
        rest of their directory, which an .asd may read), at their relative
        paths; what lies outside the project is read where it is."""
        (here / "out").mkdir(parents=True)
        (here / "lispbuild").mkdir()
        shutil.copyfile(support.lispbuild, here / "lispbuild/lispbuild.fasl")
        shutil.copyfile(support.asdf, here / "lispbuild/asdf.fasl")
        shutil.copyfile(support.asdf_support, here / "lispbuild/asdf-support.fasl")
        for kind, *rest in steps:
            path = rest[0] if kind in ("load", "foreign") else rest[1] if kind == "asdf" else None
            if path is None or os.path.isabs(path):
                continue
            if kind in ("load", "foreign"):
                (here / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.ctx.root / path, here / path)
            else:
                directory = Path(path).parent
                shutil.copytree(self.ctx.root / directory, here / directory, dirs_exist_ok=True,
                                ignore=lambda d, names: [
                                    n for n in names if n.startswith(".")
                                    or (Path(d) == self.ctx.root and n in _NOT_SOURCES)])
        # ASDF keeps each .asd file's write date, and the dates move what
        # the image allocates after them: every copy is dated 1970.
        for directory, _, names in os.walk(here):
            for name in names:
                os.utime(os.path.join(directory, name), (0, 0))


def _files_read_in_project(listing: Path, visible: Path, root: Path):
    """The files a dump read, as the project's: what it read of the copies
    at `visible` is the project's file of the same name; lispbuild's own
    files there, its request and ASDF's cache are not the project's."""
    inside = f"{visible}/"
    own = ("lispbuild/", "out/", "asdf-cache/")
    lines = []
    for path in listing.read_text(encoding="utf-8").splitlines():
        if path.startswith(inside):
            rest = path[len(inside):]
            if rest.startswith(own):
                continue
            path = str(root / rest)
        lines.append(path + "\n")
    listing.write_text("".join(lines), encoding="utf-8")
