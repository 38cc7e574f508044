"""The registry of warm workers: each worker's file says which state it
holds (the digest of its first N steps); saved images say the same of
themselves. Placement (worker.py) reads it under a lock."""
import json
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


def registered(directory: Path, owner: int) -> list[Worker]:
    """The live workers of the build `owner` owns, from their registry
    files; those of a build whose owner is gone are forgotten."""
    workers = []
    for path in directory.glob("*.json"):
        try:
            worker = Worker.from_json(path.read_text())
        except OSError:
            continue
        if worker is None:
            continue
        if worker.owner != owner or not process_alive(worker.pid):
            if not process_alive(worker.owner):
                path.unlink(missing_ok=True)  # a killed build's
            continue
        workers.append(worker)
    return workers


def deepest(workers: list[Worker], prefixes: list[str]) -> Worker | None:
    """The worker that holds the most of the state whose prefixes
    (StateDigests.prefixes) are given."""
    usable = [w for w in workers if w.n < len(prefixes) and prefixes[w.n] == w.hash]
    return max(usable, key=lambda w: w.n, default=None)


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
