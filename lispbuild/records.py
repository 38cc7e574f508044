"""The records one part of lispbuild writes and another reads, as typed
values with a version. A record of another version (another lispbuild
wrote it) or of the wrong shape reads as no record: the task that wanted
it runs, as it would for a miss.

    KeyDescription  what an action's key is the digest of (keys.py), kept
                    with the FASLs its load state loads for `doit why`
    ActionRecord    the outputs an action key produced and which runner
                    made them: the store's actions/, the remote's ac/
    Output          one output of a record: its sha256, whether executable

The release manifest (release.Manifest) and a warm worker's registry file
(sbcl/registry.Worker) carry versions of their own.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, replace

VERSION = 1

_SHA256 = re.compile(r"[0-9a-f]{64}")


def is_sha256(value) -> bool:
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


@dataclass(frozen=True)
class Output:
    sha256: str
    executable: bool


Outputs = dict[str, Output]


def outputs_json(outputs: Outputs) -> dict:
    """{role: {"sha256", "executable"}}: how outputs are written down."""
    return {role: asdict(output) for role, output in sorted(outputs.items())}


def parse_outputs(value, roles=None) -> Outputs | None:
    """The outputs written as outputs_json wrote them, with exactly `roles`
    when they are given; None if they are of another shape."""
    if not (isinstance(value, dict) and value
            and (roles is None or value.keys() == set(roles))
            and all(isinstance(role, str) and isinstance(o, dict)
                    and o.keys() == {"sha256", "executable"}
                    and is_sha256(o["sha256"]) and isinstance(o["executable"], bool)
                    for role, o in value.items())):
        return None
    return {role: Output(o["sha256"], o["executable"]) for role, o in value.items()}


def _loads(data):
    try:
        record = json.loads(data)
    except (ValueError, TypeError):
        return None
    return record if isinstance(record, dict) and record.get("version") == VERSION else None


@dataclass(frozen=True)
class ActionRecord:
    outputs: Outputs
    made_by: str | None = None     # the runner that made them (sbcl/runners.py), said not checked
    signature: dict | None = None  # a remote writer's (signing.py)

    def to_json(self) -> bytes:
        record = {"version": VERSION, "outputs": outputs_json(self.outputs)}
        if self.made_by:
            record["made_by"] = self.made_by
        if self.signature:
            record["signature"] = self.signature
        return json.dumps(record, sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, data, roles=None) -> ActionRecord | None:
        record = _loads(data)
        outputs = record and parse_outputs(record.get("outputs"), roles)
        if not outputs:
            return None
        made_by, signature = record.get("made_by"), record.get("signature")
        return cls(outputs, made_by if isinstance(made_by, str) else None,
                   signature if isinstance(signature, dict) else None)


@dataclass(frozen=True)
class KeyDescription:
    """What an action's key is the digest of: how it runs, its parameters,
    the digests of its inputs and toolchain ([name, sha256] each), where
    its outputs go, lispbuild's own code, and its load state's digest."""
    run: str
    params: dict
    inputs: list
    outputs: dict
    lispbuild: str
    state: str | None = None
    # Not part of the key (the state's digest covers them): the FASLs the
    # state loads, each [name, sha256], kept so `doit why` can name one.
    loads: list | None = field(default=None, compare=False)
    # Not part of the key either: why a compile could not reuse the one
    # before it (reuse.why_not), for `doit why`.
    reuse: str | None = field(default=None, compare=False)

    def key(self) -> str:
        blob = json.dumps(self._keyed(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()

    def _keyed(self) -> dict:
        # By hand, not asdict(), which copies every list: a no-op build
        # computes every task's key.
        keyed = {"version": VERSION, "run": self.run, "params": self.params,
                 "inputs": self.inputs, "outputs": self.outputs, "lispbuild": self.lispbuild}
        if self.state is not None:
            keyed["state"] = self.state
        return keyed

    def with_loads(self, loads: list) -> KeyDescription:
        return replace(self, loads=loads)

    def with_reuse(self, reuse: str | None) -> KeyDescription:
        return replace(self, reuse=reuse)

    def to_json(self) -> str:
        record = self._keyed()
        if self.loads is not None:
            record["loads"] = self.loads
        if self.reuse is not None:
            record["reuse"] = self.reuse
        return json.dumps(record, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, data) -> KeyDescription | None:
        record = _loads(data)
        if record is None:
            return None
        del record["version"]
        try:
            return cls(**record)
        except TypeError:
            return None
