"""A job for SBCL, as plain data: what the rules ask of a runner
(sbcl/runners.py), which hands it to a fresh SBCL, a warm worker or the
canonical process of a release."""
from dataclasses import dataclass, field
from pathlib import Path

from .steps import LoadState


@dataclass
class LispJob:
    """One job for SBCL: the steps of `state`, then `command` with `arguments`."""
    task: str                 # the task it is for, named in messages
    command: str              # "compile", "check-undefined", "grovel", "wrapper", "dump", "asdf-graph"
    state: LoadState
    arguments: dict
    product: Path             # the file it must write (FASL, core, graph)
    library: str | None = None       # the library whose file it compiles
    base: LoadState | None = None    # that library's dependencies
    hints: dict = field(default_factory=dict)   # how to get there faster, or where (release_directory)
