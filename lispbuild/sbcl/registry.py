"""The registry of warm workers: each worker's file says which state it
holds (the digest of its first N steps); saved images say the same of
themselves. Placement (worker.py) reads it under a lock."""
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..scratch import process_alive


VERSION = 1  # of a worker's registry file, written by worker.lisp's write-registry


@dataclass
class Worker:
    """What a worker says of itself (its registry file)."""
    version: int
    id: str
    pid: int
    pgid: int
    owner: int
    fifo: str
    library: str | None
    mode: str        # "zygote" (never moves) or "runner" (loads its library's files)
    n: int
    hash: str
    images: list

    @classmethod
    def from_json(cls, text: str) -> "Worker | None":
        """The worker a registry file describes; None if the file is not one
        this lispbuild's workers write (of another version or shape)."""
        try:
            worker = cls(**json.loads(text))
        except (ValueError, TypeError):
            return None
        return worker if worker.version == VERSION else None


@dataclass
class Image:
    path: Path
    n: int
    hash: str


# A registry file as last read, by path: (its stat, the worker). A build
# places a job a file, and reads a few dozen files each time.
_read: dict[str, tuple[tuple, Worker | None]] = {}


def _entries(directory: Path, owner: int) -> list[Worker]:
    """The workers of the build `owner` owns, as their registry files say,
    whether they still run or not; those of a build whose owner is gone
    are forgotten."""
    workers = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:  # no worker started yet
        return []
    for entry in entries:
        if not entry.name.endswith(".json"):
            continue
        try:
            st = entry.stat()
        except OSError:
            continue
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        known = _read.get(entry.path)
        if known is None or known[0] != stamp:
            try:
                known = _read[entry.path] = (stamp, Worker.from_json(
                    Path(entry.path).read_text()))
            except OSError:
                continue
        worker = known[1]
        if worker is None:
            continue
        if worker.owner != owner:
            if not process_alive(worker.owner):
                Path(entry.path).unlink(missing_ok=True)  # a killed build's
            continue
        workers.append(worker)
    return workers


def registered(directory: Path, owner: int) -> list[Worker]:
    """The live workers of the build `owner` owns."""
    return [w for w in _entries(directory, owner) if process_alive(w.pid)]


def deepest(directory: Path, owner: int, prefixes: list[str]) -> Worker | None:
    """The live worker of the build that holds the most of the state whose
    prefixes (StateDigests.prefixes) are given. (Whether it runs is asked
    of the few that hold a prefix: a placement happens for every file.)"""
    usable = [w for w in _entries(directory, owner)
              if w.n < len(prefixes) and prefixes[w.n] == w.hash]
    return max((w for w in usable if process_alive(w.pid)), key=lambda w: w.n, default=None)


def deepest_image(directory: Path, prefixes: list[str]) -> Image | None:
    """The saved image that holds the most of the state."""
    found = None
    for meta in directory.glob("*.json"):
        try:
            n, digest = json.loads(meta.read_text())["n"], meta.stem
        except (OSError, ValueError, KeyError):
            continue
        core = meta.with_suffix(".core")
        if n < len(prefixes) and prefixes[n] == digest and core.exists():
            if found is None or n > found.n:
                found = Image(core, n, digest)
    return found
