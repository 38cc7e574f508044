"""Compilation modes: the optimize policy and the feature a project's own
files are compiled with, as Bazel's Common Lisp rules name them.

    fastbuild  speed 1, debug 2, safety 3               (the default)
    opt        speed 3, debug 1, safety 1, :OPT in *features*
    dbg        speed 1, debug 3, safety 3, :DBG in *features*

opt keeps safety 1 and debug 1 where Bazel's rules take 0 and 0: safety
0 drops type and bounds checks, so a bug corrupts memory silently in an
executable meant to run for years; debug 0 drops lambda lists, which
backtraces and the entry's calling convention need. A library's own
`policy=` wins for its qualities. Dependencies (libraries outside the
project: Debian's) are compiled as they always are, so every mode shares
their FASLs.

The build's mode is LISPBUILD_MODE; a binary's `mode=` overrides it for
that binary. The project's libraries a binary of another mode needs are
planned a second time under their name with "@MODE" appended
(fasl:app@opt/main.lisp, build/fasl/app@opt/main.lisp): each mode's
FASLs have keys and paths of their own, so switching back and forth
restores from the store.
"""
import dataclasses
import os

from . import declare
from .declare import Library
from .errors import DeclarationError
from .settings import MODE_VARIABLE

# Each mode's policy and features, in the order declare.MODES names them.
MODES = dict(zip(declare.MODES, (
    ((("speed", 1), ("debug", 2), ("safety", 3)), ()),
    ((("speed", 3), ("debug", 1), ("safety", 1)), ("OPT",)),
    ((("speed", 1), ("debug", 3), ("safety", 3)), ("DBG",)))))
DEFAULT = declare.MODES[0]
# `doit coverage`'s mode: the build's, with sb-cover's instrumentation.
COVERAGE = "coverage"
COVERAGE_QUALITY = ("sb-cover:store-coverage-data", 3)


def build_mode(value: str | None) -> str:
    """The build's mode, from LISPBUILD_MODE's `value`."""
    if value is None or value == "":
        return DEFAULT
    if value not in MODES:
        raise DeclarationError(f"{MODE_VARIABLE}={value}: the mode must be one of "
                               f"{', '.join(MODES)}")
    return value


def is_own(library: Library) -> bool:
    """A library of the project: its files are under the project root."""
    return not os.path.isabs(str(library.directory))


def variant(name: str, mode: str, default: str) -> str:
    """The name of the project library `name` planned in `mode`."""
    return name if mode == default else f"{name}@{mode}"


def in_mode(library: Library, mode: str, name: str, own: set[str], default: str) -> Library:
    """`library` compiled in `mode`, named `name`; the project libraries
    it depends on in the same mode."""
    policy, features = MODES[default if mode == COVERAGE else mode]
    policy = {**dict(policy), **dict(library.policy)}
    if mode == COVERAGE:
        policy.update([COVERAGE_QUALITY])
    return dataclasses.replace(
        library, name=name, policy=tuple(sorted(policy.items())),
        features=tuple(dict.fromkeys((*library.features, *features))),
        requires=library.requires + (("sb-cover",) if mode == COVERAGE else ()),
        depends_on=tuple(variant(d, mode, default) if d in own else d
                         for d in library.depends_on))


def needed(libraries: dict[str, Library], names) -> set[str]:
    """`names` and every library they depend on."""
    found, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo.extend(libraries[name].depends_on)
    return found


def with_modes(libraries: dict[str, Library], default: str,
               wanted: dict[str, set[str]]) -> dict[str, Library]:
    """Every library, the project's in the `default` mode, and the project
    libraries each other mode's binaries need (`wanted`: mode -> names)
    again in that mode."""
    own = {name for name, library in libraries.items() if is_own(library)}
    planned = {name: in_mode(library, default, name, own, default) if name in own else library
               for name, library in libraries.items()}
    for mode, names in wanted.items():
        for name in names & own:
            planned[variant(name, mode, default)] = in_mode(
                libraries[name], mode, variant(name, mode, default), own, default)
    return planned
