"""Scratch space: every file or directory a build writes before its result
is whole carries the pid of the process that writes it, so that the next
build can tell a killed build's leftovers from a running build's work.

    build/.lispbuild/scratch/PID-xxxx/    a task's outputs being built
    build/.../.tmp-PID-xxxx               a file being copied into place
    build/.lispbuild/workers/PID-xxxx.*     a worker of the build PID owns
    build/.lispbuild/workers/requests/PID/  requests to the workers of the build PID owns
    build/.lispbuild/images/X.core.PID.tmp  an image being saved
"""
import os
import re
import shutil
import tempfile
from pathlib import Path

from . import layout

_TMP = re.compile(r"^\.tmp-(\d+)-|\.(\d+)\.tmp$")
_PID = re.compile(r"^(\d+)(?:-|$)")
# Directories whose entries are named by their writer's pid.
_PID_DIRS = ("scratch", "requests", "workers")


def tmp_prefix() -> str:
    """The prefix of a temporary file that is renamed into place."""
    return f".tmp-{os.getpid()}-"


def scratch_dir(build: Path, prefix: str = "") -> tempfile.TemporaryDirectory:
    """A new directory for one job's scratch files, removed when the `with`
    block that holds it ends."""
    root = layout.state(build, layout.SCRATCH)
    root.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=f"{os.getpid()}-{prefix}", dir=root)


def process_alive(pid: int) -> bool:
    """Whether a process runs (a zombie its parent has yet to reap does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def writer(directory: str, name: str) -> int | None:
    """The pid that writes the file or directory `name` in `directory`, if
    it is scratch."""
    match = _TMP.search(name)
    if match is None and os.path.basename(directory) in _PID_DIRS:
        match = _PID.match(name)
    return int(next(g for g in match.groups() if g)) if match else None


def sweep(build: Path) -> list[Path]:
    """Remove what killed builds left under build/; returns what it removed."""
    removed = []
    for top, dirs, files in os.walk(build):
        for name in dirs + files:
            pid = writer(top, name)
            if pid is None or pid == os.getpid() or process_alive(pid):
                continue
            path = Path(top, name)
            if name in dirs:
                shutil.rmtree(path, ignore_errors=True)
                dirs.remove(name)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed
