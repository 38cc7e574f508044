"""Dependency images: where the compiles of a big library start.

A file compiles in a fresh SBCL that first loads every FASL of the
libraries its library depends on, and for an ASDF system ASDF and the
systems' definitions: for a late hunchentoot file, 0.6 s before 0.1 s of
compiling. For a library where that adds up to more than a dump
(graph.worth_an_image), the first of its files to compile dumps an image
with those dependencies loaded, and every file of the library starts from
it, loading only its own library's files.

Loading from the image gives the same FASL bytes as loading the FASLs one
by one (the same files load in the same order), so an image is a means,
not an input: it is not in any key and never goes into the store. It is
named by what it holds and kept under build/.lispbuild/images/, one per
library; compiles running in parallel wait for the one that dumps it.
"""
import fcntl
import hashlib
import json
from pathlib import Path

from .rebuild import Context, package_digest
from .toolchain import find_sbcl


def image_key(request: dict, ctx: Context) -> str:
    """The digest of what the image holds: the FASLs, modules and system
    definitions it loads, the SBCL that dumps it and lispbuild's code."""
    contents = {
        "loads": [[path, ctx.digests.digest(ctx.root / path)] for path in request["loads"]],
        "requires": request["requires"],
        "asdf": [[system, asd, ctx.digests.digest(ctx.root / asd)]
                 for system, asd in request["asdf"]],
        "sbcl": ctx.digests.digest(find_sbcl().core),
        "lispbuild": package_digest(),
    }
    return hashlib.sha256(json.dumps(contents, sort_keys=True).encode()).hexdigest()


def dependency_image(request: dict, ctx: Context, dump) -> Path:
    """The image for `request` (library, loads, requires, asdf), dumped by
    `dump(core_path)` if it is not there yet."""
    images = ctx.build / ".lispbuild" / "images"
    images.mkdir(parents=True, exist_ok=True)
    library = request["library"]
    path = images / f"{library}-{image_key(request, ctx)[:32]}.core"
    with open(images / f"{library}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            scratch = path.with_suffix(".tmp")
            dump(scratch)
            for old in images.iterdir():
                if old.suffix == ".core" and old.name.rpartition("-")[0] == library:
                    old.unlink()
            scratch.rename(path)
    return path
