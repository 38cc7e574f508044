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

from . import sysroot
from .errors import MissingToolchain
from .targets import HOST, TARGETS, is_host

# This machine's multiarch directories (targets.py names each machine's).
MUSL_LIB = Path("/usr/lib", TARGETS[HOST].musl)
# Debian's cl-asdf: ASDF upgrades itself to it when its registry finds it.
DEBIAN_ASDF = Path("/usr/share/common-lisp/source/cl-asdf")
GNU_LIB = Path("/usr/lib", TARGETS[HOST].gnu)


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
    # Another machine's runs under qemu, with its libraries from the sysroot.
    qemu: Path | None = None
    sysroot: Path | None = None

    def command(self, sysroot: Path | None = None) -> list[str]:
        """How to start it (another machine's with its sysroot at
        `sysroot`, when not where sysroot.py made it)."""
        if self.qemu is None:
            return [str(self.program)]
        root = sysroot or self.sysroot
        return [str(self.qemu), "-L", str(root),
                str(root / self.program.relative_to(self.sysroot))]

    @property
    def home(self) -> Path:
        """SBCL_HOME: where its contribs are (another machine's SBCL would
        otherwise find this one's)."""
        return self.core.parent


@dataclass(frozen=True)
class Musl:
    gcc: Path        # the musl-gcc wrapper (another machine's: its cross gcc)
    real_gcc: Path   # the gcc it drives (its REALGCC default)
    specs: Path
    libc: Path
    zstd: Path       # the runtime reads zstd-compressed cores

    def command(self) -> list:
        """How to compile and link with musl: musl-gcc, or for another
        machine its cross gcc with musl's specs there (sysroot.py)."""
        return [self.gcc] if self.gcc.name == "musl-gcc" else [self.gcc, "-specs", self.specs]


@functools.cache
def find_sbcl(target: str = "") -> Sbcl:
    if not is_host(target):
        root = sysroot.sysroot(target)
        program, home = root / "usr/bin/sbcl", root / "usr/lib/sbcl"
        package = f"sbcl:{TARGETS[target].debian}"
        return Sbcl(program=program, core=_file(home / "sbcl.core", package),
                    runtime_o=_file(home / "sbcl.o", package),
                    qemu=find_program(TARGETS[target].qemu, "qemu-user-static"), sysroot=root)
    program = find_program("sbcl", "sbcl")
    home = Path(os.environ.get("SBCL_HOME") or program.resolve().parent.parent / "lib" / "sbcl")
    return Sbcl(program=program,
                core=_file(home / "sbcl.core", "sbcl"),
                runtime_o=_file(home / "sbcl.o", "sbcl"))


@functools.cache
def find_musl(target: str = "") -> Musl:
    if not is_host(target):
        t = TARGETS[target]
        root = sysroot.sysroot(target)
        return Musl(gcc=find_program(f"{t.gnu}-gcc", f"gcc-{t.gnu}"),
                    real_gcc=find_program(f"{t.gnu}-gcc", f"gcc-{t.gnu}").resolve(),
                    specs=sysroot.specs(target),
                    libc=_file(root / "usr/lib" / t.musl / "libc.a", f"musl-dev:{t.debian}"),
                    zstd=_file(root / "usr/lib" / t.gnu / "libzstd.a", f"libzstd-dev:{t.debian}"))
    return Musl(gcc=find_program("musl-gcc", "musl-tools"),
                real_gcc=find_program(f"{TARGETS[HOST].gnu}-gcc", "gcc").resolve(),
                specs=_file(MUSL_LIB / "musl-gcc.specs", "musl-dev"),
                libc=_file(MUSL_LIB / "libc.a", "musl-dev"),
                zstd=_file(GNU_LIB / "libzstd.a", "libzstd-dev"))


def archive_path(target: str, archive: str) -> Path:
    """A declared archive (its host path) as `target` links it."""
    if is_host(target) or not os.path.isabs(archive):
        return Path(archive)
    return sysroot.sysroot(target) / sysroot.target_path(target, archive).lstrip("/")


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


def sbcl_files(target: str = "") -> list[Path]:
    """What identifies the Lisp toolchain: SBCL's core (it holds the
    build-id), and the ASDF that ASDF would upgrade itself to, if any
    (driver.py chooses between them)."""
    asdf = find_asdf_source()
    return [find_sbcl(target).core] + ([asdf.source, asdf.version_file] if asdf else [])


def runtime_files(target: str = "") -> list[Path]:
    """The runtime object the static executable is linked from."""
    return [find_sbcl(target).runtime_o]


def musl_files(target: str = "") -> list[Path]:
    """What identifies the C toolchain: musl's libc and specs, and gcc."""
    musl = find_musl(target)
    return [musl.gcc, musl.real_gcc, musl.libc] + ([musl.specs] if is_host(target) else [])


@functools.cache
def for_target(find, target: str):
    """`find` (sbcl_files, runtime_files, musl_files) of `target`'s
    toolchain, as an action's toolchain names it: one function per pair,
    named FIND@TARGET."""
    if is_host(target):
        return find

    def files() -> list[Path]:
        return find(target)
    files.__module__, files.__qualname__ = find.__module__, f"{find.__qualname__}@{target}"
    return files
