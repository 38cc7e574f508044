"""The task graph: from declarations to the files each compilation loads
first and the order in which each binary loads its FASLs.

A file is compiled in a fresh SBCL that has loaded, in order, every file of
the libraries its library depends on (transitively) and the files of its
own library that it needs. Files that need nothing of each other compile
in parallel.

When loading those dependencies in every compile of a library would cost
more than dumping them once, the library's compiles start from an image
of them instead (`image_loads`; see image.py).
"""
from dataclasses import dataclass
from pathlib import PurePosixPath

from .declare import Binary, Library, Project
from .errors import DeclarationError, DependencyCycle


@dataclass(frozen=True)
class FaslNode:
    name: str                 # LIB/FILE, the task is fasl:LIB/FILE
    library: Library
    source: str               # relative to the project root
    fasl: str                 # relative to the project root
    loads: tuple[str, ...]    # FaslNode names loaded before compiling, in order
    requires: tuple[str, ...]  # SBCL modules required before those
    asdf: tuple[tuple[str, str], ...]  # (system, .asd) defined before compiling
    external_format: str
    image_loads: int | None = None  # how many of `loads` its image holds; None: no image


@dataclass(frozen=True)
class BinaryNode:
    binary: Binary
    loads: tuple[str, ...]    # every FaslNode name, in load order
    requires: tuple[str, ...]
    asdf: tuple[tuple[str, str], ...]
    features: tuple[str, ...]


@dataclass(frozen=True)
class Graph:
    fasls: dict[str, FaslNode]
    binaries: dict[str, BinaryNode]


def library_order(libraries: dict[str, Library], roots) -> list[str]:
    """The libraries `roots` need, dependencies first; raises on a cycle or
    an undeclared library."""
    order, state = [], {}

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
        order.append(name)

    for wanted_by, name in roots:
        visit(name, [], wanted_by)
    return order


def _file_key(library: Library, source: str) -> str:
    return f"{library.name}/{source}"


def _fasl_path(library: Library, source: str) -> str:
    return str(PurePosixPath("build/fasl", library.name, source).with_suffix(".fasl"))


def _requires(libraries: dict[str, Library], order: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(m for name in order for m in libraries[name].requires))


def _asdf(libraries: dict[str, Library], order: list[str]) -> tuple[tuple[str, str], ...]:
    return tuple((libraries[n].asdf_system, libraries[n].asd) for n in order
                 if libraries[n].asdf_system)


# Measured on the development machine: SBCL loads a FASL in about 2 ms;
# requiring ASDF and reading a dozen .asd files takes about 0.25 s; dumping
# an image takes 2 to 3 s (hunchentoot's 146 dependency FASLs: 2.9 s).
FASL_LOAD_SECONDS = 0.002
ASDF_PREPARE_SECONDS = 0.25
IMAGE_DUMP_SECONDS = 3.0


def worth_an_image(files: int, dependency_fasls: int, asdf: bool) -> bool:
    """Whether a library's compiles should start from an image of its
    dependencies: when its files would spend, loading them, more than
    dumping the image costs."""
    per_file = dependency_fasls * FASL_LOAD_SECONDS + (ASDF_PREPARE_SECONDS if asdf else 0)
    return files * per_file > IMAGE_DUMP_SECONDS


def plan(project: Project, derived: dict[str, Library]) -> Graph:
    """The graph of the project's libraries, binaries and runs, with the
    libraries `derived` from ASDF systems."""
    libraries = {**derived, **project.libraries}
    everything = [(f"library {n}", n) for n in libraries]
    library_order(libraries, everything)  # reports cycles even in unused libraries

    fasls: dict[str, FaslNode] = {}
    for library in libraries.values():
        order = library_order(libraries, [(f"library {library.name}", library.name)])
        requires = _requires(libraries, order)
        before = [_file_key(libraries[dep], s.path) for dep in order if dep != library.name
                  for s in libraries[dep].sources]
        asdf = _asdf(libraries, order)
        image_loads = len(before) if worth_an_image(len(library.sources), len(before),
                                                     bool(asdf)) else None
        own = {}
        for source in library.sources:
            needed = set()
            for need in source.needs:
                needed |= own[need] | {need}
            own[source.path] = needed
            loads = before + [_file_key(library, s.path) for s in library.sources
                              if s.path in needed]
            key = _file_key(library, source.path)
            fasls[key] = FaslNode(
                name=key, library=library,
                source=str(PurePosixPath(library.directory, source.path)),
                fasl=_fasl_path(library, source.path), loads=tuple(loads),
                requires=requires, asdf=asdf, external_format=source.external_format,
                image_loads=image_loads)

    binaries = {}
    for binary in project.binaries.values():
        if not binary.libraries:
            raise DeclarationError(f"binary {binary.name} names no library")
        order = library_order(libraries, [(f"binary {binary.name}", n) for n in binary.libraries])
        binaries[binary.name] = BinaryNode(
            binary=binary,
            loads=tuple(_file_key(libraries[n], s.path) for n in order
                        for s in libraries[n].sources),
            requires=_requires(libraries, order), asdf=_asdf(libraries, order),
            features=tuple(sorted({f for n in order for f in libraries[n].features})))
    for run in project.runs.values():
        if run.binary not in binaries:
            raise DeclarationError(f"run {run.name} names binary {run.binary}, "
                                   f"which is not declared")
    return Graph(fasls=fasls, binaries=binaries)
