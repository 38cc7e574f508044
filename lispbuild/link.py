"""The static link: C sources compiled with musl-gcc, and the SBCL runtime
relinked -static from Debian's sbcl.o with the symbol table, the
glibc-compatibility layer and the declared archives. Also the development
runtime that warm workers run on (`link_dev_runtime`), and the library
preloaded into release dumps (`build_sorted_listings`)."""
import os
import re
import subprocess
from pathlib import Path

from . import layout
from .errors import CompileCFailure
from .scratch import tmp_prefix
from .targets import HOST, TARGETS
from .toolchain import find_musl, find_program, find_sbcl

COMPAT_SOURCE = Path(__file__).with_name("compat.c")
DEV_RUNTIME_SOURCE = Path(__file__).with_name("devruntime.c")
SORTED_LISTINGS_SOURCE = Path(__file__).with_name("sorteddir.c")
CFLAGS = ("-O2", "-fno-builtin")

# GNU ld: "ld: WHERE: in function `f':" then "...: undefined reference to `s'",
# or both on one line; WHERE an object or ARCHIVE(MEMBER).
_IN_FUNCTION = re.compile(r"(?:^|\bld: )(?P<where>\S+?): in function ")
_UNDEFINED = re.compile(r"undefined reference to [`'](?P<symbol>[^'`]+)'")
_WHERE = re.compile(r"\bld: (?P<where>\S+?\.(?:o|a\([^)]*\)))[:(]")
SHOWN_PLACES = 20
SHOWN_SYMBOLS = 12


def undefined_references(log: Path) -> dict[str, list[str]]:
    """{object or archive(member): [symbols it needs that nothing defines]},
    in the linker's order, read from its output line by line."""
    found: dict[str, list[str]] = {}
    where = "?"
    with open(log, errors="replace") as lines:
        for line in lines:
            function = _IN_FUNCTION.search(line)
            if function:
                where = function["where"]
            undefined = _UNDEFINED.search(line)
            if undefined:
                place = _WHERE.search(line)
                symbols = found.setdefault(place["where"] if place else where, [])
                if undefined["symbol"] not in symbols:
                    symbols.append(undefined["symbol"])
    return found


def _failure(what: str, returncode: int, kept: Path | None, cwd: Path) -> CompileCFailure:
    from . import output  # here, as in _run: a build with nothing to do needs it not
    shown = os.path.relpath(kept, cwd) if kept else None
    undefined = undefined_references(kept) if kept else {}
    if undefined:
        count = sum(map(len, undefined.values()))
        lines = [f"{what} failed: {count} undefined symbol{'s' if count != 1 else ''}, by "
                 f"what needs {'them' if count != 1 else 'it'}, in the linker's order:"]
        for where, symbols in list(undefined.items())[:SHOWN_PLACES]:
            more = len(symbols) - SHOWN_SYMBOLS
            lines.append(f"  {where}: {', '.join(symbols[:SHOWN_SYMBOLS])}"
                         + (f" and {more} more" if more > 0 else ""))
        if len(undefined) > SHOWN_PLACES:
            lines.append(f"  ... and {len(undefined) - SHOWN_PLACES} more objects")
    else:
        lines = [f"{what} failed (exit {returncode})"
                 + (":\n" + output.excerpt(kept, shown) if kept else "")]
    if shown:
        lines.append(f"the whole output: {shown}")
    return CompileCFailure("\n".join(lines))


def _run(command: list, what: str, cwd: Path, task: str):
    """Run a compiler or linker for `task`; what it printed is kept under
    build/ (output.py) and its failure says what failed, from the start."""
    from . import output
    build = cwd / layout.BUILD
    printed = layout.state(build, layout.OUTPUT) / f"{tmp_prefix()}{os.urandom(4).hex()}"
    printed.parent.mkdir(parents=True, exist_ok=True)
    with open(printed, "wb") as out:
        proc = subprocess.run([str(c) for c in command], cwd=cwd, stdout=out,
                              stderr=subprocess.STDOUT)
    kept = output.keep(printed, build, task)
    if proc.returncode != 0:
        raise _failure(what, proc.returncode, kept, cwd)


# A grovel file's C program asks for a library's header (libffi's ffi.h)
# from Debian's include directories, which musl-gcc leaves out: they are
# searched after musl's own, so the C library's headers stay musl's.
GROVEL_FLAGS = ("-idirafter", f"/usr/include/{TARGETS[HOST].gnu}", "-idirafter", "/usr/include")


def compile_c(source: Path, object_file: Path, cwd: Path, task: str, weak: bool = False,
              target: str = ""):
    """Compile one C source to an object with musl-gcc; `weak`: every
    symbol it defines weak, as for a library's C file (cffi-tests' libtest
    and libtest2 both define ns_function, each in its own shared library):
    in the one namespace of a static executable the first definition wins,
    as the first library loaded wins a global lookup."""
    musl = find_musl(target)
    _run([*musl.command(), *CFLAGS, "-c", source, "-o", object_file],
         f"{musl.gcc.name} on {source}", cwd, task)
    if weak:
        _run([find_program("objcopy", "binutils"), "--weaken", object_file],
             f"objcopy on {object_file.name}", cwd, task)


def link_runtime(objects: list[Path], archives: list[Path], runtime: Path, cwd: Path,
                 task: str, target: str = ""):
    """Link the SBCL runtime statically (`target`'s, with its musl).
    Objects (the symbol table, compat layer and project C code) come
    first, so their definitions win; archives come after what references
    them."""
    musl = find_musl(target)
    _run([*musl.command(), "-static", "-o", runtime, find_sbcl(target).runtime_o, *objects,
          *archives, musl.zstd, "-lm"], f"{task}: the static link", cwd, task)


def link_dev_runtime(runtime: Path, cwd: Path, task: str):
    """SBCL's runtime as Debian links it (glibc, dynamic; sbcl.mk), with the
    heap verification of devruntime.c in place of sbcl.o's."""
    weakened = runtime.with_name("sbcl-dev.o")
    stub = runtime.with_name("devruntime.o")
    _run([find_program("objcopy", "binutils"), "--weaken-symbol=verify_heap",
          find_sbcl().runtime_o, weakened], "objcopy on sbcl.o", cwd, task)
    gcc = find_program("gcc", "gcc")
    _run([gcc, "-O2", "-c", DEV_RUNTIME_SOURCE, "-o", stub], "gcc on devruntime.c", cwd, task)
    _run([gcc, "-Wl,--export-dynamic", "-o", runtime, weakened, stub,
          "-ldl", "-lpthread", "-lzstd", "-lm"], "linking the development runtime", cwd, task)


def shared_library(source: Path, library: Path, cwd: Path, task: str):
    """A C file of a Lisp library as a shared library for glibc, for the
    SBCL that loads the library's code (its static executable links the
    object musl-gcc makes instead)."""
    _run([find_musl().real_gcc, "-shared", "-fPIC", "-O2", f"-Wl,-soname,{library.name}",
          "-o", library, source], f"gcc on {source}", cwd, task)


def build_sorted_listings(library: Path, cwd: Path, task: str, target: str = ""):
    """sorteddir.c as a shared library for glibc (`target`'s), built with
    the gcc that musl-gcc drives, or the target's cross gcc (a release's
    manifest names it)."""
    _run([find_musl(target).real_gcc, "-shared", "-fPIC", "-O2", "-o", library,
          SORTED_LISTINGS_SOURCE, "-ldl"], "gcc on sorteddir.c", cwd, task)
