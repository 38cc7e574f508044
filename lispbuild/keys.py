"""An action's key: the sha256 of what decides its outputs (the function
that builds it, its parameters, the contents and names of its inputs and
toolchain, its load state, and lispbuild's own code that decides bytes)."""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from typing import TYPE_CHECKING

from .errors import InputUnreadable, MissingSource
from .records import KeyDescription

if TYPE_CHECKING:  # action.py imports this module
    from .action import Action, Context


PACKAGE = Path(__file__).parent


# Code that drives or reports on builds, and decides no output's bytes.
NOT_IN_KEYS = ("commands",)


def key_code(package: Path = PACKAGE, suffixes=(".py", ".lisp")) -> list[Path]:
    """lispbuild's code that decides what its tasks write: every Python and
    Lisp file of the package but the commands. Its C sources are not code
    of the builder but inputs of their tasks (a release's manifest names
    them too: `suffixes`)."""
    return sorted(path for path in package.rglob("*")
                  if path.suffix in suffixes and path.is_file()
                  and path.relative_to(package).parts[0] not in NOT_IN_KEYS
                  and "__pycache__" not in path.parts)


@functools.cache
def package_digest(suffixes=(".py", ".lisp"), package: Path = PACKAGE) -> str:
    """Digest of the code of lispbuild that decides bytes (key_code): a
    changed builder changes every key; a changed command changes none."""
    h = hashlib.sha256()
    for path in key_code(package, suffixes):
        h.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes()
                 + b"\0")
    return h.hexdigest()


def named_inputs(paths: list, root: str) -> list[tuple[str, str]]:
    """(name, absolute path) of each input. Inputs are named as the project
    or lispbuild sees them, not where this machine keeps them, so that keys
    hold across checkouts. (Strings, not pathlib: a big ASDF graph has ten
    thousand inputs in all, and a no-op build names every one.)"""
    bases = ((root + os.sep, ""), (str(PACKAGE) + os.sep, "lispbuild/"))
    named = []
    for path in map(str, paths):
        path = os.path.join(root, path)
        name = next((prefix + path[len(base):] for base, prefix in bases
                     if path.startswith(base)), None) or in_sysroot(path)
        named.append((name, path))
    return named


# Another machine's files are in a sysroot (sysroot.py) named TARGET-DIGEST.
SYSROOTS = f"{os.sep}lispbuild{os.sep}sysroots{os.sep}"


def in_sysroot(path: str) -> str:
    """A sysroot's file as sysroot:TARGET/PATH, wherever the user's cache
    is; another path as it is."""
    _, found, rest = path.partition(SYSROOTS)
    if not found:
        return path
    directory, _, inside = rest.partition(os.sep)
    return f"sysroot:{directory.rpartition('-')[0]}/{inside}"


def action_key(action: Action, ctx: Context) -> str:
    return key_description(action, ctx).key()


def key_description(action: Action, ctx: Context) -> KeyDescription:
    """What the action's key is the digest of: how it runs, its parameters,
    the digests of its inputs and toolchain, its load state."""
    inputs = []
    for name, path in named_inputs(action.inputs, str(ctx.root)):
        try:
            inputs.append([name, ctx.digests.digest(path)])
        except FileNotFoundError:
            raise MissingSource(f"{action.task}: input file {name} does not exist") from None
        except OSError as error:  # a directory, no permission
            raise InputUnreadable(f"{action.task}: cannot read input file {name}: "
                                  f"{error.strerror}") from None
    inputs += [entry for find in action.toolchain for entry in ctx.toolchain_digests(find)]
    return KeyDescription(
        run=f"{action.run.__module__}.{action.run.__qualname__}",
        params=action.parameters(), inputs=inputs,
        outputs={role: str(p) for role, p in action.outputs.items()},
        lispbuild=package_digest(),
        state=None if action.state is None else ctx.states.digest(action.state))


def what_it_read(action: Action, ctx: Context,
                 description: KeyDescription) -> KeyDescription:
    """The key's description, with the files the load state loads (its
    digest alone cannot say which changed): kept for `doit why`."""
    if action.state is None:
        return description
    return description.with_loads(ctx.states.loads(action.state))
