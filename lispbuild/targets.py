"""Targets: the machines a binary is built for, as Debian names their parts.

A binary declared with `targets=["x86_64-linux", "aarch64-linux"]` is
planned once per target. The host's is the binary as declared (exe:hello,
build/bin/hello); another target's is the binary, and every library it
needs, planned again under its name with "@TARGET" appended
(exe:hello@aarch64-linux, fasl:hello@aarch64-linux/main.lisp, the
executable build/aarch64-linux/bin/hello). Every load state of a target's
libraries starts with the step ("target", TARGET): the same files loaded
by another target's SBCL are another state, and sbcl/runners.py gives its
jobs to that target's SBCL (under qemu, sysroot.py).
"""
import dataclasses
import platform
from dataclasses import dataclass

from .errors import DeclarationError
from .steps import EMPTY, LoadState


@dataclass(frozen=True)
class Target:
    name: str      # as lispbuild names it: "aarch64-linux"
    debian: str    # Debian's architecture: "arm64"
    gnu: str       # its multiarch directory: "aarch64-linux-gnu"
    musl: str      # musl's: "aarch64-linux-musl"
    qemu: str      # the static qemu-user that runs its programs on another machine


TARGETS = {t.name: t for t in (
    Target("x86_64-linux", "amd64", "x86_64-linux-gnu", "x86_64-linux-musl", "qemu-x86_64-static"),
    Target("aarch64-linux", "arm64", "aarch64-linux-gnu", "aarch64-linux-musl",
           "qemu-aarch64-static"))}
HOST = {"x86_64": "x86_64-linux", "aarch64": "aarch64-linux"}.get(platform.machine(), "")
TARGET_STEP = "target"


def check_targets(binary: str, targets) -> tuple[str, ...]:
    """The targets a binary is declared for, each a known one, each once."""
    names = tuple(dict.fromkeys(str(t) for t in targets))
    unknown = [t for t in names if t not in TARGETS]
    if unknown or not names:
        raise DeclarationError(f"binary {binary}: targets={list(targets)!r}: each target must "
                               f"be one of {', '.join(TARGETS)}")
    return names


def is_host(target: str) -> bool:
    return target in ("", HOST)


def variant(name: str, target: str) -> str:
    """The name of `name` (a library or binary) planned for `target`."""
    return name if is_host(target) else f"{name}@{target}"


# One root state per target, which all its states share.
_ROOTS: dict[str, LoadState] = {}


def root_state(target: str) -> LoadState | None:
    """The first step of every state of `target`'s libraries (None for
    the host's: its states start empty)."""
    if is_host(target):
        return None
    return _ROOTS.setdefault(target, EMPTY.extend([(TARGET_STEP, target)]))


def target_of(steps) -> str:
    """The target whose SBCL performs `steps` (the host's: "")."""
    return steps[0][1] if steps and steps[0][0] == TARGET_STEP else ""


def state_target(state) -> str:
    """The target of a LoadState (its root's step), "" for the host."""
    while state.parent is not None and state.parent is not EMPTY:
        state = state.parent
    return target_of(state.own)


def without_target(steps) -> list:
    """The steps an SBCL performs: the target step is whose SBCL it is."""
    return list(steps[1:]) if target_of(steps) else list(steps)


def machines(binary) -> list[str]:
    """The targets a binary is planned for, the host's as "": the host's
    alone unless it names targets. A coverage suite's (doit coverage) is
    the host's alone ("coverage": modes.COVERAGE, which imports this module's
    importer)."""
    if not binary.targets or binary.mode == "coverage":
        return [""]
    return ["" if is_host(t) else t for t in binary.targets]


def binaries_for_targets(binaries) -> dict:
    """Each binary's plan for each of its targets, by name: the host's
    under its own name, another's as NAME@TARGET."""
    return {variant(b.name, t): dataclasses.replace(b, name=variant(b.name, t), target=t)
            for b in binaries for t in machines(b)}


def with_targets(libraries: dict, binaries, needs: dict[str, set[str]]) -> dict:
    """Every library, and those each other target's binaries need (each
    binary's libraries and theirs: `needs`) again for that target."""
    planned = dict(libraries)
    wanted = {(b.target, name) for b in binaries if b.target for name in needs[b.name]}
    for target, name in sorted(wanted):
        library = libraries[name]
        if library.c_sources or any(s.grovel for s in library.sources):
            raise DeclarationError(
                f"library {name} for {target}: its C files (a CFFI grovel or wrapper "
                f"file, or c-source-file components) are built only for the host so far")
        planned[variant(name, target)] = dataclasses.replace(
            library, name=variant(name, target), target=target,
            depends_on=tuple(variant(d, target) for d in library.depends_on))
    return planned
