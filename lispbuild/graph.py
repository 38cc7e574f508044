"""The task graph: from declarations to what each compilation and each
dump loads first (a load state, steps.py), and what must run before it.

A library's files are compiled with its dependencies loaded: for each
library they need, in order, its SBCL modules, its ASDF definition and its
FASLs. Its own files then load the earlier files of the library they need;
files that need nothing of each other compile in parallel.

Libraries load in an order where a library's biggest dependency comes
first, whole: the state of a library's dependencies then starts with the
complete state of that dependency, and a warm worker that holds it can
serve the library's compiles after loading only the rest.
"""
import posixpath
from dataclasses import dataclass, replace

from . import layout, modes, targets
from .declare import Binary, Library, Project
from .errors import DeclarationError, DependencyCycle
from .steps import EMPTY, LoadState


@dataclass(frozen=True)
class FaslNode:
    name: str                 # LIB/FILE, the task is fasl:LIB/FILE
    library: Library
    source: str               # relative to the project root
    fasl: str                 # relative to the project root
    grovel: str               # a CFFI grovel file whose groveller writes `source`, or ""
    wrapper_c: str            # the C library a CFFI wrapper file writes beside `source`, or ""
    undefined: str            # what it refers to undefined (driver.lisp), beside the FASL
    after: tuple[str, ...]    # tasks that write what `state` loads
    base: LoadState           # the library's dependencies and prologue
    state: LoadState          # base, then the library's files this one needs
    external_format: str
    step: tuple = ()          # the step that loads its FASL, as later states hold it
    top: bool = False         # no other library depends on its library
    follower: str = ""        # the file compiled next in the same process, if any (below)


@dataclass(frozen=True)
class BinaryNode:
    binary: Binary
    after: tuple[str, ...]
    state: LoadState          # every library the binary needs, loaded
    features: tuple[str, ...]
    mode: str = modes.DEFAULT  # the compilation mode of its project libraries (modes.py)
    unavailable: str = ""     # why it cannot be built (a system ASDF could not give)
    c_sources: tuple[str, ...] = ()   # its libraries' C files, linked in


@dataclass(frozen=True)
class Graph:
    fasls: dict[str, FaslNode]
    binaries: dict[str, BinaryNode]
    libraries: dict[str, Library]
    complete: dict[str, LoadState]   # each library's state with all of it loaded
    # For `doit coverage`: the instrumented test binaries, and a state with
    # all their libraries loaded (where the report is made).
    coverage: tuple[str, ...] = ()
    coverage_state: LoadState = EMPTY


def library_task(name: str) -> str:
    """The task that stands for all the FASLs of a library: it checks what
    they refer to that the whole library leaves undefined."""
    return f"lib:{name}"


def check_dependencies(libraries: dict[str, Library], roots):
    """Raise on a cycle or an undeclared library among what `roots`
    ((wanted_by, name) pairs) need."""
    state = {}

    def visit(name, path, wanted_by):
        if name not in libraries:
            raise DeclarationError(f"{wanted_by} depends on library {name}, "
                                   f"which is not declared")
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = path[path.index(name):] + [name]
            raise DependencyCycle("libraries depend on each other in a cycle: "
                                  + " -> ".join(cycle))
        state[name] = "visiting"
        for dep in libraries[name].depends_on:
            visit(dep, path + [name], f"library {name}")
        state[name] = "done"

    for wanted_by, name in roots:
        visit(name, [], wanted_by)


def _fasl_path(library: Library, source: str) -> str:
    # Strings, not pathlib: a big project has thousands of files.
    if ".." in source:  # an ASDF component outside its system's directory
        source = "/".join("up" if part == ".." else part for part in source.split("/"))
    return layout.fasl(library.name, source)


ASDF_STEP = ("require", "ASDF")


def library_c_sources(library: Library) -> list[str]:
    """A library's C files, as paths from the project root (or absolute)."""
    return [posixpath.normpath(posixpath.join(str(library.directory), c))
            for c in library.c_sources]


def wrapper_c_source(fasl: str) -> str:
    """Where the C library a CFFI wrapper file specifies is written: beside
    its Lisp bindings, by the file's name, which is the library's."""
    return layout.grovel_lisp(fasl).removesuffix(".lisp") + ".c"


def library_wrapper_c_sources(library: Library) -> list[str]:
    return [wrapper_c_source(_fasl_path(library, s.path)) for s in library.sources if s.wrapper]


def shared_library_task(c_source: str) -> str:
    return f"clib:{c_source}"


def shared_library(c_source: str) -> str:
    """The shared library built from a C file of a library, for the SBCLs
    that load the library's code: by its file's name, as the code asks the
    dynamic loader for it (cffi-tests' libtest.c is libtest.so)."""
    return f"{layout.SHARED_LIBRARIES}/{posixpath.splitext(posixpath.basename(c_source))[0]}.so"


def prologue_steps(library: Library) -> tuple:
    """What a library's files need of it before any of them: its modules
    and its ASDF definition, ASDF first (a no-op once loaded; it makes
    ASDF the first step of most states, which one worker then holds for
    all)."""
    return (*(("require", m) for m in library.requires),
            *((ASDF_STEP, ("asdf", library.asdf_system, library.asd))
              if library.asdf_system else ()),
            *(("foreign", shared_library(c)) for c in library_c_sources(library)))


def load_steps(library: Library) -> dict[str, tuple]:
    """The step that loads each of a library's files, by path. A file of an
    ASDF system names the system and the source, so that the image loads it
    as ASDF's LOAD-OP would, inside the methods the system adds."""
    if not library.asdf_system:
        return {s.path: ("load", _fasl_path(library, s.path)) for s in library.sources}
    directory = str(library.directory)
    return {s.path: ("load", _fasl_path(library, s.path)) if s.grovel else
            ("load", _fasl_path(library, s.path), library.asdf_system,
             posixpath.normpath(posixpath.join(directory, s.path)))
            for s in library.sources}


def loaded_steps(library: Library) -> tuple:
    """What follows a library's last file: ASDF's LOAD-OP of its system."""
    return (("loaded", library.asdf_system),) if library.asdf_system else ()


def library_steps(library: Library) -> tuple:
    """What loading a library is: its prologue, its FASLs, its epilogue."""
    return (*prologue_steps(library), *load_steps(library).values(), *loaded_steps(library))


class _Orders:
    """Load orders and states of libraries, each computed once."""

    def __init__(self, libraries: dict[str, Library]):
        self.libraries = libraries
        self._orders: dict[str, list[str]] = {}
        self._sizes: dict[str, int] = {}
        self._complete: dict[str, LoadState] = {}
        self._extended: dict[tuple[int, str], LoadState] = {}
        self._steps: dict[str, tuple] = {}

    def steps(self, name: str) -> tuple:
        if name not in self._steps:
            self._steps[name] = library_steps(self.libraries[name])
        return self._steps[name]

    def _size(self, name: str) -> int:
        if name not in self._sizes:
            self._sizes[name] = sum(len(self.steps(n)) for n in self.order(name))
        return self._sizes[name]

    def merged(self, names) -> list[str]:
        """The libraries `names` need, themselves included, dependencies
        first, the biggest one's whole order leading."""
        ranked = sorted(dict.fromkeys(names), key=lambda n: -self._size(n))
        order = {}
        for name in ranked:
            order.update((n, None) for n in self.order(name) if n not in order)
        return list(order)

    def order(self, name: str) -> list[str]:
        if name not in self._orders:
            self._orders[name] = self.merged(self.libraries[name].depends_on) + [name]
        return self._orders[name]

    def state_of(self, names, target: str = "") -> LoadState:
        """The state with the libraries `names` (of `target`) need,
        themselves included, loaded."""
        order = self.merged(names)
        if not order:
            return targets.root_state(target) or EMPTY
        state = self.complete(order[0])
        for name in order[len(self.order(order[0])):]:
            state = self._with_library(state, name)
        return state

    def _with_library(self, state: LoadState, name: str) -> LoadState:
        """`state` with a library loaded after it: one object for each such
        pair, so that the states of libraries that load the same libraries
        in the same order share their chain (and its digests)."""
        key = (id(state), name)
        if key not in self._extended:
            self._extended[key] = state.extend(self.steps(name))
        return self._extended[key]

    def base(self, name: str) -> LoadState:
        """What each of a library's files is compiled with, at least: its
        dependencies and its own prologue."""
        library = self.libraries[name]
        return self.state_of(library.depends_on, library.target).extend(
            prologue_steps(library))

    def complete(self, name: str) -> LoadState:
        if name not in self._complete:
            library = self.libraries[name]
            self._complete[name] = self.base(name).extend(self.steps(name)[
                len(prologue_steps(library)):])
        return self._complete[name]


def _library_fasls(library: Library, base: LoadState, after_deps: tuple,
                   top: bool) -> list[FaslNode]:
    """The nodes of a library's files. A file that needs every earlier file
    (a list, an ASDF system) extends the state of the one before it."""
    nodes, needed_by, loaded = [], {}, base
    paths = tuple(s.path for s in library.sources)
    loads = load_steps(library)
    for i, source in enumerate(library.sources):
        if source.needs == paths[:i] or (len(source.needs) == i
                                         and set(source.needs) == set(paths[:i])):
            needed, direct, state = set(paths[:i]), paths[i - 1:i], loaded
        else:
            needed = set()
            for need in source.needs:
                needed |= needed_by[need] | {need}
            implied = set().union(*(needed_by[n] for n in source.needs))
            direct = [n for n in source.needs if n not in implied]
            state = base.extend(loads[p] for p in paths if p in needed)
        needed_by[source.path] = needed
        loaded = loaded.extend([loads[source.path]])
        name = f"{library.name}/{source.path}"
        written = posixpath.normpath(posixpath.join(str(library.directory), source.path))
        fasl = _fasl_path(library, source.path)
        nodes.append(FaslNode(
            name=name, library=library,
            source=layout.grovel_lisp(fasl) if source.grovel else written,
            grovel=written if source.grovel else "",
            wrapper_c=wrapper_c_source(fasl) if source.wrapper else "",
            fasl=fasl, undefined=fasl.removesuffix(".fasl") + ".undefined",
            after=after_deps + tuple(f"fasl:{library.name}/{n}" for n in direct),
            base=base, state=state, external_format=source.external_format,
            step=loads[source.path], top=top))
    return _with_followers(nodes)


def _with_followers(nodes: list[FaslNode]) -> list[FaslNode]:
    """A file's follower is the next file of its library when that file's
    state is this one's with its FASL loaded, and nothing else: the chain
    of a serial system. A compile may go on to compile its followers in
    the same process, as ASDF does (rules/lisp.py). Files a groveller
    writes are not chained: their source is another task's output."""
    chained = [replace(node, follower=after.name)
               if after.state.parent is node.state and len(after.state.own) == 1
               and not (node.grovel or node.wrapper_c or after.grovel or after.wrapper_c)
               else node
               for node, after in zip(nodes, nodes[1:])]
    return chained + nodes[len(chained):]


def plan(project: Project, derived: dict[str, Library], mode: str = modes.DEFAULT,
         coverage: bool = False, programs: dict[str, Binary] | None = None) -> Graph:
    """The graph of the project's libraries, binaries and runs, with the
    libraries `derived` from ASDF systems and the binaries their systems
    declare (`programs`); the project's own compiled in `mode`, and again in
    the mode of each binary that names another; with `coverage`, each test
    suite again as NAME@coverage, instrumented."""
    declared = {**derived, **project.libraries}
    check_dependencies(declared, [(f"library {n}", n) for n in declared])
    planned = {**(programs or {}), **project.binaries}
    for binary in planned.values():
        check_dependencies(declared, [(f"binary {binary.name}", n) for n in binary.libraries])
    own = {name for name, library in declared.items() if modes.is_own(library)}
    if coverage:  # the suites that run some of the project's code
        suites = [b for b in planned.values() if b.name in project.tests or b.test_op]
        planned.update((f"{b.name}@{modes.COVERAGE}",
                        replace(b, name=f"{b.name}@{modes.COVERAGE}", mode=modes.COVERAGE))
                       for b in suites if modes.needed(declared, b.libraries) & own)
    planned = targets.binaries_for_targets(planned.values())
    wanted: dict[str, set[str]] = {}
    for binary in planned.values():
        if (binary.mode or mode) != mode:
            wanted.setdefault(binary.mode, set()).update(modes.needed(declared,
                                                                      binary.libraries))
    libraries = modes.with_modes(declared, mode, wanted)
    names_of = {b.name: [modes.variant(n, b.mode or mode, mode) if n in own else n
                         for n in b.libraries] for b in planned.values()}
    libraries = targets.with_targets(libraries, planned.values(), {
        b.name: modes.needed(libraries, names_of[b.name]) for b in planned.values() if b.target})
    orders = _Orders(libraries)
    fasls: dict[str, FaslNode] = {}
    depended_on = {d for library in libraries.values() for d in library.depends_on}
    for library in libraries.values():
        after = tuple(library_task(d) for d in library.depends_on) + tuple(
            shared_library_task(c) for c in library_c_sources(library))
        for node in _library_fasls(library, orders.base(library.name), after,
                                   top=library.name not in depended_on):
            fasls[node.name] = node

    binaries, loaded = {}, {}
    for binary in planned.values():
        if not binary.libraries:
            raise DeclarationError(f"binary {binary.name} names no library")
        binary_mode = binary.mode or mode
        names = loaded[binary.name] = [targets.variant(n, binary.target)
                                       for n in names_of[binary.name]]
        order = orders.merged(names)
        broken = next((libraries[n] for n in order if libraries[n].unavailable), None)
        binaries[binary.name] = BinaryNode(
            binary=binary, after=tuple(library_task(n) for n in names),
            state=orders.state_of(names, binary.target), mode=binary_mode,
            features=tuple(sorted({f for n in order for f in libraries[n].features})),
            c_sources=tuple(c for n in order for c in (*library_c_sources(libraries[n]),
                                                       *library_wrapper_c_sources(libraries[n]))),
            unavailable=broken and f"binary {binary.name} needs ASDF system "
                                   f"{broken.asdf_system}, which ASDF cannot give:\n"
                                   f"{broken.unavailable}" or "")
    for run in project.runs.values():
        if run.binary not in project.binaries:
            raise DeclarationError(f"run {run.name} names binary {run.binary}, "
                                   f"which is not declared")
    covered = tuple(name for name, b in planned.items() if b.mode == modes.COVERAGE)
    return Graph(fasls=fasls, binaries=binaries, libraries=libraries,
                 complete={name: orders.complete(name) for name in libraries},
                 coverage=covered, coverage_state=orders.state_of(
                     [n for name in covered for n in loaded[name]])
                 if covered else EMPTY)
