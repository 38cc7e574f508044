"""Errors a user can act on: each message names the file, line, symbol or
package that is at fault."""
from doit.exceptions import InvalidDodoFile


class LispbuildError(Exception):
    """Base of every error lispbuild reports as a failed task."""


class DeclarationError(LispbuildError, InvalidDodoFile):
    """The declarations in dodo.py are inconsistent; doit reports it as
    "ERROR: ..." without a traceback."""


class DependencyCycle(DeclarationError):
    """Libraries depend on each other in a cycle."""


class MissingSource(LispbuildError):
    """A declared source file does not exist."""


class MissingToolchain(LispbuildError):
    """A program or file from a Debian package is not installed."""


class LispFailure(LispbuildError):
    """SBCL could not read, compile or load a file, or dump the image."""


class UnresolvedSymbols(LispbuildError):
    """The image needs foreign symbols that nothing to be linked provides."""


class UndeclaredForeignLibrary(LispbuildError):
    """The image loads a shared library that no declared archive replaces."""


class CompileCFailure(LispbuildError):
    """musl-gcc could not compile a C source or link the runtime."""


class NotStatic(LispbuildError):
    """The executable would need a dynamic loader."""


class BuildGone(LispbuildError):
    """The process that owns the build (doit's main process) is gone."""


class CorruptObject(LispbuildError):
    """A stored object's bytes do not match its digest (it was removed)."""


class InputUnreadable(LispbuildError):
    """An input file exists but cannot be read (a directory, no permission)."""


class TimeLimit(LispbuildError):
    """A task ran longer than its time limit."""


class ReleaseFailure(LispbuildError):
    """A release cannot be made or checked: no version, a failed smoke run,
    an archive that is not one, sources or toolchain other than recorded."""


class UnsoundReuse(LispbuildError):
    """LISPBUILD_CHECK_REUSE: a FASL its trace would have reused differs
    from the one compiled afresh (reuse.py)."""
