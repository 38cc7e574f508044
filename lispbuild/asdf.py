"""ASDF systems as libraries: ASDF itself, inside SBCL, says which systems
a system needs (through its source registry, Debian's
/usr/share/common-lisp/source/ included) and which files each file needs.

The answer is kept in the store, keyed by the request and checked against
the contents of every .asd file it read, so that neither a no-op build nor
a restore after `rm -rf build` starts SBCL.
"""
import json
import os
import re
from pathlib import Path

from . import layout
from .declare import Binary, Library, Project, Source, library_name
from .digest import DigestCache, digest_bytes
from .jobs import LispJob
from .errors import DeclarationError, LispFailure, MissingToolchain
from .action import Context
from .keys import package_digest
from .scratch import scratch_dir, tmp_prefix
from .steps import EMPTY
from .toolchain import find_sbcl, sbcl_files

DEBIAN_SOURCES = "/usr/share/common-lisp/source/"


def _query(ctx: Context, systems: list[str], registry: list[str]) -> tuple[str, list[str]]:
    """ASDF's answer, and the files the SBCL that gave it read (the .asd
    files it loaded, and what they read: another .asd, a version file)."""
    with scratch_dir(ctx.build, "asdf-") as tmp:
        output, reads = Path(tmp) / "graph.tsv", Path(tmp) / "reads.txt"
        try:
            ctx.lisp.run(LispJob(
                task=f"asking ASDF for {', '.join(systems)}", command="asdf-graph",
                state=EMPTY, product=output,
                arguments={"systems": systems, "registry": registry, "output": output,
                           "reads": reads}))
        except (LispFailure, MissingToolchain) as error:
            raise DeclarationError(str(error)) from None
        own = (str(ctx.build) + os.sep, str(find_sbcl().core.parent) + os.sep,
               str(Path(__file__).parent) + os.sep)
        read = [path for path in reads.read_text(encoding="utf-8").splitlines()
                if not path.startswith(own) and os.path.isfile(path)]
        return output.read_text(encoding="utf-8"), read


def _unchanged(asd: dict, digests: DigestCache) -> bool:
    try:
        return all(digests.digest(Path(path)) == sha for path, sha in asd.items())
    except OSError:
        return False


def _asd_files(registry: list[str], excluded: set[str]) -> tuple[list[str], dict]:
    """Every .asd file in the registry trees, as ASDF's tree search skips
    directories (`excluded`), and the modification time of each directory
    walked (a file added or removed changes its directory's)."""
    files, directories = [], {}
    for top in registry:
        for here, subdirectories, names in os.walk(top):
            subdirectories[:] = sorted(d for d in subdirectories if d not in excluded)
            directories[here] = os.stat(here).st_mtime_ns
            files += [os.path.join(here, n) for n in names if n.endswith(".asd")]
    return sorted(files), directories


def _excluded(directory: str, registry: list[str], excluded: set[str]) -> bool:
    """Whether `directory` is at or below one that ASDF's tree search skips."""
    top = next(t for t in registry if f"{directory}/".startswith(t))
    return bool(excluded & set(Path(os.path.relpath(directory, top)).parts))


def _same_asd_files(ctx: Context, key: str, record: dict, registry: list[str]) -> bool:
    """Whether the registry trees hold the .asd files they held when ASDF
    answered: a new one may define or shadow a system. The trees are walked
    again only when a directory of theirs changed since this build directory
    last looked (build/.lispbuild/asdf-trees.json)."""
    memo_path = layout.state(ctx.build, layout.ASDF_TREES)
    try:
        memo = json.loads(memo_path.read_text())
        looked = memo[key]
        if all(os.stat(d).st_mtime_ns == mtime for d, mtime in looked.items()):
            return True
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        memo = {}
    excluded = next((set(line[1:]) for line in record["lines"] if line[0] == "exclude"), set())
    files, directories = _asd_files(registry, excluded)
    if files != record["asd_files"]:
        return False
    _remember_trees(memo_path, memo if isinstance(memo, dict) else {}, key, directories)
    return True


def _remember_trees(memo_path: Path, memo: dict, key: str, directories: dict):
    memo[key] = directories
    memo_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo_path.with_name(f"{tmp_prefix()}{memo_path.name}")
    tmp.write_text(json.dumps(memo))
    os.replace(tmp, memo_path)


def _graph_lines(ctx: Context, systems: list[str],
                 registry: list[str]) -> tuple[list[list[str]], list[str]]:
    """ASDF's answer, and the files it was read from (the record's `asd`)."""
    digests, store = ctx.digests, ctx.store
    # Kept with the project's root as ROOT/, so that another checkout (or a
    # machine sharing a remote store) finds it.
    root = str(ctx.root) + "/"
    request = {"systems": systems, "lispbuild": package_digest(),
               "registry": [_portable(r, root) for r in registry],
               "sbcl": ctx.toolchain_digests(sbcl_files)}
    key = digest_bytes(json.dumps(request, sort_keys=True).encode())
    cached, remote = store.get_derived("asdf-graph", key, _graph_record), ctx.remote
    if cached is None and remote is not None:
        cached = remote.fetch_derived("asdf-graph", key, _graph_record, store)
        remote = None  # it came from there
    if cached:
        local = _local(cached, root)
        if _unchanged(local["asd"], digests) and _same_asd_files(ctx, key, local, registry):
            if remote is not None:  # uploads, when the project does
                remote.push_derived("asdf-graph", key, cached, store)
            return local["lines"], list(local["asd"])
    # The trees as they are before ASDF looks (a file added meanwhile is
    # seen by the next build, and ASDF asked again), less what ASDF skips.
    files, directories = _asd_files(registry, set())
    answer, read = _query(ctx, systems, registry)
    lines = [line.split("\t") for line in answer.splitlines()]
    if any(line[0] == "error" for line in lines):
        return lines, []  # asked again next time: the fix may be a new .asd anywhere
    excluded = next((set(line[1:]) for line in lines if line[0] == "exclude"), set())
    files = [f for f in files if not _excluded(os.path.dirname(f), registry, excluded)]
    directories = {d: m for d, m in directories.items()
                   if not _excluded(d, registry, excluded)}
    # Each system's .asd, and whatever else ASDF read to answer: the answer
    # holds while they hold.
    asd = {path: digests.digest(Path(path))
           for path in [fields[2] for fields in lines if fields[0] == "asd"] + read}
    record = {"asd": {_portable(p, root): d for p, d in asd.items()},
              "asd_files": [_portable(p, root) for p in files],
              "lines": [line[:2] + [_portable(line[2], root)] + line[3:]
                        if line[0] in ("asd", "system") else line for line in lines]}
    _remember_trees(layout.state(ctx.build, layout.ASDF_TREES), {}, key, directories)
    store.put_derived("asdf-graph", key, record)
    if ctx.remote is not None:
        ctx.remote.push_derived("asdf-graph", key, record, store)
    return lines, list(asd)


def _portable(path: str, root: str) -> str:
    return "ROOT/" + path[len(root):] if path.startswith(root) else path


def _local(record: dict, root: str) -> dict:
    def local(path: str) -> str:
        return root + path[len("ROOT/"):] if path.startswith("ROOT/") else path
    return {"asd": {local(p): d for p, d in record["asd"].items()},
            "asd_files": [local(p) for p in record["asd_files"]],
            "lines": [line[:2] + [local(line[2])] + line[3:]
                      if line[0] in ("asd", "system") and len(line) > 2 else line
                      for line in record["lines"]]}


def _graph_record(value) -> bool:
    return (isinstance(value, dict) and value.keys() == {"asd", "asd_files", "lines"}
            and isinstance(value["asd"], dict)
            and isinstance(value["asd_files"], list)
            and all(isinstance(f, str) for f in value["asd_files"])
            and all(isinstance(k, str) and isinstance(v, str) for k, v in value["asd"].items())
            and isinstance(value["lines"], list)
            and all(isinstance(line, list) and line and all(isinstance(f, str) for f in line)
                    for line in value["lines"]))


def _directory(path: str, root: Path) -> Path:
    path = Path(path)
    return path.relative_to(root) if path.is_relative_to(root) else path


_DEFSYSTEM = re.compile(r"\(\s*(?:asdf:|asdf/defsystem:)?defsystem\s+"
                        r"(?:\"([^\"]+)\"|#?:?([^\s()\"]+))", re.I)
_PERFORM_TEST_OP = re.compile(r":perform\s*\(\s*test-op\s*\([^()]*\)\s*", re.I)
_SYMBOL_CALL = re.compile(r"\(\s*(?:uiop:)?symbol-call\s+['#:]*([\w.+-]+)\s+['#:]*([\w!*+.-]+)",
                          re.I)
# The runners whose value is the suite's verdict, by (package, function).
RUNNERS = {("fiveam", "run!"): "fiveam", ("5am", "run!"): "fiveam",
           ("it.bese.fiveam", "run!"): "fiveam", ("rt", "do-tests"): "rt",
           ("parachute", "test"): "parachute", ("rove", "run"): "rove",
           ("prove", "run"): "prove"}


def defsystem_forms(text: str) -> list[tuple[str, str]]:
    """(name, its defsystem form's text) of each system an .asd's text
    defines, in order; a form's text runs to the next defsystem."""
    text = re.sub(r";[^\n]*", "", text)  # comments
    found = list(_DEFSYSTEM.finditer(text))
    return [((m.group(1) or m.group(2)).lower(),
             text[m.end():found[i + 1].start() if i + 1 < len(found) else len(text)])
            for i, m in enumerate(found)]


def _form_end(text: str, start: int) -> int | None:
    """Where the parenthesized form at `start` ends (strings skipped)."""
    depth, i, in_string = 0, start, False
    while i < len(text):
        c = text[i]
        if in_string:
            i += 1 if c == "\\" else 0
            in_string = c != '"'
        elif c == '"':
            in_string = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def suite_runner(form: str) -> str | None:
    """The framework whose runner a system's test-op calls, when its
    :perform is that one call (so its value is the verdict): FiveAM's run!,
    rt's do-tests, Parachute's test, rove's and prove's run. None when its
    test-op first needs another system (:in-order-to, as cl+ssl's loads
    its tests): the suite's image would not hold it, and a runner that
    finds no test says it passed."""
    if re.search(r":in-order-to\s*\(\s*\(\s*test-op\b", form, re.I):
        return None
    perform = _PERFORM_TEST_OP.search(form)
    call = perform and _SYMBOL_CALL.match(form, perform.end())
    end = call and _form_end(form, call.start())
    if not end or not re.match(r"\s*\)", form[end:]):
        return None
    return RUNNERS.get((call.group(1).lower(), call.group(2).lower()))


def _program(system: str, entry: str, build_pathname: str, operation: str):
    """(entry, binary name) of a system that ASDF's program-op makes into an
    executable (`asdf:make`): it has an :entry-point and its
    :build-operation is program-op or unset; the binary is named as its
    :build-pathname's file ("bin/app": app), else as the system."""
    if operation not in ("", "program-op", "asdf:program-op", "asdf/bundle:program-op"):
        return None
    name = build_pathname.rstrip("/").rpartition("/")[2] or system.replace("/", "--")
    return entry, name


def asdf_libraries(project: Project, ctx: Context) -> dict[str, Library]:
    """The libraries of the ASDF systems the project declared, and of every
    system they depend on."""
    if not project.asdf_systems_by_name:
        return {}
    registry = [str(project.root / r) + "/" for r in project.asdf_registry] + [DEBIAN_SOURCES]
    systems_asked = sorted(project.asdf_systems_by_name)
    lines, read = _graph_lines(ctx, systems_asked, registry)
    root = f"{project.root}/"
    planned_from = tuple(sorted(p[len(root):] for p in read if p.startswith(root)))
    systems: dict[str, dict] = {}
    for kind, name, *rest in lines:
        lib = library_name(name)
        if kind == "error":
            systems[lib] = {"directory": ".", "sources": [], "depends": [], "requires": [],
                            "system": name, "unavailable": "\n".join(
                                f"asdf: ERROR: {line}" if i == 0 else line
                                for i, line in enumerate(rest))}
        elif kind == "module":
            systems[lib] = {"directory": ".", "sources": [], "depends": [], "requires": rest}
        elif kind == "system":
            systems[lib] = {"directory": _directory(rest[0], project.root), "sources": [],
                            "depends": [], "requires": [], "system": name}
        elif kind == "asd":
            systems[lib]["asd"] = str(_directory(rest[0], project.root))
            if name.lower() in project.asdf_systems_by_name:
                systems[lib]["test_runner"] = _asked_test_runner(name, rest[0])
        elif kind == "version":
            systems[lib]["version"] = rest[0]
        elif kind == "cfile":
            systems[lib].setdefault("c_sources", []).append(rest[0])
        elif kind == "program":
            systems[lib]["program"] = _program(name, *rest)
        elif kind == "depends":
            systems[lib]["depends"].append(library_name(rest[0]))
        elif kind in ("file", "grovel", "wrapper"):
            path, external_format, *needs = rest
            systems[lib]["sources"].append(Source(path, tuple(needs), external_format.lower(),
                                                  grovel=kind != "file",
                                                  wrapper=kind == "wrapper"))
    fail_on_warning = {library_name(n): f for n, f in project.asdf_systems_by_name.items()}
    return {name: Library(name=name, directory=Path(s["directory"]),
                          sources=tuple(s["sources"]), depends_on=tuple(s["depends"]),
                          features=(), policy=(), requires=tuple(s["requires"]),
                          fail_on_warning=fail_on_warning.get(name, True),
                          asdf_system=s.get("system"), asd=s.get("asd"),
                          version=s.get("version"),
                          unavailable=s.get("unavailable", ""), planned_from=planned_from,
                          c_sources=tuple(s.get("c_sources", ())), program=s.get("program"),
                          test_runner=s.get("test_runner"))
            for name, s in systems.items()}


def _asked_test_runner(system: str, asd: str) -> str | None:
    try:
        text = Path(asd).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return next((suite_runner(form) for name, form in defsystem_forms(text)
                 if name == system.lower()), None)


def asdf_programs(project: Project, libraries: dict[str, Library]) -> dict[str, Binary]:
    """The binaries the asked systems declare by themselves. program-op:
    build/bin/NAME runs the :entry-point as UIOP's image does, with no
    arguments, exiting 0 if it returns true and 1 if false. A test-op that
    is one call of a known runner (suite_runner): a suite build/bin/LIB and
    its task test:LIB, whose verdict is the runner's value. A system that
    a binary of dodo.py already uses, or whose name one has, makes none."""
    used = {name for b in project.binaries.values() for name in b.libraries}
    found = {}
    for system in sorted(project.asdf_systems_by_name):
        library = libraries.get(library_name(system))
        if library is None or library.name in used:
            continue
        if library.program is not None:
            entry, name = library.program
            made = Binary(name=name, libraries=(library.name,), entry=entry, c_sources=(),
                          archives=(), compression=False, test=True, version=library.version)
        elif library.test_runner is not None:
            name = library.name
            made = Binary(name=name, libraries=(library.name,),
                          entry="lispbuild/driver:run-test-op", c_sources=(), archives=(),
                          compression=False, test=True, version=library.version,
                          smoke_args=(), test_op=(library.asdf_system, library.test_runner))
        else:
            continue
        if name not in project.binaries and name not in found:
            found[name] = made
    return found
