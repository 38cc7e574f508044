"""Inputs observed, not assumed: the files a compile or a dump opened for
reading beyond those its key declares (a data file read while a library
loads, an .asd that another .asd loads), as ninja's depfiles record the
headers a compile read.

The SBCL writes every file it opened (driver.lisp); `record` rewrites that
list as the observed inputs, one `NAME<TAB>SHA256` line each, in the
task's output of role `reads`, stored and restored with its other
outputs. The rebuilder (rebuild.py) takes a record whose observed inputs
changed since for no record at all, and a release's manifest lists them
as sources.
"""
import hashlib
import json
import os
from pathlib import Path


ROLE = "reads"
# What an empty list's digest is: most tasks read nothing undeclared, and
# their check then reads no file.
NOTHING = hashlib.sha256(b"").hexdigest()
PACKAGE = str(Path(__file__).parent)


def record(listing: Path, action, ctx, sbcl_home: Path):
    """Rewrite `listing` (absolute paths, one a line) as the observed
    inputs of `action`: what it read less what it declared, what builds
    make (build/) and what comes with SBCL and lispbuild."""
    root = str(ctx.root)
    declared = {os.path.join(root, str(p)) for p in action.inputs}
    # As the steps name them: relative to the root, or absolute.
    loaded = ctx.states.paths(action.state) if action.state is not None else frozenset()
    made = (str(ctx.build) + os.sep, str(sbcl_home) + os.sep, PACKAGE + os.sep,
            "/proc/", "/sys/", "/dev/")
    lines = []
    for path in sorted(set(listing.read_text(encoding="utf-8").splitlines())):
        name = path[len(root) + 1:] if path.startswith(root + os.sep) else path
        if (not path or path in declared or name in loaded or path in loaded
                or path.startswith(made) or not os.path.isfile(path)):
            continue
        lines.append(f"{name}\t{ctx.digests.digest(path)}\n")
    listing.write_text("".join(lines), encoding="utf-8")


def inputs(text: str) -> list[tuple[str, str]]:
    """(name, sha256) of each observed input a `reads` output lists."""
    return [tuple(line.split("\t", 1)) for line in text.splitlines() if "\t" in line]


def still_read_alike(outputs: dict, ctx, read) -> bool:
    """Whether the observed inputs a record lists (read(sha256) gives its
    `reads` output's text) have the contents they had: if not, the record
    is of another build than this one would be."""
    entry = outputs.get(ROLE)
    if entry is None or entry.sha256 == NOTHING:
        return True
    try:
        return all(ctx.digests.digest(os.path.join(ctx.root, name)) == sha256
                   for name, sha256 in inputs(read(entry.sha256)))
    except OSError:
        return False


def variant_key(key: str, observed: list) -> str:
    """The key of an action's record for one set of observed inputs: an
    action's key holds what it declares, and its latest record what it
    read; each record is kept under this key too, so that files that come
    back as they were (another branch checked out) find theirs."""
    blob = json.dumps({"key": key, "observed": sorted(map(list, observed))}).encode()
    return hashlib.sha256(blob).hexdigest()


def variant_now(key: str, outputs: dict, ctx, read) -> str | None:
    """variant_key for the files a record lists, as they are now; None if
    it lists none or one cannot be read."""
    entry = outputs.get(ROLE)
    if entry is None or entry.sha256 == NOTHING:
        return None
    try:
        return variant_key(key, [(name, ctx.digests.digest(os.path.join(ctx.root, name)))
                                 for name, _ in inputs(read(entry.sha256))])
    except OSError:
        return None


def variant_recorded(key: str, outputs: dict, read) -> str | None:
    """variant_key for the files a record lists, as they were read."""
    entry = outputs.get(ROLE)
    if entry is None or entry.sha256 == NOTHING:
        return None
    return variant_key(key, inputs(read(entry.sha256)))
