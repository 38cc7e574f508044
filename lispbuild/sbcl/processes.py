"""The processes of a build, and the ends they must not leave loose: the
owner becomes the subreaper of the workers it starts; doit's processes die
with it; a worker's reply is read from its FIFO with a deadline, and the
child it announced is killed if the reader stops; the registry is locked;
the development runtime the workers run on is linked."""
import fcntl
import math
import os
import select
import signal
import time
from pathlib import Path

from .. import layout, link
from ..action import Action, Context
from ..toolchain import runtime_files


PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1


def become_subreaper():
    """Workers whose parent (one of doit's processes) has ended are
    re-parented to this process, not to init: it reaps them when it stops
    them, at once, and their CPU time counts as the build's."""
    import ctypes  # only the owner needs it
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def die_with_parent(parent: int):
    """In a process forked from `parent` (doit's worker processes, forked
    by doit with -n N): be killed when the parent ends, as doit's workers
    would otherwise wait forever on a pipe after a kill -9 of doit. (A
    process forked from such a child is left as it is.)"""
    if os.getppid() != parent:
        return
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it ended before prctl took effect
        os._exit(1)


def read_reply(fd: int, alive, deadline: float = math.inf) -> list[str]:
    """Lines from a reply FIFO until every writer closed it. A writer
    that never came is waited for while `alive()` says so. A job's
    child (announced as "started PID") that has not ended when this
    returns or is interrupted (Ctrl-C, its worker died) is killed."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    data, seen_writer, child = b"", False, None
    try:
        while True:
            events = poller.poll(500)
            if time.monotonic() > deadline:
                raise TimeoutError
            if not events:
                if not seen_writer and not alive():
                    break
                continue
            chunk = os.read(fd, 65536)
            if chunk:
                data += chunk
                seen_writer = True
                lines = data[:data.rfind(b"\n") + 1].decode("utf-8", "replace").split("\n")
                last = lines[-2] if len(lines) > 1 else ""
                child = int(last.split()[1]) if last.startswith("started ") else None
            elif seen_writer or events[0][1] & select.POLLHUP:
                break
    finally:
        if child is not None:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return data.decode("utf-8", "replace").splitlines()


def _link_dev_runtime(action: Action, ctx: Context, outputs: dict):
    link.link_dev_runtime(outputs["runtime"], ctx.root, action.task)


def dev_runtime_action() -> Action:
    return Action(task="lisp:sbcl-dev", run=_link_dev_runtime, inputs=[link.DEV_RUNTIME_SOURCE],
                  params={}, outputs={"runtime": Path(layout.from_root(layout.TOOLS), "sbcl-dev")},
                  toolchain=(runtime_files,), executable=frozenset({"runtime"}))


class FileLock:
    """An exclusive flock on a file, held while in a with block."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.file = open(self.path, "w")
        fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.file.close()
