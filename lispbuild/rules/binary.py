"""Tasks of a static executable: core:NAME dumps the image (with the record
of its foreign symbols), linkage:NAME resolves them against what will be
linked and writes the symbol table, runtime:NAME links SBCL's runtime with
musl, exe:NAME embeds the core; c:PATH and clib:PATH build C files (as
musl objects, and as shared libraries for the SBCLs that load a library's
code). A development executable whose image ends with the project's own
FASLs has base:NAME too, the image before them, and carries them as its
payload (payload.py). In release mode the same under build/release/NAME/,
the core dumped whole in the canonical process."""
import functools
import os
import posixpath
import sys
from pathlib import Path

from .. import layout, link, linkage, observed
from ..sbcl.canonical import release_directory
from ..sbcl.driver import lisp_steps, support_fasls
from ..jobs import LispJob
from ..embed import check_static, embed_core
from ..graph import BinaryNode, shared_library, shared_library_task
from ..modes import COVERAGE
from ..action import Action, Context
from ..targets import state_target, variant
from ..toolchain import (archive_path, find_musl, find_sbcl, for_target, musl_files,
                         runtime_files, sbcl_files)
from . import payload
from .lisp import print_notes


COMPAT_TASK = "lispbuild/compat.c"


# lispbuild's own C files, inputs of c: tasks but not the project's sources.
LISPBUILD_FILES = str(link.COMPAT_SOURCE.parent) + os.sep


def dump_core(action: Action, ctx: Context, outputs: dict):
    """A development dump: the image also holds what develop.lisp runs
    around the entry (a REPL, a profile, the reload listener a watch asks
    for), each only when the environment asks for it. With a payload: its
    steps loaded onto the base's, the entry found and the records written,
    and the marker written as the core, unless the image must be dumped
    whole after all (dump.lisp)."""
    steps = action.params.get("payload")
    state = action.state if steps is None else \
        payload.prefix(action.state, action.state.length - len(steps))
    _dump(action, ctx, outputs, state=state,
          arguments={"development": support_fasls(ctx, state_target(state)).development,
                     "reload_hook": action.params["reload_hook"],
                     **({"payload": lisp_steps(steps)} if steps else {})})


def dump_base_core(action: Action, ctx: Context, outputs: dict):
    """base:NAME: the image a development executable's payload completes;
    its entry is found when the program starts, and its records are
    core:NAME's, of the whole image."""
    _dump(action, ctx, outputs, action.state,
          arguments={"base": True, "development": support_fasls(ctx).development,
                     "reload_hook": action.params["reload_hook"]})


def dump_release_core(action: Action, ctx: Context, outputs: dict):
    """A fresh SBCL in a canonical process: the same image whoever dumps
    it, wherever, whenever (canonical.py, which runners.py picks for it)."""
    _dump(action, ctx, outputs, action.state,
          {"release_directory": action.params["dump_directory"]})


def _dump(action: Action, ctx: Context, outputs: dict, state, hints: dict | None = None,
          arguments: dict | None = None):
    p = action.params
    records = "linkage" in outputs  # not a base image's (dump_base_core)
    print_notes(ctx.lisp.run(LispJob(
        task=action.task, command="dump", state=state, product=outputs["core"], hints=hints or {},
        arguments={**(arguments or {}), "features": p["features"], "entry": p["entry"],
                   "entry_arguments": p["entry_arguments"], "core": outputs["core"],
                   "reads": outputs[observed.ROLE],
                   "compression": p["compression"], "test": p["test"],
                   "test_op": p.get("test_op"),
                   **({"linkage": outputs["linkage"],
                       "shared_objects": outputs["shared_objects"],
                       **_machine_directories(action, ctx, hints)} if records else {})})))
    target = state_target(state)
    observed.record(outputs[observed.ROLE], action, ctx, find_sbcl(target).home)
    if not records:
        return
    # Of the strings that could name a C symbol, those libc or the
    # binary's archives define: the others (words, a worker's digests,
    # pieces of this machine's paths) would make the record differ from
    # one dump to the next, and the linkage task run again for nothing.
    musl = find_musl(target)
    defined = set().union(*(_defined_symbols(archive_path(target, a), ctx)
                            for a in p["archives"]),
                          _defined_symbols(musl.libc, ctx), _defined_symbols(musl.zstd, ctx))
    linkage.keep_named(outputs["linkage"], defined)


def compile_c(action: Action, ctx: Context, outputs: dict):
    link.compile_c(ctx.root / action.inputs[0], outputs["object"], ctx.root, action.task,
                   weak=action.params.get("weak", False), target=action.params.get("target", ""))


def _derived(kind: str, path: Path, ctx: Context, compute):
    # Reading libc.a with pyelftools takes seconds: remember it per content.
    sha256 = ctx.digests.digest(path)
    value = ctx.store.get_derived(kind, sha256, lambda v: isinstance(v, list))
    if value is None:
        value = compute(path)
        ctx.store.put_derived(kind, sha256, value)
    return value


def _defined_symbols(path: Path, ctx: Context) -> set[str]:
    return set(_derived("symbols", path, ctx, linkage.defined_symbols))


def resolve_linkage(action: Action, ctx: Context, outputs: dict):
    p = action.params
    target = p.get("target", "")  # an archive is named by its host path, read where target has it
    shared_objects = (ctx.root / p["shared_objects"]).read_text().splitlines()
    linkage.check_foreign_libraries(p["binary"], shared_objects, p["foreign_libraries"])
    entries, named = linkage.read_linkage(ctx.root / p["record"])
    musl = find_musl(target)
    providers = [(str(path), _defined_symbols(ctx.root / where, ctx)) for path, where in
                 [(o, o) for o in p["objects"]] + [(runtime_files(target)[0],) * 2]
                 + [(a, archive_path(target, a)) for a in p["archives"]]
                 + [(musl.zstd, musl.zstd), (musl.libc, musl.libc)]]
    resolved, tolerated = linkage.resolve_symbols(p["binary"], entries, providers)
    print(f"{p['binary']}: {len(resolved)} foreign symbols resolved")
    if tolerated:
        print(f"{p['binary']}: not linked, as the dynamic image could not find them either "
              f"(calling one signals UNDEFINED-ALIEN-ERROR): {', '.join(tolerated)}",
              file=sys.stderr)
    # A library's C code is looked up by name while the program runs too
    # (CFFI's defcvar, a foreign-funcall the image never made): every symbol
    # it defines answers dlsym(); and so does every symbol the image names
    # in a string (a FOREIGN-FUNCALL of "sprintf" compiled at run time).
    exported = {name for path in p.get("exported", [])
                for name in _defined_symbols(ctx.root / path, ctx)}
    archives = set(p["archives"])
    exported.update(linkage.named_symbols(
        named, providers, lambda label: _derived("members", ctx.root / archive_path(target, label), ctx,
                                                 linkage.archive_members)
        if label in archives else None))
    outputs["table"].write_text(linkage.symbol_table_source(
        list(resolved) + sorted(exported), p["foreign_libraries"]))


def link_runtime(action: Action, ctx: Context, outputs: dict):
    p = action.params
    table_object = outputs["runtime"].with_name("symbols.o")
    target = p.get("target", "")
    link.compile_c(ctx.root / p["table"], table_object, ctx.root, action.task, target=target)
    link.link_runtime([table_object] + [ctx.root / o for o in p["objects"]],
                      [ctx.root / archive_path(target, a) for a in p["archives"]],
                      outputs["runtime"], ctx.root, action.task, target)


def embed_executable(action: Action, ctx: Context, outputs: dict):
    p = action.params
    core, steps = ctx.root / p["core"], p.get("payload")
    resources = [(name, ctx.root / path) for name, path in p["resources"]]
    if steps and payload.is_payload_marker(core):
        embed_core(ctx.root / p["runtime"], ctx.root / p["base_core"], outputs["exe"],
                   resources, payload.table(steps, ctx.root))
    else:
        embed_core(ctx.root / p["runtime"], core, outputs["exe"], resources)
    check_static(outputs["exe"])


def shared_library_action(source: str) -> Action:
    """clib:PATH: a library's C file as a shared library (link.shared_library)."""
    return Action(task=shared_library_task(source), run=build_shared_library, inputs=[source],
                  params={"source": source}, outputs={"library": Path(shared_library(source))},
                  toolchain=(musl_files,))


def build_shared_library(action: Action, ctx: Context, outputs: dict):
    link.shared_library(ctx.root / action.inputs[0], outputs["library"], ctx.root, action.task)


def c_action(source: str, weak: bool = False, target: str = "") -> Action:
    """c:PATH: a C file as a musl object; `weak` for a library's
    (link.compile_c); c:PATH@TARGET for another machine's."""
    path = link.COMPAT_SOURCE if source == COMPAT_TASK else Path(source)
    return Action(task=f"c:{variant(source, target)}", run=compile_c, inputs=[path],
                  params={"source": source, "cflags": list(link.CFLAGS),
                          **({"weak": True} if weak else {}),
                          **({"target": target} if target else {})},
                  outputs={"object": Path(layout.c_object(source, target))},
                  toolchain=(for_target(musl_files, target),))


def _machine_directories(action: Action, ctx: Context, hints: dict | None) -> dict:
    """Where the image's paths would name files of this machine only
    (kept-paths.lisp): the project, unless in a release dump (its place
    stays out of the release's bytes; the dump's own directory, which
    holds the project's copy, is checked there), and the ASDF libraries'
    directories outside it."""
    libraries = {os.path.dirname(rest[1]) + "/" for kind, *rest in action.state.steps()
                 if kind == "asdf" and os.path.isabs(rest[1])}
    release = (hints or {}).get("release_directory")
    return {"project_directory": None if release else f"{ctx.root}/",
            "library_directories": sorted(libraries)}


@functools.cache
def archive_files_of(archives: tuple[str, ...]):
    """A toolchain function: the files of `archives` (host paths) where a
    target has them (toolchain.for_target gives it the target)."""
    def archive_files(target: str = "") -> list[Path]:
        return [archive_path(target, a) for a in archives]
    archive_files.__qualname__ = f"archive_files[{','.join(archives)}]"
    return archive_files


def archives_of(b) -> list[str]:
    return [str(a) for a in b.archives] + [str(a) for _, paths in b.foreign_libraries
                                           for a in paths]


def binary_actions(node: BinaryNode, release_mode: bool = False,
                   own: frozenset = frozenset()) -> list[Action]:
    """core:, linkage:, runtime: and exe:NAME, after base:NAME when a
    development image ends with the project's FASLs (`own`: payload.py);
    in release mode release-core: (a canonical dump of the whole image)
    and the rest, under build/release/NAME/."""
    b, t = node.binary, node.binary.target
    prefix = "release-" if release_mode else ""
    paths = layout.binary_stages(b.name.removesuffix(f"@{t}") if t else b.name, release_mode, t)
    core, record, shared = paths["core"], paths["linkage"], paths["shared_objects"]
    table, runtime, exe = paths["symbols"], paths["runtime"], paths["exe"]
    archives = archives_of(b)
    objects = [layout.c_object(str(s), t) for s in (*b.c_sources, *node.c_sources)] \
        + [layout.c_object(COMPAT_TASK, t)]
    # Another machine's archives are its sysroot's, part of its toolchain;
    # its parameters name them by their host paths, the same everywhere.
    linked = [] if t else archives
    archive_files = (for_target(archive_files_of(tuple(archives)), t),) if t else ()
    on = {"target": t} if t else {}
    # What the image loads by the name of a library's C file, those files link.
    provided = [posixpath.splitext(posixpath.basename(c))[0] for c in node.c_sources]
    steps = node.state.steps()
    # Another machine's image is dumped whole: the payload's table is
    # read by the development runtime, which is this machine's.
    start = len(steps) if release_mode or node.mode == COVERAGE or t \
        else payload.payload_start(steps, own)
    carried = [list(step) for step in steps[start:]]
    entry = {"binary": b.name, "features": list(node.features), "entry": b.entry,
             "entry_arguments": b.entry_arguments, "compression": b.compression,
             "test": b.test, **({"test_op": list(b.test_op)} if b.test_op else {})}
    base = [Action(task=f"base:{b.name}", run=dump_base_core, inputs=[],
                   params={**entry, "reload_hook": b.reload_hook},
                   outputs={"core": Path(paths["base_core"]),
                            observed.ROLE: Path(paths["base_core"]).with_suffix(".reads")},
                   toolchain=(for_target(sbcl_files, t),),
                   state=payload.prefix(node.state, start))] \
        if carried else []
    return base + [
        Action(task=f"{prefix}core:{b.name}", run=dump_release_core if release_mode else dump_core,
               # A release dump also preloads sorteddir.c, built with gcc,
               # and its directory's path is in the image.
               # The archives: what the image's strings may name (_dump).
               inputs=([link.SORTED_LISTINGS_SOURCE] if release_mode else []) + linked,
               params={**entry, "archives": archives,
                       **({"dump_directory": release_directory()} if release_mode
                          else {"reload_hook": b.reload_hook}),
                       **({"payload": carried} if carried else {})},
               outputs={"core": Path(core), "linkage": Path(record),
                        "shared_objects": Path(shared),
                        observed.ROLE: Path(core).with_suffix(".reads")},
               toolchain=(for_target(sbcl_files, t), for_target(musl_files, t), *archive_files),
               state=node.state),
        Action(task=f"{prefix}linkage:{b.name}", run=resolve_linkage,
               inputs=[Path(record), Path(shared), *map(Path, objects), *map(Path, linked)],
               params={**on, "binary": b.name, "record": record, "shared_objects": shared,
                       "objects": objects, "archives": archives,
                       "foreign_libraries": [name for name, _ in b.foreign_libraries]
                       + provided,
                       **({"exported": [layout.c_object(c) for c in node.c_sources]}
                          if node.c_sources else {})},
               outputs={"table": Path(table)},
               toolchain=(for_target(runtime_files, t), for_target(musl_files, t), *archive_files)),
        Action(task=f"{prefix}runtime:{b.name}", run=link_runtime,
               inputs=[Path(table), *map(Path, objects), *map(Path, linked)],
               params={**on, "table": table, "objects": objects, "archives": archives,
                       "cflags": list(link.CFLAGS)},
               outputs={"runtime": Path(runtime)},
               toolchain=(for_target(runtime_files, t), for_target(musl_files, t), *archive_files),
               executable=frozenset({"runtime"})),
        Action(task=f"{prefix}exe:{b.name}", run=embed_executable,
               inputs=[Path(runtime), Path(core), *(Path(p) for _, p in b.resources),
                       *([Path(paths["base_core"])] if carried else []),
                       *(Path(step[1]) for step in carried if step[0] == "load")],
               params={"runtime": runtime, "core": core,
                       "resources": [list(r) for r in b.resources],
                       **({"base_core": paths["base_core"], "payload": carried}
                          if carried else {})},
               outputs={"exe": Path(exe)}, executable=frozenset({"exe"})),
    ]
