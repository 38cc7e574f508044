"""Declaring targets: the Lisp libraries and static binaries of a project,
and the tasks that run the binaries, as plain data.

This is the API a project's dodo.py uses; see docs/declaring.md.
"""
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import DeclarationError
from .remote import remote_config
from .settings import settings
from .targets import check_targets

POLICY_QUALITIES = ("speed", "safety", "debug", "space", "compilation-speed")
# SBCL reads these in a namestring as a wildcard pattern, and doit a task
# name holding "*" as a pattern of task names.
WILDCARDS = "*?["


def check_path(what: str, path) -> str:
    """A source path: relative, inside its directory, no wildcard."""
    path = str(path)
    if os.path.isabs(path) or ".." in Path(path).parts:
        raise DeclarationError(f"{what}: source {path!r} must be a path inside the "
                               f"library's directory (set directory= for files elsewhere)")
    if any(c in path for c in WILDCARDS):
        raise DeclarationError(f"{what}: source {path!r} contains one of {WILDCARDS}, which "
                               f"SBCL reads as a wildcard; rename the file")
    return path


def library_name(system: str) -> str:
    """ASDF's secondary systems are "primary/secondary"; a library name has no /."""
    return system.replace("/", "--")


def shared_store() -> Path:
    """The per-user store that several projects can share."""
    import platformdirs  # here: a build that does not use it need not import it
    return platformdirs.user_cache_path("lispbuild") / "store"


@dataclass(frozen=True)
class Source:
    path: str                 # relative to the library's directory
    needs: tuple[str, ...]    # files of the same library loaded before compiling it
    external_format: str = "utf-8"
    grovel: bool = False      # a CFFI grovel file: its groveller writes the Lisp compiled
    wrapper: bool = False     # a CFFI wrapper file (grovel too): it also writes a C library


@dataclass(frozen=True)
class Library:
    name: str
    directory: Path           # relative to the project root
    sources: tuple[Source, ...]
    depends_on: tuple[str, ...]
    features: tuple[str, ...]
    policy: tuple[tuple[str, int], ...]
    fail_on_warning: bool
    requires: tuple[str, ...] = ()   # SBCL modules (contribs) to REQUIRE first
    asdf_system: str | None = None   # the ASDF system it was derived from
    asd: str | None = None           # that system's .asd file
    version: str | None = None       # that system's :version
    found_in: str | None = None      # where ASDF found it, in words (asdf_registry.origin)
    unavailable: str = ""            # why ASDF could not give it: what needs it fails
    planned_from: tuple[str, ...] = ()  # the project's files ASDF read to plan it
    c_sources: tuple[str, ...] = ()  # C files of an ASDF system (c-source-file components)
    # What ASDF's program-op would make of the system: (entry, binary name).
    program: tuple[str, str] | None = None
    # The known test framework whose runner its test-op calls (asdf.py).
    test_runner: str | None = None
    target: str = ""                 # planned for another machine (targets.py); "": the host


@dataclass(frozen=True)
class Binary:
    name: str
    libraries: tuple[str, ...]
    entry: str
    c_sources: tuple[Path, ...]
    archives: tuple[Path, ...]
    compression: bool
    # shared-object name (as the image loads it, up to ".so") -> archives
    foreign_libraries: tuple[tuple[str, tuple[Path, ...]], ...] = ()
    test: bool = False        # entry is a test function: true means pass
    version: str | None = None       # of its release archive (else its system's)
    smoke_args: tuple[str, ...] | None = None  # a release's smoke run; None: none
    # Which list an entry of one argument gets (ENTRY_ARGUMENTS), or None.
    entry_arguments: str | None = None
    # "package:function" a development executable reloads through, or None.
    reload_hook: str | None = None
    # The compilation mode of its project libraries (modes.py); None: the build's.
    mode: str | None = None
    # A suite its system's test-op runs: (system, framework) (asdf.py).
    test_op: tuple[str, str] | None = None
    # Files embedded in the executable, opened by name: (name, path) (embed.py).
    resources: tuple[tuple[str, str], ...] = ()
    targets: tuple[str, ...] = ()    # the machines it is built for; (): the host (targets.py)
    target: str = ""                 # the one this plan of it is for; "": the host


# An entry of one argument is called with sb-ext:*posix-argv* (the program's
# name first, as buildapp calls main) or with uiop:command-line-arguments
# (without it): the binary says which.
ENTRY_ARGUMENTS = ("posix-argv", "command-line-arguments")
# The compilation modes (modes.py says what each is).
MODES = ("fastbuild", "opt", "dbg")


@dataclass(frozen=True)
class Run:
    name: str
    binary: str
    args: tuple[str, ...]
    exit_code: int


def _sources(library: str, sources) -> tuple[Source, ...]:
    """A list means serial order; a dict maps each file to those it needs."""
    if isinstance(sources, (str, os.PathLike)):
        raise DeclarationError(f"library {library}: sources must be a list or a dict, "
                               f"not the single path {sources!r}")
    if isinstance(sources, dict):
        declared = []
        result = []
        for path, needs in sources.items():
            for need in needs:
                if need not in declared:
                    raise DeclarationError(
                        f"library {library}: {path} needs {need}, which is not "
                        f"listed before it in sources")
            result.append(Source(check_path(f"library {library}", path), tuple(needs)))
            declared.append(str(path))
        return tuple(result)
    paths = [check_path(f"library {library}", p) for p in sources]
    return tuple(Source(p, tuple(paths[:i])) for i, p in enumerate(paths))


def _resources(binary: str, root: Path, given: dict) -> tuple[tuple[str, str], ...]:
    """(name, path) of each file a binary's resources= embeds, by name."""
    if not isinstance(given, dict):
        raise DeclarationError(f"binary {binary}: resources= must map names to files or "
                               f"directories, not {given!r}")
    found = {}
    for name, path in given.items():
        parts = str(name).split("/")
        if not name or str(name).startswith("/") or ".." in parts or "" in parts:
            raise DeclarationError(f"binary {binary}: resource name {name!r} must be a "
                                   f"relative name without .. or empty parts")
        where = root / path
        if where.is_dir():
            found.update({f"{name}/{f.relative_to(where).as_posix()}": str(Path(path) / f.relative_to(where))
                          for f in sorted(where.rglob("*")) if f.is_file()})
        elif where.is_file():
            found[str(name)] = str(path)
        else:
            raise DeclarationError(f"binary {binary}: resource {name!r}: {path} is not a "
                                   f"file or directory under {root}")
    return tuple(sorted(found.items()))


def _policy(library: str, policy: dict) -> tuple[tuple[str, int], ...]:
    for quality, level in policy.items():
        if quality not in POLICY_QUALITIES:
            raise DeclarationError(f"library {library}: unknown policy quality {quality!r}; "
                                   f"known: {', '.join(POLICY_QUALITIES)}")
        if level not in (0, 1, 2, 3):
            raise DeclarationError(f"library {library}: policy {quality} must be 0 to 3, "
                                   f"not {level!r}")
    return tuple(sorted(policy.items()))


class Project:
    """A project's declarations. `root` defaults to the current directory,
    which doit sets to the directory of dodo.py; `store` defaults to the
    LISPBUILD_STORE environment variable, else ROOT/cache. `remote`,
    `remote_upload` and `trusted_keys` set up a remote store (remote.py);
    each defaults to its environment variable. `hermetic=True` (or
    LISPBUILD_HERMETIC=1) finds ASDF systems in the `registry=` trees and
    Debian's sources only, not where the user's ASDF configuration and
    Quicklisp say (asdf_system)."""

    def __init__(self, root=None, store=None, *, remote=None, remote_upload=None,
                 trusted_keys=None, hermetic=False):
        self.root = Path(root or os.getcwd()).absolute()
        store = store or settings().store or self.root / "cache"
        self.store = (self.root / store).absolute()
        self.remote = remote_config(self.root, remote, remote_upload, trusted_keys)
        self.hermetic = bool(hermetic)
        if any(c in str(self.root) for c in WILDCARDS):
            raise DeclarationError(f"the project's path {self.root} contains one of "
                                   f"{WILDCARDS}, which SBCL reads as a wildcard; build "
                                   f"it from a directory without them")
        self.libraries: dict[str, Library] = {}
        self.binaries: dict[str, Binary] = {}
        self.runs: dict[str, Run] = {}
        self.tests: dict[str, Run] = {}
        # ASDF systems asked for, by name, each with its fail_on_warning.
        self.asdf_systems_by_name: dict[str, bool] = {}
        self.asdf_registry: list[str] = []

    def _check_name(self, kind: str, name: str, table: dict):
        if (not isinstance(name, str) or name in ("", ".", "..")
                or any(c in name for c in "/:" + WILDCARDS)):
            raise DeclarationError(f"{kind} name {name!r} must be a file name other than "
                                   f". and .., without / : or {WILDCARDS}")
        if name in table:
            raise DeclarationError(f"{kind} {name} is declared twice")

    def library(self, name, sources, *, directory=".", depends_on=(), features=(),
                policy=None, fail_on_warning=True) -> Library:
        """Declare a Lisp library: its source files in load order (a list),
        or a dict mapping each file to the earlier files it needs."""
        self._check_name("library", name, self.libraries)
        library = Library(name=name, directory=Path(directory),
                          sources=_sources(name, sources),
                          depends_on=tuple(depends_on),
                          features=tuple(str(f).upper() for f in features),
                          policy=_policy(name, policy or {}),
                          fail_on_warning=bool(fail_on_warning))
        self.libraries[name] = library
        return library

    def asdf_system(self, name, *, registry=(".",), fail_on_warning=True):
        """Declare an ASDF system and, through ASDF, every system it depends
        on: each becomes a library of the same name ("/" becomes "--").
        ASDF searches the `registry` directories (trees, relative to the
        root) first, then where the user's ASDF would: its source registry
        (CL_SOURCE_REGISTRY, ~/.config/common-lisp/source-registry.conf and
        .conf.d/, Debian's /usr/share/common-lisp/source/), then
        ~/quicklisp/'s local-projects and dists; a hermetic Project, the
        trees and Debian's sources only. `fail_on_warning`
        applies to this system's files; declare a dependency too to set it
        for that one."""
        if not name:
            raise DeclarationError("asdf_system needs a system name")
        self.asdf_systems_by_name[str(name).lower()] = bool(fail_on_warning)
        for directory in registry:
            if str(directory) not in self.asdf_registry:
                self.asdf_registry.append(str(directory))

    def binary(self, name, *, libraries, entry, entry_arguments=None, c_sources=(),
               archives=(), foreign_libraries=None, compression=False, version=None,
               smoke_args=None, test=False, reload_hook=None, mode=None,
               resources=None, targets=None) -> Binary:
        """Declare a static executable, build/bin/NAME. `entry` names the
        function (\"package:function\") the program runs; an integer it
        returns is the exit code. `libraries` are declared libraries or
        ASDF systems, by name (a secondary system as "cffi-tests/example").
        A function of no arguments is called with none; one whose lambda
        list is only &rest with the arguments spread; one of one argument
        with the list `entry_arguments` names:
        "posix-argv" (sb-ext:*posix-argv*, the program's name first) or
        "command-line-arguments" (without it).
        `foreign_libraries` maps each shared library the image loads at
        build time (CFFI's use-foreign-library, load-shared-object), named
        as its file is up to ".so", to the static archives that replace it.
        `version` names its release archive (default: the :version of the
        ASDF system of its first library that has one); `smoke_args`, if
        given, are the arguments of one run of the release executable,
        which must exit with 0 (release.py).
        `reload_hook` ("package:function") is where `doit watch run:NAME`
        may load new code into the running development executable: the
        function is called with a function of no arguments, which it calls
        where the program's code can be replaced (docs/watch.md); without
        it, new code is loaded at once, as an editor's C-c C-k does.
        `mode` ("fastbuild", "opt" or "dbg") compiles the project's
        libraries it uses in that mode, whatever LISPBUILD_MODE says
        (docs/declaring.md, "Compilation modes").
        `resources` maps names to files or directories (relative to the
        root) embedded in the executable: the program opens them by name,
        wherever it runs (lispbuild/resources:resource-pathname "NAME"); a
        directory gives each file under it as NAME/its path.
        `targets` names the machines it is built for ("x86_64-linux",
        "aarch64-linux"; default: this one): another machine's executable
        is build/TARGET/bin/NAME, made by task exe:NAME@TARGET
        (docs/targets.md)."""
        self._check_name("binary", name, self.binaries)
        for what, value in (("entry", entry), ("reload_hook", reload_hook)):
            if value is not None and ":" not in value:
                raise DeclarationError(f"binary {name}: {what} {value!r} must be "
                                       f"package:function")
        if entry_arguments is not None and entry_arguments not in ENTRY_ARGUMENTS:
            raise DeclarationError(f"binary {name}: entry_arguments={entry_arguments!r} must be "
                                   f"\"posix-argv\" (the program's name first) or "
                                   f"\"command-line-arguments\" (without it)")
        if version is not None and (not isinstance(version, str)
                                    or not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z.+~_-]*", version)):
            raise DeclarationError(f"binary {name}: version {version!r} must be a string of "
                                   f"letters, digits and . + ~ _ - (it names a file)")
        if mode is not None and mode not in MODES:
            raise DeclarationError(f"binary {name}: mode {mode!r} must be one of "
                                   f"{', '.join(MODES)}")
        binary = Binary(name=name, libraries=tuple(map(library_name, libraries)), entry=entry,
                        c_sources=tuple(Path(p) for p in c_sources),
                        archives=tuple(Path(p) for p in archives),
                        foreign_libraries=tuple(
                            (str(lib), tuple(Path(p) for p in paths))
                            for lib, paths in (foreign_libraries or {}).items()),
                        compression=bool(compression), test=bool(test), version=version,
                        entry_arguments=entry_arguments, reload_hook=reload_hook, mode=mode,
                        smoke_args=None if smoke_args is None
                        else tuple(str(a) for a in smoke_args),
                        resources=_resources(name, self.root, resources or {}),
                        targets=() if targets is None else check_targets(name, targets))
        self.binaries[name] = binary
        return binary

    def test(self, name, *, libraries, function, c_sources=(), archives=(),
             foreign_libraries=None, version=None, targets=None) -> Binary:
        """Declare a test suite: a static executable build/bin/NAME that
        calls `function` ("package:function") with no arguments and exits 0
        if it returns true, 1 if false; and a task test:NAME that runs it,
        shows its output and fails unless it passed. Its release's smoke
        run is the suite itself. `targets`: as for a binary; test:NAME@TARGET
        runs another machine's suite."""
        binary = self.binary(name, libraries=libraries, entry=function, c_sources=c_sources,
                             archives=archives, foreign_libraries=foreign_libraries,
                             version=version, smoke_args=(), test=True, targets=targets)
        self.tests[name] = Run(name=name, binary=name, args=(), exit_code=0)
        return binary

    def run(self, name, *, binary, args=(), exit_code=0) -> Run:
        """Declare a task run:NAME that runs build/bin/BINARY with args and
        fails unless it exits with exit_code."""
        self._check_name("run", name, self.runs)
        run = Run(name=name, binary=binary, args=tuple(str(a) for a in args),
                  exit_code=int(exit_code))
        self.runs[name] = run
        return run
