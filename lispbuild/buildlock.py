"""One build of a project at a time (hold_build_lock)."""
import fcntl
import os
import sys

from . import layout
from .action import Context


_held_build_lock: int | None = None


def hold_build_lock(ctx: Context):
    """Builds of one project take turns: the owner of a build holds
    build/.lispbuild/build.lock from its first check to its end, as cargo
    locks its target directory. Two builds writing one build/ at once
    would each record outputs the other then replaced (development dumps
    are not the same bytes twice), and the next build would redo them.
    Only the owner locks (doit's -n processes work for it); a build/ that
    cannot be written (an archived tree) is not locked."""
    global _held_build_lock
    if _held_build_lock is not None or os.getpid() != ctx.owner:
        return
    path = layout.state(ctx.build, layout.BUILD_LOCK)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        print(f"waiting for another build of this project to end (pid {holder})",
              file=sys.stderr, flush=True)
        fcntl.flock(fd, fcntl.LOCK_EX)
    os.pwrite(fd, f"{os.getpid():>10}\n".encode(), 0)  # one width: nothing to truncate
    _held_build_lock = fd


def release_build_lock():
    """For a process that runs several builds (a watch): the next may be another's."""
    global _held_build_lock
    if _held_build_lock is not None:
        os.close(_held_build_lock)
        _held_build_lock = None
