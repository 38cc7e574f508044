"""Every path lispbuild writes in a project, named once.

What tasks make, from the project root (doit's targets):

    build/fasl/LIB/FILE.fasl        a compiled source file
    build/grovel/LIB/FILE.lisp, .c  what CFFI-GROVEL wrote for a grovel or wrapper file
    build/clib/                     C wrappers as shared libraries, for the SBCLs that compile
    build/obj/PATH.o                a C source compiled with musl-gcc
    build/undefined/LIB.txt         the undefined functions and variables a library leaves
    build/core/NAME.core, .linkage, .shared-objects
    build/linkage/NAME-symbols.c    the foreign symbols the runtime is linked with
    build/runtime/NAME              the static runtime
    build/bin/NAME                  the executable
    build/TARGET/...                the C objects and stages of another machine's (targets.py)
    build/release/NAME/...          the same stages of a release
    build/coverage/                 `doit coverage`'s reports; runs/ what each suite covered
    dist/NAME-VERSION-PLATFORM.tar.gz

The builder's own state, under build/.lispbuild/:

    digests.sqlite3   file digests, what each task's outputs were made for, what it read
    doit.sqlite3      doit's own record (its dep_file)
    build.lock        held by the build that owns build/; locks/TASK for its own artifacts
    log               tracebacks of faults in lispbuild itself
    output/           what each task printed
    scratch/          outputs being built
    workers/, images/ warm workers' registry files and saved images
    lisp/             lispbuild's compiled Lisp and development runtime
    asdf-cache/, asdf-trees.json   ASDF's FASL cache for plan queries; the trees it searched
    watch.json, watch-report.json  what a watch reads of a build
    reload/NAME.json, .sock  what the program a watch runs holds; where it listens
    remote-fault-PID  the remote store failed for the build PID owns
"""
import posixpath
from pathlib import Path, PurePosixPath

BUILD = "build"
DIST = "dist"
SHARED_LIBRARIES = f"{BUILD}/clib"


def fasl(library: str, source: str) -> str:
    return f"{BUILD}/fasl/{library}/{posixpath.splitext(source)[0]}.fasl"


def grovel_lisp(fasl_path: str) -> str:
    """Where CFFI-GROVEL's Lisp for the file compiled to `fasl_path` goes."""
    return (f"{BUILD}/grovel/" + fasl_path.removeprefix(f"{BUILD}/fasl/").removesuffix(".fasl")
            + ".lisp")


def _of(target: str) -> str:
    """Where another machine's stages are: build/TARGET/."""
    return f"{BUILD}/{target}" if target else BUILD


def c_object(source: str, target: str = "") -> str:
    return str(PurePosixPath(f"{_of(target)}/obj", source.lstrip("/")).with_suffix(".o"))


def undefined_report(library: str) -> str:
    return f"{BUILD}/undefined/{library}.txt"


def executable(name: str, target: str = "") -> str:
    return f"{_of(target)}/bin/{name}"


def binary_stages(name: str, release: bool, target: str = "") -> dict[str, str]:
    """The outputs of the stages that make the executable `name` (for
    `target`, under build/TARGET/)."""
    build = _of(target)
    if release:
        here = f"{build}/release/{name}"
        return {"core": f"{here}/{name}.core", "linkage": f"{here}/{name}.linkage",
                "shared_objects": f"{here}/{name}.shared-objects",
                "symbols": f"{here}/symbols.c", "runtime": f"{here}/runtime",
                "exe": f"{here}/{name}"}
    return {"core": f"{build}/core/{name}.core", "base_core": f"{build}/core/{name}.base.core",
            "linkage": f"{build}/core/{name}.linkage",
            "shared_objects": f"{build}/core/{name}.shared-objects",
            "symbols": f"{build}/linkage/{name}-symbols.c",
            "runtime": f"{build}/runtime/{name}", "exe": executable(name, target)}


def archive(name: str, version: str, platform: str) -> str:
    return f"{DIST}/{name}-{version}-{platform}.tar.gz"


# The builder's state: names under build/.lispbuild/.
STATE = ".lispbuild"
DIGESTS = "digests.sqlite3"
DOIT = "doit.sqlite3"
BUILD_LOCK = "build.lock"
LOCKS = "locks"
LOG = "log"
OUTPUT = "output"
SCRATCH = "scratch"
WORKERS = "workers"
IMAGES = "images"
TOOLS = "lisp"
ASDF_CACHE = "asdf-cache"
ASDF_TREES = "asdf-trees.json"
WATCH = "watch.json"
WATCH_REPORT = "watch-report.json"
REMOTE_FAULT = "remote-fault-"


def state(build: Path, name: str) -> Path:
    """The state `name` of the build directory `build`."""
    return build / STATE / name


def from_root(name: str) -> str:
    """The state `name`, from the project root (as messages name it)."""
    return f"{BUILD}/{STATE}/{name}"
