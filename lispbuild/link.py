"""The static link: C sources compiled with musl-gcc, and the SBCL runtime
relinked -static from Debian's sbcl.o with the symbol table, the
glibc-compatibility layer and the declared archives. Also the development
runtime that warm workers run on (`link_dev_runtime`), and the library
preloaded into release dumps (`build_sorted_listings`)."""
import subprocess
from pathlib import Path

from .errors import CompileCFailure
from .toolchain import find_musl, find_program, find_sbcl

COMPAT_SOURCE = Path(__file__).with_name("compat.c")
DEV_RUNTIME_SOURCE = Path(__file__).with_name("devruntime.c")
SORTED_LISTINGS_SOURCE = Path(__file__).with_name("sorteddir.c")
CFLAGS = ("-O2", "-fno-builtin")


def _run(command: list, what: str, cwd: Path):
    proc = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True,
                          errors="replace")
    if proc.returncode != 0:
        raise CompileCFailure(f"{what} failed (exit {proc.returncode}):\n"
                              f"{(proc.stderr + proc.stdout).strip()[-4000:]}")


def compile_c(source: Path, output: Path, cwd: Path):
    """Compile one C source to an object with musl-gcc."""
    _run([find_musl().gcc, *CFLAGS, "-c", source, "-o", output], f"musl-gcc on {source}", cwd)


def link_runtime(objects: list[Path], archives: list[Path], output: Path, cwd: Path):
    """Link the SBCL runtime statically. Objects (the symbol table, compat
    layer and project C code) come first, so their definitions win;
    archives come after what references them."""
    musl = find_musl()
    _run([musl.gcc, "-static", "-o", output, find_sbcl().runtime_o, *objects,
          *archives, musl.zstd, "-lm"], f"static link of {output.name}", cwd)


def link_dev_runtime(output: Path, cwd: Path):
    """SBCL's runtime as Debian links it (glibc, dynamic; sbcl.mk), with the
    heap verification of devruntime.c in place of sbcl.o's."""
    weakened = output.with_name("sbcl-dev.o")
    stub = output.with_name("devruntime.o")
    _run([find_program("objcopy", "binutils"), "--weaken-symbol=verify_heap",
          find_sbcl().runtime_o, weakened], "objcopy on sbcl.o", cwd)
    gcc = find_program("gcc", "gcc")
    _run([gcc, "-O2", "-c", DEV_RUNTIME_SOURCE, "-o", stub], "gcc on devruntime.c", cwd)
    _run([gcc, "-Wl,--export-dynamic", "-o", output, weakened, stub,
          "-ldl", "-lpthread", "-lzstd", "-lm"], "linking the development runtime", cwd)


def build_sorted_listings(output: Path, cwd: Path):
    """sorteddir.c as a shared library for glibc, built with the gcc that
    musl-gcc drives (a release's manifest names it)."""
    _run([find_musl().real_gcc, "-shared", "-fPIC", "-O2", "-o", output,
          SORTED_LISTINGS_SOURCE, "-ldl"], "gcc on sorteddir.c", cwd)
