"""Load states: what an SBCL image holds before a job, as steps in order.

A step is one of

    ("require", MODULE)        an SBCL contrib (or ASDF and UIOP)
    ("asdf", SYSTEM, ASD)      an ASDF system's definition, from its .asd
    ("load", FASL)             a compiled file
    ("load", FASL, SYSTEM, SOURCE)   a compiled file of an ASDF system,
                               loaded as ASDF's LOAD-OP would
    ("loaded", SYSTEM)         ASDF's LOAD-OP of a system whose files are loaded
    ("foreign", SHARED)        a shared library built from a library's C file,
                               which its code loads (by name, from build/clib/)

A state is a chain: the steps of its parent, then its own. The states of a
library's files share the chain of the library's dependencies, and a
library's dependencies start with the whole chain of its biggest one, so
one warm worker's state is a prefix of many others'.

A state's digest folds in each step, one at a time, with the digest of the
step's file: the same steps give the same digest however the chain was
built, and a worker that holds N steps with digest D can serve any state
whose first N steps fold to D.
"""
import hashlib

class LoadState:
    """A parent state and the steps after it."""
    __slots__ = ("parent", "own", "length")

    def __init__(self, parent: "LoadState | None", own: tuple):
        self.parent = parent
        self.own = tuple(own)
        self.length = (parent.length if parent else 0) + len(self.own)

    def extend(self, steps) -> "LoadState":
        steps = tuple(steps)
        return LoadState(self, steps) if steps else self

    def steps(self) -> list:
        chain, node = [], self
        while node is not None:
            chain.append(node.own)
            node = node.parent
        return [step for own in reversed(chain) for step in own]


EMPTY = LoadState(None, ())


def step_files(step: tuple) -> list[str]:
    """The files whose contents a step depends on."""
    kind = step[0]
    return [step[2]] if kind == "asdf" else [step[1]] if kind in ("load", "foreign") else []


def fold(digest: str, step: tuple, file_digests: list[str]) -> str:
    h = hashlib.sha256(digest.encode())
    for part in (*step, *file_digests):
        h.update(b"\0" + str(part).encode())
    return h.hexdigest()


class StateDigests:
    """Digests of states, each chain link folded once per build.

    `file_digest(path)` gives a file's sha256, `name(path)` the name a
    record gives it. The memory is by state object (held, so that no other
    state takes its id), and by file: a build computes a state's digest
    only after every task that writes its files has run, so neither
    changes during the build. Each answer about a
    state extends its parent's, so a build of N files, each loading most
    of those before it, folds N steps, not N squared."""

    def __init__(self, root: str, file_digest, name=str):
        self.root = root
        self._file_digest = file_digest
        self._name = name
        self._files: dict[str, str] = {}
        self._memory: dict[LoadState, str] = {EMPTY: root}
        self._prefixes: dict[LoadState, list[str]] = {EMPTY: [root]}
        self._loads: dict[LoadState, list[list[str]]] = {EMPTY: []}
        self._paths: dict[LoadState, frozenset[str]] = {EMPTY: frozenset()}

    def file_digest(self, path: str) -> str:
        found = self._files.get(path)
        if found is None:
            found = self._files[path] = self._file_digest(path)
        return found

    def digest(self, state: LoadState) -> str:
        found = self._memory.get(state)
        if found is None:
            found = self.digest(state.parent)
            for step in state.own:
                found = fold(found, step, [self.file_digest(f) for f in step_files(step)])
            self._memory[state] = found
        return found

    def prefixes(self, state: LoadState) -> list[str]:
        """The digest after each step: element N is that of the first N.
        (Shared: not to be changed.)"""
        found = self._prefixes.get(state)
        if found is None:
            found = list(self.prefixes(state.parent))
            for step in state.own:
                found.append(fold(found[-1], step,
                                  [self.file_digest(f) for f in step_files(step)]))
            self._prefixes[state] = found
        return found

    def loads(self, state: LoadState) -> list[list[str]]:
        """[name, sha256] of each file the state loads, in order (shared)."""
        found = self._loads.get(state)
        if found is None:
            found = self.loads(state.parent) + [
                [self._name(f), self.file_digest(f)] for step in state.own
                for f in step_files(step)]
            self._loads[state] = found
        return found

    def paths(self, state: LoadState) -> frozenset[str]:
        """The files the state loads, as its steps name them."""
        found = self._paths.get(state)
        if found is None:
            found = self.paths(state.parent) | {f for step in state.own
                                                for f in step_files(step)}
            self._paths[state] = found
        return found
