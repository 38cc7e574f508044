"""Recompiling only what an edit can affect.

A FASL's key holds its whole load state: an edit of an early file changes
the key of every file compiled after it. But a compile depends on the
image only through what it consults, and the compile job writes that
down (sbcl/trace.lisp): the names the file mentions, the functions that
may run while it compiles, the packages it reads in, and, for the files
after it, what loading it defines. This module is the rebuilder's side,
a verifying trace as "Build Systems a la Carte" names it:

- the *base key* is the action's key without the FASLs of its load state
  (its source, parameters, toolchain, lispbuild, and the state's other
  steps: .asd files, contribs, shared libraries);
- the *trace key* adds, for each thing the compile consulted, the earlier
  FASLs of its state that define it, in load order, each with what it
  defines (=TEXT) or its FASL's digest (@), and every FASL that changed
  what all compiles see (*FEATURES*);
- a compile's outputs are stored under both; a later check whose full key
  is not stored reads the base key's latest trace, works out its trace
  key in the present state, and reuses the outputs stored under it.

A trace that says `incomplete` (a #. form, a changed readtable,
compile-time code reading a global variable) gives no trace key: the file
keeps its full key, and `doit why` says why.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os

from .keys import key_description, named_inputs
from .steps import step_files
from .records import Outputs

ROLE = "trace"
# What each sort of consult depends on (trace.lisp's kinds): a name the
# file mentions, a function that may run while it compiles, a symbol a #.
# form holds, a package.
KINDS = {"m": "MTVSP", "c": "MTVSPF", "v": "MTVSPFX", "p": "K"}
KIND_WORDS = {"M": "expander", "T": "type", "V": "variable", "S": "function type",
              "F": "function", "P": "plist", "K": "package", "G": "global setting",
              "X": "value"}


def trace_path(fasl: str) -> str:
    return fasl.removesuffix(".fasl") + ".trace"


class Trace:
    """A parsed trace: why it is incomplete (or None), what the compile
    consulted ([letter, name]), what the file defines ([kind, name, value])."""

    def __init__(self, text: str):
        self.incomplete, self.consults, self.defines = None, [], []
        for line in text.splitlines():
            head, _, rest = line.partition("\t")
            if head == "incomplete":
                self.incomplete = rest
            elif head == "d":
                kind, _, named = rest.partition("\t")
                name, _, value = named.rpartition("\t")
                self.defines.append((kind, name, value))
            elif head in KINDS:
                self.consults.append((head, rest))


class Definitions:
    """Which FASLs define what, read from their traces under build/, once a
    process (each FASL's trace is an output of its compile, current
    before any task that loads it is checked)."""

    def __init__(self, root: str):
        self.root = root
        self._read: dict[str, bool] = {}
        self.index: dict[tuple[str, str], list[tuple[str, str]]] = {}

    def read(self, fasl: str) -> bool:
        """Index what `fasl` defines; False if its trace is missing."""
        found = self._read.get(fasl)
        if found is None:
            try:
                with open(os.path.join(self.root, trace_path(fasl)), encoding="utf-8") as f:
                    text = f.read()
                found = True
            except OSError:
                text, found = "", False
            for kind, name, value in Trace(text).defines:
                self.index.setdefault((kind, name), []).append((fasl, value))
            self._read[fasl] = found
        return found

    def name(self, fasl: str) -> str:
        """The FASL as records name it (keys.named_inputs)."""
        return named_inputs([fasl], self.root)[0][0]


def _definitions(ctx) -> Definitions:
    found = ctx.__dict__.get("_definitions")
    if found is None:
        found = ctx.__dict__["_definitions"] = Definitions(str(ctx.root))
    return found


def base_key(action, ctx, key: str) -> str:
    """The action's key without the FASLs its state loads; `key`, its full
    key, which decides it (so it is worked out once a build)."""
    memory = ctx.__dict__.setdefault("_base_keys", {})
    found = memory.get((action.task, key))
    if found is None:
        without_state = dataclasses.replace(key_description(action, ctx), state=None)
        h = hashlib.sha256(b"lispbuild base key\0" + without_state.key().encode())
        for step in action.state.steps():
            if step[0] != "load":
                h.update(json.dumps([*map(str, step)]).encode())
                for path in step_files(step):
                    h.update(b"\0" + ctx.file_digest(path).encode())
        found = memory[(action.task, key)] = h.hexdigest()
    return found


def resolve(action, ctx, trace: Trace) -> list | None:
    """For each thing `trace` consulted that an earlier FASL of the action's
    state defines: [letter, name, [[kind, FASL, value], ...]], in load
    order; None if an earlier FASL has no trace."""
    definitions = _definitions(ctx)
    fasls = [step[1] for step in action.state.steps() if step[0] == "load"]
    for fasl in fasls:
        if not definitions.read(fasl):
            return None
    position = {fasl: i for i, fasl in enumerate(fasls)}

    def definers(kinds: str, name: str) -> list:
        found = [(position[fasl], kind, fasl, value) for kind in kinds
                 for fasl, value in definitions.index.get((kind, name), ())
                 if fasl in position]
        return [[kind, definitions.name(fasl), value if value != "@" else ctx.file_digest(fasl)]
                for _, kind, fasl, value in sorted(found)]

    resolution = []
    for letter, name in [("g", "-"), *trace.consults]:
        found = definers("G" if letter == "g" else KINDS[letter], name)
        if found:
            resolution.append([letter, name, found])
    return resolution


def trace_key(base: str, resolution: list) -> str:
    return hashlib.sha256(json.dumps([base, resolution]).encode()).hexdigest()


def _trace_of(outputs: Outputs, store) -> Trace | None:
    entry = outputs.get(ROLE)
    if entry is None:
        return None
    try:
        return Trace(store.object_path(entry.sha256).read_text(encoding="utf-8"))
    except OSError:
        return None


def stored_outputs(action, ctx, store, key: str) -> Outputs | None:
    """The outputs of a compile whose full key is not stored, when one with
    the same base key consulted nothing that has changed since."""
    if ROLE not in action.outputs or action.state is None:
        return None
    base = base_key(action, ctx, key)
    latest = store.get_action(base, action.outputs)
    trace = latest and _trace_of(latest, store)
    if trace is None or trace.incomplete is not None:
        return None
    resolution = resolve(action, ctx, trace)
    if resolution is None:
        return None
    return store.get_action(trace_key(base, resolution), action.outputs)


def record(action, ctx, store, key: str, outputs: Outputs, made_by=None):
    """Store a compile's outputs under its base key and its trace key."""
    if ROLE not in outputs or action.state is None:
        return
    base = base_key(action, ctx, key)
    store.put_action(base, outputs, made_by)
    trace = _trace_of(outputs, store)
    if trace is None or trace.incomplete is not None:
        return
    resolution = resolve(action, ctx, trace)
    if resolution is not None:
        store.put_action(trace_key(base, resolution), outputs, made_by)
        store.put_derived("resolution", base, resolution)


def why_not(action, ctx, store, key: str) -> str | None:
    """Why a compile about to run could not reuse the outputs of the
    latest one with its base key: a sentence for `doit why`."""
    if ROLE not in action.outputs or action.state is None:
        return None
    base = base_key(action, ctx, key)
    latest = store.get_action(base, action.outputs)
    trace = latest and _trace_of(latest, store)
    if trace is None:  # its own source or settings changed: `doit why` says which
        return None
    if trace.incomplete is not None:
        return f"it keeps its full key, as its trace cannot be complete: {trace.incomplete}"
    resolution = resolve(action, ctx, trace)
    if resolution is None:
        return "an earlier file has no trace"
    before = store.get_derived("resolution", base, lambda value: isinstance(value, list))
    old = {(letter, name): found for letter, name, found in before or []}
    for letter, name, found in resolution:
        if old.get((letter, name)) != found:
            kinds = sorted({kind for kind, _, _ in found} - {kind for kind, _, _ in
                                                              old.get((letter, name), [])}
                           or {kind for kind, _, _ in found})
            what = " or ".join(KIND_WORDS[k] for k in kinds)
            files = ", ".join(sorted({f for _, f, _ in found}))
            return f"it consults {name.replace(chr(9), '::')} ({what}), which {files} " \
                   f"defines, changed"
    gone = [name for (letter, name) in old if (letter, name) not in
            {(lt, n) for lt, n, _ in resolution}]
    if gone:
        return f"{gone[0].replace(chr(9), '::')}, which it consults, is no longer defined " \
               f"where it was"
    return None
