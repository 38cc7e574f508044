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
not an input: it is not in any key and never goes into the store. The
image is itself an Action, named by its key (what it loads, the SBCL that
dumps it, lispbuild's code) and kept under build/.lispbuild/images/, one
per library; compiles running in parallel wait for the one that dumps it.
"""
import fcntl
from pathlib import Path

from .rebuild import Action, Context, action_key


def dependency_image(action: Action, ctx: Context) -> Path:
    """The image `action` dumps (its one output, "core"), dumped now if this
    library has no image of the same key yet."""
    declared = ctx.root / action.outputs["core"]
    library = declared.stem
    path = declared.with_name(f"{library}-{action_key(action, ctx)[:32]}.core")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(declared.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            scratch = path.with_suffix(".tmp")
            action.run(action, ctx, {"core": scratch})
            for old in path.parent.glob("*.core"):
                if old.name.rpartition("-")[0] == library:
                    old.unlink()
            scratch.rename(path)
    return path
