"""`doit why TASK...`: why a task ran, from what the build recorded.

Each task that runs records what its key was made of (rebuild.py:
parameters, the digest of every input and toolchain file, the FASLs its
load state loads) in build/.lispbuild/digests.sqlite3, keeping what it
read the last time it ran to the end. This command compares the two, as
ninja's `-d explain` does; nothing is predicted or rebuilt.
"""
import json
import sys
from pathlib import Path

from doit.cmd_base import Command

from .. import layout
from ..digest import BUILT, FOLLOWED, RESTORED, DigestCache
from ..records import KeyDescription

SHOWN = 10  # files named per kind of change; the rest are counted


def _short(digest: str) -> str:
    return digest[:12]


def _file_changes(kind: str, before: list, after: list) -> list[str]:
    old, new = dict(map(tuple, before)), dict(map(tuple, after))
    lines = [f"{kind} {name} changed ({_short(old[name])} -> {_short(new[name])})"
             for name in new if name in old and old[name] != new[name]]
    lines += [f"{kind} {name} is new" for name in new if name not in old]
    lines += [f"{kind} {name} is no longer read" for name in old if name not in new]
    if len(lines) > SHOWN:
        lines = lines[:SHOWN] + [f"and {len(lines) - SHOWN} more {kind} changes"]
    return lines


def differences(previous: KeyDescription, current: KeyDescription) -> list[str]:
    """What differs between two records of what a task read, one line each."""
    lines = []
    if previous.lispbuild != current.lispbuild:
        lines.append("lispbuild itself changed (another version, or an edit of its code)")
    if previous.run != current.run:
        lines.append(f"it is made another way: {previous.run} -> {current.run}")
    old_params, new_params = previous.params, current.params
    for name in sorted(set(old_params) | set(new_params)):
        if old_params.get(name) != new_params.get(name):
            lines.append(f"parameter {name}: {json.dumps(old_params.get(name))} -> "
                         f"{json.dumps(new_params.get(name))}")
    if previous.outputs != current.outputs:
        lines.append(f"its outputs are elsewhere: {previous.outputs} -> {current.outputs}")
    lines += _file_changes("input", previous.inputs, current.inputs)
    loads = _file_changes("loaded", previous.loads or [], current.loads or [])
    lines += loads
    if not loads and previous.state != current.state:
        lines.append("what it loads first changed")
    return lines


def explain(digests: DigestCache, task: str) -> list[str]:
    """Why `task` ran, as lines for a person."""
    found = digests.last_run(task)
    if found is None:
        return [f"{task} has not run in this build directory"]
    in_last, previous, current, ended = found
    when = "in the last build" if in_last else \
        "in an earlier build (in the last one it was up to date, or did not run)"
    how = {0: ", and did not finish", BUILT: "", RESTORED: " (restored from a store)",
           FOLLOWED: " (compiled in the process of the file before it, as ASDF compiles "
                     "a system)"}.get(ended, "")
    head = f"{task} ran {when}{how}"
    if previous is None:
        return [f"{head}: nothing earlier is recorded (a new task, or a new build directory)"]
    before, now = KeyDescription.from_json(previous), KeyDescription.from_json(current)
    if before is None or now is None:
        return [f"{head}: what it read earlier was recorded by another version of lispbuild"]
    lines = differences(before, now)
    if now.reuse:  # a compile whose load state changed, and which ran all the same
        lines.append(f"its earlier FASL was not reused: {now.reuse}")
    if not lines:
        return [f"{head}: everything it reads was as before; its outputs under build/ "
                f"were missing or not the ones recorded"]
    return [f"{head}, because:"] + [f"  {line}" for line in lines]


class Why(Command):
    """doit's `why` command, installed with lispbuild (entry point group
    doit.COMMAND)."""
    name = "why"
    doc_purpose = "say why tasks ran: what differed from the time before"
    doc_usage = "TASK [TASK ...]"
    doc_description = ("Reads the records the build keeps under build/.lispbuild/ in the "
                       "current directory (the project root).")

    def execute(self, params, args):
        if not args:
            print("name a task: doit why fasl:LIBRARY/FILE.lisp", file=sys.stderr)
            return 2
        database = Path(layout.from_root(layout.DIGESTS))
        if not database.exists():
            print(f"no build has run here: {database} does not exist",
                  file=sys.stderr)
            return 2
        digests = DigestCache(database.resolve())
        for task in args:
            print("\n".join(explain(digests, task)))
        return 0
