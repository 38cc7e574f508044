"""Where Debian's SBCL and musl toolchain live, and which package to
install when a part is missing.

The files named here are inputs of the actions that use them, so their
contents (SBCL's core carries its build-id, musl's libc.a its version, the
gcc driver its version) are part of every key that depends on them.
"""
import functools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import MissingToolchain

MUSL_LIB = Path("/usr/lib/x86_64-linux-musl")
# Debian's cl-asdf: ASDF upgrades itself to it when its registry finds it.
DEBIAN_ASDF = Path("/usr/share/common-lisp/source/cl-asdf")
GNU_LIB = Path("/usr/lib/x86_64-linux-gnu")


def find_program(name: str, package: str) -> Path:
    found = shutil.which(name)
    if not found:
        raise MissingToolchain(f"{name} is not on PATH: install the Debian package "
                               f"{package} (apt-get install {package})")
    return Path(found)


def _file(path: Path, package: str) -> Path:
    if not path.exists():
        raise MissingToolchain(f"{path} is missing: install the Debian package "
                               f"{package} (apt-get install {package})")
    return path


@dataclass(frozen=True)
class Sbcl:
    program: Path    # the sbcl runtime that compiles and dumps
    core: Path       # its core; the embedded core must come from this build
    runtime_o: Path  # the whole C runtime as one relocatable object


@dataclass(frozen=True)
class Musl:
    gcc: Path        # the musl-gcc wrapper
    real_gcc: Path   # the gcc it drives (its REALGCC default)
    specs: Path
    libc: Path
    zstd: Path       # the runtime reads zstd-compressed cores


@functools.cache
def find_sbcl() -> Sbcl:
    program = find_program("sbcl", "sbcl")
    home = Path(os.environ.get("SBCL_HOME") or program.resolve().parent.parent / "lib" / "sbcl")
    return Sbcl(program=program,
                core=_file(home / "sbcl.core", "sbcl"),
                runtime_o=_file(home / "sbcl.o", "sbcl"))


@functools.cache
def find_musl() -> Musl:
    return Musl(gcc=find_program("musl-gcc", "musl-tools"),
                real_gcc=find_program("x86_64-linux-gnu-gcc", "gcc").resolve(),
                specs=_file(MUSL_LIB / "musl-gcc.specs", "musl-dev"),
                libc=_file(MUSL_LIB / "libc.a", "musl-dev"),
                zstd=_file(GNU_LIB / "libzstd.a", "libzstd-dev"))


@dataclass(frozen=True)
class AsdfSource:
    """An ASDF newer than SBCL's own may be: its one-file asdf.lisp and version."""
    source: Path
    version_file: Path

    def version(self) -> tuple[int, ...]:
        return version_numbers(self.version_file.read_text().strip().strip('"'))


def version_numbers(text: str) -> tuple[int, ...]:
    """ASDF's versions ("3.3.6") as ASDF compares them: by their numbers."""
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def find_asdf_source() -> AsdfSource | None:
    """Debian's cl-asdf, when installed."""
    source = AsdfSource(DEBIAN_ASDF / "build" / "asdf.lisp", DEBIAN_ASDF / "version.lisp-expr")
    return source if source.source.exists() and source.version_file.exists() else None


def sbcl_files() -> list[Path]:
    """What identifies the Lisp toolchain: SBCL's core (it holds the
    build-id), and the ASDF that ASDF would upgrade itself to, if any
    (driver.py chooses between them)."""
    asdf = find_asdf_source()
    return [find_sbcl().core] + ([asdf.source, asdf.version_file] if asdf else [])


def runtime_files() -> list[Path]:
    """The runtime object the static executable is linked from."""
    return [find_sbcl().runtime_o]


def musl_files() -> list[Path]:
    """What identifies the C toolchain: musl's libc and specs, and gcc."""
    musl = find_musl()
    return [musl.gcc, musl.real_gcc, musl.specs, musl.libc]
