"""A development executable's payload: the project's own FASLs, the last
of its image's load steps, embedded in the executable and loaded when the
program starts (sbcl/payload.lisp) instead of dumped. base:NAME dumps the
image of the steps before them, which an edit of the project's Lisp leaves
as it is; core:NAME loads the payload in a worker's child, finds the entry
and writes the records a dump writes, without saving an image; exe:NAME
joins the base's image and the payload. Release executables are dumped
whole (docs/watch.md says what each costs).
"""
from pathlib import Path

from ..steps import LoadState
from ..sbcl.driver import lisp_literal

# What core:NAME writes in place of an image when the payload completes
# the base's (dump.lisp writes it).
MARKER = b"lispbuild payload\n"


def payload_start(steps: list, own: set) -> int:
    """Where the payload starts in `steps`: at the last run of loads of
    the project's FASLs (`own`), with ASDF's `loaded` marks among them;
    len(steps) when they end otherwise."""
    start = len(steps)
    while start and (steps[start - 1][0] == "loaded"
                     or (steps[start - 1][0] == "load" and steps[start - 1][1] in own)):
        start -= 1
    while start < len(steps) and steps[start][0] == "loaded":
        start += 1
    return start


def prefix(state: LoadState, length: int) -> LoadState:
    """The state of the first `length` steps of `state`: an ancestor of it
    when one holds them (its digest is then computed once a build)."""
    node = state
    while node.length > length:
        node = node.parent
    return node.extend(state.steps()[node.length:length])


def step_name(step) -> str:
    """A payload step as its table names it: printed as Lisp reads it, its
    paths relative to the root, as the steps name them (the program
    merges them with the directory its base image was dumped in: the
    executable's bytes, like its key, are the same in every checkout)."""
    kind, *rest = step
    return f"(:{kind} {' '.join(lisp_literal(a) for a in rest)})"


def table(steps: list, root: Path) -> list[tuple[str, Path | None]]:
    """The payload's entries for embed.py: each step's name, and the FASL
    whose bytes it holds (None for a `loaded` mark)."""
    return [(step_name(step), root / step[1] if step[0] == "load" else None)
            for step in steps]


def is_payload_marker(core: Path) -> bool:
    with open(core, "rb") as f:
        return f.read(len(MARKER)) == MARKER
