"""ASDF systems as libraries: ASDF itself, inside SBCL, says which systems
a system needs (found where asdf_registry.py says) and which files each
file needs.

The answer is kept in the store, keyed by the request and what it depends
on of the user's configuration, and checked against the contents of every
.asd file it read and the .asd files of the places it searched, so that
neither a no-op build nor a restore after `rm -rf build` starts SBCL.
"""
import json
import os
import sys
import time
from pathlib import Path

from . import layout
from .declare import Library, Project, Source, library_name
from .digest import DigestCache, digest_bytes
from .jobs import LispJob
from .errors import DeclarationError, LispFailure, MissingToolchain
from .action import Context
from .asd_forms import program_of, test_runner_of
from .asdf_registry import Registry, registry as project_registry
from .keys import package_digest
from .scratch import scratch_dir, tmp_prefix
from .steps import EMPTY
from .toolchain import find_sbcl, sbcl_files

FORMAT = 2  # of the answer's record (2: the places searched, as "registry" lines)


def _query(ctx: Context, systems: list[str], where: Registry) -> tuple[str, list[str]]:
    """ASDF's answer, and the files the SBCL that gave it read (the .asd
    files it loaded, and what they read: another .asd, a version file)."""
    with scratch_dir(ctx.build, "asdf-") as tmp:
        output, reads = Path(tmp) / "graph.tsv", Path(tmp) / "reads.txt"
        try:
            ctx.lisp.run(LispJob(
                task=f"asking ASDF for {', '.join(systems)}", command="asdf-graph",
                state=EMPTY, product=output,
                arguments={"systems": systems, **where.job_arguments(), "output": output,
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


def _mtime(directory: str) -> int | None:
    try:
        return os.stat(directory).st_mtime_ns
    except OSError:
        return None


def _places(lines: list[list[str]]) -> list[tuple[str, bool]]:
    """(directory, whether a tree) of each place ASDF searched."""
    return [(line[1], line[2] == "tree") for line in lines if line[0] == "registry"]


def _asd_files(places: list[tuple[str, bool]], excluded: set[str]) -> tuple[list[str], dict]:
    """Every .asd file of the places searched, as ASDF's tree search skips
    directories (`excluded`), and the modification time of each directory
    looked at, None for one that does not exist (a file added or removed
    changes its directory's)."""
    files, directories, seen = [], {}, set()
    for top, tree in places:
        directories[top] = _mtime(top)
        if directories[top] is None:
            continue
        # Through symbolic links to directories, as ASDF goes (a user's
        # ~/common-lisp/ often links to projects), each directory once.
        for here, subdirectories, names in os.walk(top, followlinks=True):
            seen.add(os.path.realpath(here))
            subdirectories[:] = sorted(
                d for d in subdirectories if tree and d not in excluded
                and os.path.realpath(os.path.join(here, d)) not in seen)
            directories[here] = _mtime(here)
            # Not a dangling link (Debian's systems/ has one): ASDF cannot load it.
            files += [path for path in (os.path.join(here, n) for n in names
                                        if n.endswith(".asd")) if os.path.exists(path)]
    return sorted(set(files)), directories


def _same_asd_files(ctx: Context, key: str, record: dict) -> bool:
    """Whether the places searched hold the .asd files they held when
    ASDF answered: a new one may define or shadow a system. They are
    walked again only when a directory of theirs changed since this build
    directory last looked (build/.lispbuild/asdf-trees.json)."""
    memo_path = layout.state(ctx.build, layout.ASDF_TREES)
    try:
        memo = json.loads(memo_path.read_text())
        looked = memo[key]
        if all(_mtime(d) == mtime for d, mtime in looked.items()):
            return True
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        memo = {}
    excluded = next((set(line[1:]) for line in record["lines"] if line[0] == "exclude"), set())
    files, directories = _asd_files(_places(record["lines"]), excluded)
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


def _settled(files: list[str], since: float) -> list[str]:
    """`files` less those created or renamed since `since`: ASDF may not
    have seen them, and a record without them is asked again."""
    def settled(path: str) -> bool:
        try:
            return os.stat(path).st_ctime < since
        except OSError:
            return False
    return [f for f in files if settled(f)]


def _graph_lines(ctx: Context, systems: list[str],
                 where: Registry) -> tuple[list[list[str]], list[str]]:
    """ASDF's answer, and the files it was read from (the record's `asd`)."""
    digests, store = ctx.digests, ctx.store
    # Kept with the project's root as ROOT/, so that another checkout (or a
    # machine sharing a remote store) finds it.
    root = str(ctx.root) + "/"
    request = {"systems": systems, "lispbuild": package_digest(), "format": FORMAT,
               "registry": [_portable(r, root) for r in where.trees],
               "configuration": where.identity(digests),
               "sbcl": ctx.toolchain_digests(sbcl_files)}
    key = digest_bytes(json.dumps(request, sort_keys=True).encode())
    cached, remote = store.get_derived("asdf-graph", key, _graph_record), ctx.remote
    if cached is None and remote is not None:
        cached = remote.fetch_derived("asdf-graph", key, _graph_record, store)
        remote = None  # it came from there
    if cached:
        local = _local(cached, root)
        if _unchanged(local["asd"], digests) and _same_asd_files(ctx, key, local):
            if remote is not None:  # uploads, when the project does
                remote.push_derived("asdf-graph", key, cached, store)
            return local["lines"], list(local["asd"])
    asked_at = time.time()
    answer, read = _query(ctx, systems, where)
    lines = [line.split("\t") for line in answer.splitlines()]
    if any(line[0] == "error" for line in lines):
        return lines, []  # asked again next time: the fix may be a new .asd anywhere
    excluded = next((set(line[1:]) for line in lines if line[0] == "exclude"), set())
    files, directories = _asd_files(_places(lines), excluded)
    # Once for each .asd file (its secondary systems are found through it).
    for used in dict.fromkeys((fields[1].split("/")[0], fields[2]) for fields in lines
                              if fields[0] == "asd"):
        said = where.shadowed(*used, files)
        if said:
            print(said, file=sys.stderr)
    # Each system's .asd, and whatever else ASDF read to answer: the answer
    # holds while they hold.
    asd = {path: digests.digest(Path(path))
           for path in [fields[2] for fields in lines if fields[0] == "asd"] + read}
    record = {"asd": {_portable(p, root): d for p, d in asd.items()},
              "asd_files": [_portable(p, root) for p in _settled(files, asked_at)],
              "lines": _with_paths(lines, lambda path: _portable(path, root))}
    _remember_trees(layout.state(ctx.build, layout.ASDF_TREES), {}, key, directories)
    store.put_derived("asdf-graph", key, record)
    if ctx.remote is not None:
        ctx.remote.push_derived("asdf-graph", key, record, store)
    return lines, list(asd)


def _portable(path: str, root: str) -> str:
    return "ROOT/" + path[len(root):] if path.startswith(root) else path


# The field of an answer's line that holds a path, by the line's kind.
PATH_FIELDS = {"asd": 2, "system": 2, "registry": 1}


def _with_paths(lines: list[list[str]], convert) -> list[list[str]]:
    """`lines` with `convert` applied to each path they hold."""
    def each(line):
        i = PATH_FIELDS.get(line[0])
        return line if i is None or len(line) <= i else [*line[:i], convert(line[i]),
                                                          *line[i + 1:]]
    return [each(line) for line in lines]


def _local(record: dict, root: str) -> dict:
    def local(path: str) -> str:
        return root + path[len("ROOT/"):] if path.startswith("ROOT/") else path
    return {"asd": {local(p): d for p, d in record["asd"].items()},
            "asd_files": [local(p) for p in record["asd_files"]],
            "lines": _with_paths(record["lines"], local)}


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


def asdf_libraries(project: Project, ctx: Context) -> dict[str, Library]:
    """The libraries of the ASDF systems the project declared, and of every
    system they depend on."""
    if not project.asdf_systems_by_name:
        return {}
    where = project_registry(project.root, project.asdf_registry, project.hermetic)
    systems_asked = sorted(project.asdf_systems_by_name)
    lines, read = _graph_lines(ctx, systems_asked, where)
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
            systems[lib]["found_in"] = where.origin(rest[0])
            if name.lower() in project.asdf_systems_by_name:
                systems[lib]["test_runner"] = test_runner_of(name, rest[0])
        elif kind == "version":
            systems[lib]["version"] = rest[0]
        elif kind == "cfile":
            systems[lib].setdefault("c_sources", []).append(rest[0])
        elif kind == "program":
            systems[lib]["program"] = program_of(name, *rest)
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
                          version=s.get("version"), found_in=s.get("found_in"),
                          unavailable=s.get("unavailable", ""), planned_from=planned_from,
                          c_sources=tuple(s.get("c_sources", ())), program=s.get("program"),
                          test_runner=s.get("test_runner"))
            for name, s in systems.items()}
