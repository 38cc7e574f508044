"""The doit tasks of a project: one Action per task, each run through the
rebuilder. Task names are stable:

    grovel:LIB/FILE run a CFFI grovel file's groveller: the Lisp its fasl: compiles
    fasl:LIB/FILE   compile one Lisp file
    lib:LIB         report what the library's files refer to that it leaves undefined
    c:PATH          compile one C source with musl-gcc
    core:NAME       load the FASLs and dump the image, with its linkage record
    linkage:NAME    resolve the image's foreign symbols; write the symbol table
    runtime:NAME    link the static runtime
    exe:NAME        embed the core: build/bin/NAME
    run:NAME        run a built executable (declared with Project.run)
    release-core:NAME, release-linkage:NAME, release-runtime:NAME,
    release-exe:NAME  the same in release mode (a canonical dump), under build/release/NAME/
    release:NAME    smoke-run the release executable; write dist/NAME-VERSION-x86_64-linux.tar.gz
"""
import atexit
import functools
import importlib
import inspect
import json
import os
import posixpath
import re
import subprocess
import sys
import tempfile
from pathlib import Path, PurePosixPath

from doit.exceptions import TaskFailed

from . import link, linkage, observed, release, schedule, scratch
from .asdf import asdf_libraries
from .declare import Project, library_name
from .digest import digest_bytes
from .canonical import release_directory
from .driver import TIME_LIMIT_VARIABLE, LispJob, signal_name, time_limit
from .embed import check_static, embed_core
from .errors import LispFailure
from .graph import (BinaryNode, FaslNode, library_c_sources, library_task, plan,
                    shared_library, shared_library_task)
from .output import outside_warnings
from .rebuild import (Action, Context, action_key, execute, is_up_to_date, named_inputs,
                      release_build_lock)
from .remote import remote_from
from .settings import (OWNER_VARIABLE, REPORTER, RUN_EXE_TASK, SHOW_ALL_VARIABLE,
                       STOP_GRACE_SECONDS, STORE_CONFIG, WATCH_FILE, WATCH_VARIABLE)
from .toolchain import find_musl, find_sbcl, musl_files, runtime_files, sbcl_files
from .runners import Runners
from .worker import die_with_parent

COMPAT_TASK = "lispbuild/compat.c"
# lispbuild's own C files, inputs of c: tasks but not the project's sources.
LISPBUILD_FILES = str(link.COMPAT_SOURCE.parent) + os.sep


def _print_notes(notes: str):
    if notes.strip():
        print(notes.rstrip(), file=sys.stderr)


# --- what each task does: plain functions of (action, ctx, outputs) ------

# The first line of a diagnostic: "FILE:LINE: KIND: text".
DIAGNOSTIC = re.compile(r"^\S[^:]*:\d*:? (STYLE-WARNING|WARNING|ERROR|read error)")


def _report_warnings(notes: str, action: Action):
    """The project's own warnings in full; code outside it (Debian's
    libraries) only counted, unless LISPBUILD_WARNINGS=all."""
    if action.means["project"] or os.environ.get(SHOW_ALL_VARIABLE) == "all":
        _print_notes(notes)
    else:
        count = sum(1 for line in notes.splitlines() if DIAGNOSTIC.match(line))
        if count:
            print(outside_warnings(count, action.params["library"]), file=sys.stderr)


def compile_fasl(action: Action, ctx: Context, outputs: dict):
    p = action.params
    _report_warnings(ctx.lisp.run(LispJob(
        task=action.task, command="compile", state=action.state, product=outputs["fasl"],
        arguments={"source": p["source"], "output": outputs["fasl"],
                   "undefined": outputs["undefined"], "reads": outputs[observed.ROLE],
                   "external_format": p["external_format"], "features": p["features"],
                   "policy": [tuple(q) for q in p["policy"]],
                   "fail_on_warning": p["fail_on_warning"],
                   **({"asdf_system": p["asdf_system"]} if "asdf_system" in p else {})},
        library=p["library"], base=action.means["base"],
        hints={"project": action.means["project"],
               "built_before": (ctx.root / action.outputs["fasl"]).exists()})), action)
    observed.record(outputs[observed.ROLE], action, ctx, find_sbcl().core.parent)


def grovel(action: Action, ctx: Context, outputs: dict):
    p = action.params
    if "c" in outputs:  # a wrapper file: CFFI-GROVEL writes C and Lisp, compiles nothing
        _report_warnings(ctx.lisp.run(LispJob(
            task=action.task, command="wrapper", state=action.state, product=outputs["lisp"],
            arguments={"source": p["source"], "output": outputs["lisp"],
                       "c_output": outputs["c"], "features": p["features"]})), action)
        return
    _report_warnings(ctx.lisp.run(LispJob(
        task=action.task, command="grovel", state=action.state, product=outputs["lisp"],
        arguments={"source": p["source"], "output": outputs["lisp"],
                   "cc": str(find_musl().gcc), "cc_flags": p["cc_flags"],
                   "features": p["features"]})), action)


def check_undefined(action: Action, ctx: Context, outputs: dict):
    """What the library's files refer to undefined, checked with the whole
    library loaded: reported as compile_fasl reports (a function defined
    in a later file of the library is not). SBCL runs only when a file
    refers to something undefined."""
    p = action.params
    references = [path for path in action.inputs
                  if (ctx.root / path).stat().st_size > 0]
    if not references:
        outputs["report"].write_bytes(b"")
        return
    _report_warnings(ctx.lisp.run(LispJob(
        task=action.task, command="check-undefined", state=action.state,
        product=outputs["report"],
        arguments={"references": [str(ctx.root / r) for r in references],
                   "output": outputs["report"], "fail_on_warning": p["fail_on_warning"]})),
        action)


def dump_core(action: Action, ctx: Context, outputs: dict):
    _dump(action, ctx, outputs)


def dump_release_core(action: Action, ctx: Context, outputs: dict):
    """A fresh SBCL in a canonical process: the same image whoever dumps
    it, wherever, whenever (canonical.py, which runners.py picks for it)."""
    _dump(action, ctx, outputs, {"release_directory": action.params["dump_directory"]})


def _dump(action: Action, ctx: Context, outputs: dict, hints: dict | None = None):
    p = action.params
    _print_notes(ctx.lisp.run(LispJob(
        task=action.task, command="dump", state=action.state, product=outputs["core"], hints=hints or {},
        arguments={"features": p["features"], "entry": p["entry"],
                   "entry_arguments": p["entry_arguments"], "core": outputs["core"],
                   "linkage": outputs["linkage"], "shared_objects": outputs["shared_objects"],
                   "reads": outputs[observed.ROLE],
                   "compression": p["compression"], "test": p["test"]})))
    observed.record(outputs[observed.ROLE], action, ctx, find_sbcl().core.parent)
    # Of the strings that could name a C symbol, those libc or the
    # binary's archives define: the others (words, a worker's digests,
    # pieces of this machine's paths) would make the record differ from
    # one dump to the next, and the linkage task run again for nothing.
    defined = set().union(*(_defined_symbols(Path(a), ctx) for a in p["archives"]),
                          _defined_symbols(find_musl().libc, ctx),
                          _defined_symbols(find_musl().zstd, ctx))
    linkage.keep_named(outputs["linkage"], defined)


def compile_c(action: Action, ctx: Context, outputs: dict):
    link.compile_c(ctx.root / action.inputs[0], outputs["object"], ctx.root, action.task,
                   weak=action.params.get("weak", False))


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
    shared_objects = (ctx.root / p["shared_objects"]).read_text().splitlines()
    linkage.check_foreign_libraries(p["binary"], shared_objects, p["foreign_libraries"])
    entries, named = linkage.read_linkage(ctx.root / p["record"])
    providers = [(str(path), _defined_symbols(ctx.root / path, ctx))
                 for path in p["objects"] + [str(runtime_files()[0])] + p["archives"]
                 + [str(find_musl().zstd), str(find_musl().libc)]]
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
        named, providers, lambda label: _derived("members", ctx.root / label, ctx,
                                                 linkage.archive_members)
        if label in archives else None))
    outputs["table"].write_text(linkage.symbol_table_source(
        list(resolved) + sorted(exported), p["foreign_libraries"]))


def link_runtime(action: Action, ctx: Context, outputs: dict):
    p = action.params
    table_object = outputs["runtime"].with_name("symbols.o")
    link.compile_c(ctx.root / p["table"], table_object, ctx.root, action.task)
    link.link_runtime([table_object] + [ctx.root / o for o in p["objects"]],
                      [ctx.root / a for a in p["archives"]], outputs["runtime"], ctx.root,
                      action.task)


def embed_executable(action: Action, ctx: Context, outputs: dict):
    p = action.params
    embed_core(ctx.root / p["runtime"], ctx.root / p["core"], outputs["exe"])
    check_static(outputs["exe"])


def make_release(action: Action, ctx: Context, outputs: dict):
    """The smoke run, then the archive with its manifest (release.py)."""
    p = action.parameters()
    release.check_clean(action.task, p["revision"])
    exe = ctx.root / p["exe"]
    if p["smoke_args"] is not None:
        print(release.smoke_run(exe, p["smoke_args"], ctx.build, action.task, time_limit()))
    dump = next(stage for stage in action.means["stages"] if stage.run is dump_release_core)
    stages = [{"task": stage.task, "key": action_key(stage, ctx),
               "outputs": {role: {"path": str(path), "sha256": ctx.file_digest(path)}
                           for role, path in sorted(stage.outputs.items())}}
              for stage in action.means["stages"]]
    sources = {name: ctx.digests.digest(path)
               for name, path in named_inputs(action.inputs[1:], str(ctx.root))}
    # And what its stages read beyond what they declared (observed.py).
    for stage in action.means["stages"]:
        if observed.ROLE in stage.outputs:
            sources.update(observed.inputs(
                (ctx.root / stage.outputs[observed.ROLE]).read_text(encoding="utf-8")))
    sources = [{"path": name, "sha256": sha256} for name, sha256 in sorted(sources.items())]
    manifest = {
        "format": release.FORMAT, "name": p["binary"], "version": p["version"],
        "platform": release.PLATFORM, "source_date_epoch": p["epoch"],
        "revision": p["revision"],
        "smoke_args": p["smoke_args"], "lispbuild": release.lispbuild_identity(),
        "dump_directory": dump.params["dump_directory"],
        "toolchain": release.toolchain_identity(
            release.toolchain_files(find_sbcl(), find_musl(), p["archives"])),
        "sources": sources, "stages": stages,
        "executable": {"name": p["binary"], "sha256": ctx.file_digest(p["exe"])},
    }
    release.write_archive(outputs["archive"], f"{p['binary']}-{p['version']}", p["binary"],
                          exe, manifest, p["epoch"])


def _program_starts() -> bool:
    """A run or test task's check: never up to date; and the build lock is
    let go, since the program (a server, say) may run for hours while
    other builds of the project go on."""
    release_build_lock()
    return False


_program_starts.__signature__ = inspect.signature(_program_starts)


def fail(message: str):
    return TaskFailed(message)


def run_executable(path: Path, args: list, exit_code: int, limited: bool):
    """Run a built program; fail unless it exits with exit_code. A test
    (limited) is stopped after the time limit: SIGTERM, then SIGKILL."""
    try:
        limit = time_limit() if limited else None
    except LispFailure as error:
        return TaskFailed(str(error))
    shown = f"build/bin/{path.name}"
    process = subprocess.Popen([str(path), *args])
    try:
        returncode = process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return TaskFailed(f"{shown} was stopped after {limit:g} s"
                          f" (the time limit; set {TIME_LIMIT_VARIABLE} to change it)")
    except BaseException:
        process.kill()
        process.wait()
        raise
    if returncode < 0:
        return TaskFailed(f"{shown} was killed by {signal_name(-returncode)}")
    if returncode != exit_code:
        return TaskFailed(f"{shown} exited with {returncode}, expected {exit_code}")
    return None


# --- the graph as actions ------------------------------------------------

def _object_path(source: str) -> str:
    return str(PurePosixPath("build/obj", source.lstrip("/")).with_suffix(".o"))


def fasl_action(node: FaslNode) -> Action:
    library = node.library
    return Action(
        task=f"fasl:{node.name}", run=compile_fasl, inputs=[node.source],
        params={"source": node.source, "library": library.name,
                "external_format": node.external_format, "features": list(library.features),
                "policy": [list(q) for q in library.policy],
                "fail_on_warning": library.fail_on_warning,
                # Its :around-compile hook is ASDF's to find.
                **({"asdf_system": library.asdf_system} if library.asdf_system else {})},
        outputs={"fasl": node.fasl, "undefined": node.undefined,
                 observed.ROLE: node.fasl.removesuffix(".fasl") + ".reads"},
        toolchain=(sbcl_files,),
        state=node.state, means={"base": node.base, "project": _in_project(library)})


def grovel_action(node: FaslNode) -> Action:
    library = node.library
    return Action(
        task=f"grovel:{node.name}", run=grovel, inputs=[node.grovel],
        params={"source": node.grovel, "library": library.name,
                "features": list(library.features), "cc_flags": list(link.GROVEL_FLAGS)},
        outputs={"lisp": node.source, **({"c": node.wrapper_c} if node.wrapper_c else {})},
        toolchain=(sbcl_files, musl_files), state=node.state,
        means={"project": _in_project(library)})


def _in_project(library) -> bool:
    return not library.directory.is_absolute()


def library_action(library, nodes: list[FaslNode], complete) -> Action:
    return Action(
        task=library_task(library.name), run=check_undefined,
        inputs=[node.undefined for node in nodes],
        params={"library": library.name, "fail_on_warning": library.fail_on_warning},
        outputs={"report": f"build/undefined/{library.name}.txt"}, toolchain=(sbcl_files,),
        state=complete, means={"project": _in_project(library)})


def shared_library_action(source: str) -> Action:
    """clib:PATH: a library's C file as a shared library (link.shared_library)."""
    return Action(task=shared_library_task(source), run=build_shared_library, inputs=[source],
                  params={"source": source}, outputs={"library": Path(shared_library(source))},
                  toolchain=(musl_files,))


def build_shared_library(action: Action, ctx: Context, outputs: dict):
    link.shared_library(ctx.root / action.inputs[0], outputs["library"], ctx.root, action.task)


def c_action(source: str, weak: bool = False) -> Action:
    """c:PATH: a C file as a musl object; `weak` for a library's (link.compile_c)."""
    path = link.COMPAT_SOURCE if source == COMPAT_TASK else Path(source)
    return Action(task=f"c:{source}", run=compile_c, inputs=[path],
                  params={"source": source, "cflags": list(link.CFLAGS),
                          **({"weak": True} if weak else {})},
                  outputs={"object": Path(_object_path(source))}, toolchain=(musl_files,))


def _archives(b) -> list[str]:
    return [str(a) for a in b.archives] + [str(a) for _, paths in b.foreign_libraries
                                           for a in paths]


def binary_actions(node: BinaryNode, release_mode: bool = False) -> list[Action]:
    """core:, linkage:, runtime: and exe:NAME; in release mode
    release-core: (a canonical dump) and the rest, under build/release/NAME/."""
    b = node.binary
    if release_mode:
        prefix, here = "release-", f"build/release/{b.name}"
        core, record = f"{here}/{b.name}.core", f"{here}/{b.name}.linkage"
        shared = f"{here}/{b.name}.shared-objects"
        table, runtime, exe = f"{here}/symbols.c", f"{here}/runtime", f"{here}/{b.name}"
    else:
        prefix = ""
        core, record = f"build/core/{b.name}.core", f"build/core/{b.name}.linkage"
        shared = f"build/core/{b.name}.shared-objects"
        table, runtime = f"build/linkage/{b.name}-symbols.c", f"build/runtime/{b.name}"
        exe = f"build/bin/{b.name}"
    archives = _archives(b)
    objects = [_object_path(str(s)) for s in (*b.c_sources, *node.c_sources)] \
        + [_object_path(COMPAT_TASK)]
    # What the image loads by the name of a library's C file, those files link.
    provided = [posixpath.splitext(posixpath.basename(c))[0] for c in node.c_sources]
    return [
        Action(task=f"{prefix}core:{b.name}", run=dump_release_core if release_mode else dump_core,
               # A release dump also preloads sorteddir.c, built with gcc,
               # and its directory's path is in the image.
               # The archives: what the image's strings may name (_dump).
               inputs=([link.SORTED_LISTINGS_SOURCE] if release_mode else []) + archives,
               params={"binary": b.name, "features": list(node.features), "archives": archives,
                       "entry": b.entry, "entry_arguments": b.entry_arguments,
                       "compression": b.compression, "test": b.test,
                       **({"dump_directory": release_directory()} if release_mode else {})},
               outputs={"core": Path(core), "linkage": Path(record),
                        "shared_objects": Path(shared),
                        observed.ROLE: Path(core).with_suffix(".reads")},
               toolchain=(sbcl_files, musl_files), state=node.state),
        Action(task=f"{prefix}linkage:{b.name}", run=resolve_linkage,
               inputs=[Path(record), Path(shared), *map(Path, objects), *map(Path, archives)],
               params={"binary": b.name, "record": record, "shared_objects": shared,
                       "objects": objects, "archives": archives,
                       "foreign_libraries": [name for name, _ in b.foreign_libraries]
                       + provided,
                       **({"exported": [_object_path(c) for c in node.c_sources]}
                          if node.c_sources else {})},
               outputs={"table": Path(table)}, toolchain=(runtime_files, musl_files)),
        Action(task=f"{prefix}runtime:{b.name}", run=link_runtime,
               inputs=[Path(table), *map(Path, objects), *map(Path, archives)],
               params={"table": table, "objects": objects, "archives": archives,
                       "cflags": list(link.CFLAGS)},
               outputs={"runtime": Path(runtime)}, toolchain=(runtime_files, musl_files),
               executable=frozenset({"runtime"})),
        Action(task=f"{prefix}exe:{b.name}", run=embed_executable,
               inputs=[Path(runtime), Path(core)], params={"runtime": runtime, "core": core},
               outputs={"exe": Path(exe)}, executable=frozenset({"exe"})),
    ]


def release_action(node: BinaryNode, stages: list[Action], version: str, origin,
                   sources: list[str]) -> Action:
    """release:NAME: the archive of the release executable (the last of
    `stages`, every action its bytes come from, whose keys and outputs
    the manifest records), checked by a smoke run. `origin()` is where
    the sources come from (release.Origin), asked when the task is."""
    b = node.binary
    exe = stages[-1].outputs["exe"]
    own = [s for s in sources if not os.path.isabs(s)]
    return Action(
        task=f"release:{b.name}", run=make_release, inputs=[exe, *sources],
        late=lambda: {"epoch": origin().epoch, "revision": origin().revision(own)},
        params={"binary": b.name, "version": version, "exe": str(exe),
                "archives": _archives(b),
                "smoke_args": None if b.smoke_args is None else list(b.smoke_args)},
        outputs={"archive": Path("dist", release.archive_name(b.name, version))},
        toolchain=(sbcl_files, runtime_files, musl_files),
        # The stages' keys and outputs follow from the inputs and toolchain.
        means={"stages": stages})


def _doit_task(action: Action, ctx: Context, task_dep: list[str]) -> dict:
    basename, _, name = action.task.partition(":")
    return {"basename": basename, "name": name,
            "actions": [(execute, [action, ctx])],
            "uptodate": [(is_up_to_date, [action, ctx])],
            "targets": [os.path.join(ctx.root, p) for p in action.outputs.values()],
            "task_dep": task_dep,
            "doc": f"{basename} {name}"}


def lisp_strategy(ctx: Context):
    """How this build's Lisp jobs run (runners.py)."""
    return Runners(ctx)


_forks_die_with = None


def _die_with_this_process():
    """doit's worker processes, forked from this one, end with it."""
    global _forks_die_with
    if _forks_die_with != os.getpid():
        parent = _forks_die_with = os.getpid()
        os.register_at_fork(after_in_child=lambda: die_with_parent(parent))
        # Registered after multiprocessing's own exit hook, so run before it.
        importlib.import_module("multiprocessing.util")
        atexit.register(_end_forks_left_waiting)


def _end_forks_left_waiting():
    """A Ctrl-C that reaches doit while it starts its processes (-n 2)
    interrupts it before it can tell them to stop, and a process forked
    just after the signal never got it: it waits for a job for ever, and
    multiprocessing's exit hook would wait for it. After a build that
    ended normally there is none."""
    import multiprocessing
    for child in multiprocessing.active_children():
        child.kill()
        child.join()


def doit_tasks(project: Project):
    """Every task of the project, as doit task dicts; doit runs the ready
    one with the longest chain behind it first (schedule.py)."""
    tasks = list(_doit_tasks(project))
    schedule.set_priorities(tasks)
    schedule.install()
    yield from tasks


def _doit_tasks(project: Project):
    ctx = Context(root=project.root, store_root=project.store,
                  owner=int(os.environ.get(OWNER_VARIABLE) or os.getpid()))
    ctx.lisp = lisp_strategy(ctx)
    ctx.remote = remote_from(project.remote, ctx.build, ctx.owner)
    if os.getpid() == ctx.owner:
        for path in scratch.sweep(ctx.build):
            print(f"removed {path.relative_to(ctx.root)}, left by a stopped build",
                  file=sys.stderr)
        _die_with_this_process()
    if not os.environ.get(WATCH_VARIABLE):  # a watch stops its workers itself
        atexit.register(ctx.lisp.shutdown)
    graph = plan(project, asdf_libraries(project, ctx))
    # What a watch watches (watch.py): every input of the graph.
    inputs = [str(project.root / "dodo.py")] + [
        str(project.root / library.asd) for library in graph.libraries.values() if library.asd]
    # The actions that write each FASL, for the manifests of releases.
    writers: dict[str, list[Action]] = {}
    c_actions = {}
    clib_actions = {}
    for node in graph.fasls.values():
        after = list(node.after)
        fasl = fasl_action(node)
        if node.grovel:
            action = grovel_action(node)
            yield _doit_task(action, ctx, list(node.after))
            after.append(action.task)
            inputs.append(os.path.join(ctx.root, node.grovel))
            writers[node.fasl] = [action, fasl]
            if node.wrapper_c:
                # The bindings load the library when their FASL is loaded.
                clib = clib_actions[node.wrapper_c] = shared_library_action(node.wrapper_c)
                yield _doit_task(clib, ctx, [action.task])
                after.append(clib.task)
                c = c_actions[node.wrapper_c] = c_action(node.wrapper_c, weak=True)
                yield _doit_task(c, ctx, [action.task])
        else:
            inputs.append(os.path.join(ctx.root, node.source))
            writers[node.fasl] = [fasl]
        yield _doit_task(fasl, ctx, after)
    by_library = {}
    for node in graph.fasls.values():
        by_library.setdefault(node.library.name, []).append(node)
    for library in graph.libraries.values():
        task_dep = [f"fasl:{library.name}/{s.path}" for s in library.sources] \
            + [library_task(d) for d in library.depends_on]
        if library.unavailable:
            basename, _, name = library_task(library.name).partition(":")
            yield {"basename": basename, "name": name,
                   "actions": [(fail, [library.unavailable])], "task_dep": task_dep,
                   "doc": f"every FASL of {library.name}"}
        else:
            action = library_action(library, by_library.get(library.name, []),
                                    graph.complete[library.name])
            yield _doit_task(action, ctx, task_dep)
    c_sources = {str(s) for b in project.binaries.values() for s in b.c_sources}
    # The C files of libraries: an object for each static link, and a
    # shared library for the SBCLs that load the library's code.
    library_c = sorted({c for library in graph.libraries.values()
                        for c in library_c_sources(library)})
    c_sources |= set(library_c)
    for source in library_c:
        action = clib_actions[source] = shared_library_action(source)
        inputs.append(os.path.join(ctx.root, source))
        yield _doit_task(action, ctx, [])

    @functools.cache
    def release_origin() -> release.Origin:
        """The archives' time and git commit, once a build for all binaries."""
        sources = [node.grovel or node.source for node in graph.fasls.values()]
        asd = [library.asd for library in graph.libraries.values()
               if library.asd and not os.path.isabs(library.asd)]
        own = ["dodo.py", *sorted(s for s in c_sources if not os.path.isabs(s)), *asd] \
            + [p for p in sources if not os.path.isabs(p)]
        return release.source_origin(project.root, own)

    for source in sorted((c_sources | {COMPAT_TASK}) - c_actions.keys()):
        action = c_actions[source] = c_action(source, weak=source in library_c)
        inputs += [os.path.join(ctx.root, i) for i in action.inputs]
        yield _doit_task(action, ctx, [])
    for node in graph.binaries.values():
        b = node.binary
        if node.unavailable:  # its tasks fail, saying why; the others build
            yield {"basename": "core", "name": b.name, "actions": [(fail, [node.unavailable])],
                   "doc": f"core {b.name}"}
            yield {"basename": "exe", "name": b.name, "actions": [],
                   "task_dep": [f"core:{b.name}"], "doc": f"exe {b.name}"}
            continue
        core, table, runtime, exe = binary_actions(node)
        own_c = [str(s) for s in b.c_sources] + list(node.c_sources)
        c_tasks = [f"c:{s}" for s in own_c] + [f"c:{COMPAT_TASK}"]
        yield _doit_task(core, ctx, list(node.after))
        yield _doit_task(table, ctx, [core.task, *c_tasks])
        yield _doit_task(runtime, ctx, [table.task, *c_tasks])
        yield _doit_task(exe, ctx, [runtime.task, core.task])
        inputs += [os.path.join(ctx.root, i) for i in runtime.inputs
                   if not str(i).startswith("build/")]
        yield from _release_tasks(graph, node, ctx, writers,
                                  [clib_actions[s] for s in node.c_sources]
                                  + [c_actions[s] for s in own_c]
                                  + [c_actions[COMPAT_TASK]], c_tasks, release_origin)
    for run in project.runs.values():
        yield {"basename": RUN_EXE_TASK, "name": run.name, "actions": [],
               "task_dep": [f"exe:{run.binary}"]}
    if os.environ.get(WATCH_VARIABLE):
        write_watch_file(ctx.root, inputs, {
            run.name: {"executable": str(ctx.root / "build/bin" / run.binary),
                       "args": list(run.args)} for run in project.runs.values()})
    for kind, runs in (("run", project.runs), ("test", project.tests)):
        for run in runs.values():
            yield {"basename": kind, "name": run.name,
                   "actions": [(run_executable, [ctx.root / "build/bin" / run.binary,
                                                 list(run.args), run.exit_code,
                                                 kind == "test"])],
                   "task_dep": [f"exe:{run.binary}"], "verbosity": 2,
                   "uptodate": [(_program_starts, [])],
                   "doc": f"{kind} build/bin/{run.binary} {' '.join(run.args)}"}


def _release_tasks(graph, node: BinaryNode, ctx: Context, writers: dict,
                   c_actions: list[Action], c_tasks: list[str], release_origin):
    """release-core:, -linkage:, -runtime:, -exe: and release:NAME.
    `release_origin()` gives the archives' time and commit (release.py)."""
    b = node.binary
    version = b.version or next((graph.libraries[name].version for name in b.libraries
                                 if graph.libraries[name].version), None)
    if version is None:
        yield {"basename": "release", "name": b.name, "doc": f"release {b.name}",
               "actions": [(fail, [f"release:{b.name}: binary {b.name} has no version: give "
                                   f"version= to project.binary, or a :version to the ASDF "
                                   f"system of its first library"])]}
        return
    steps = node.state.steps()
    built = [a for kind, *rest in steps if kind == "load" for a in writers.get(rest[0], [])]
    core, table, runtime, exe = binary_actions(node, release_mode=True)
    stages = built + c_actions + [core, table, runtime, exe]
    sources = sorted({str(i) for a in built + c_actions for i in a.inputs
                      if not str(i).startswith("build/")
                      and not str(i).startswith(LISPBUILD_FILES)}
                     | {step[2] for step in steps if step[0] == "asdf"} | {"dodo.py"}
                     | {f for step in steps if step[0] == "asdf"
                        for f in graph.libraries[library_name(step[1])].planned_from})
    yield _doit_task(core, ctx, list(node.after))
    yield _doit_task(table, ctx, [core.task, *c_tasks])
    yield _doit_task(runtime, ctx, [table.task, *c_tasks])
    yield _doit_task(exe, ctx, [runtime.task, core.task])
    action = release_action(node, stages, version, release_origin, sources)
    task = _doit_task(action, ctx, [exe.task])
    task["verbosity"] = 2
    yield task


def write_watch_file(root: Path, inputs: list[str], runs: dict):
    """What the watch needs to know of a build; written by tasks.py when a
    watch asks for it (LISPBUILD_WATCH)."""
    path = root / WATCH_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"inputs": sorted(set(inputs)), "runs": runs}))
    os.replace(tmp, path)


def doit_config(project: Project) -> dict:
    """DOIT_CONFIG: lispbuild's progress reporter; doit's own record kept in SQLite (the default dbm falls
    back to dbm.dumb here), and every executable built by default."""
    state = project.root / "build" / ".lispbuild"
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass
    dep_file = state / "doit.sqlite3"
    if not os.access(state, os.W_OK):
        # A read-only build/ (an archived tree): doit's record is only a
        # cache of what lispbuild's checks decide, so keep it elsewhere.
        dep_file = Path(tempfile.gettempdir()) / f"lispbuild-doit-{os.getuid()}-{digest_bytes(bytes(state))[:16]}.sqlite3"
    return {"dep_file": str(dep_file), "backend": "sqlite3",
            "default_tasks": ["exe"], STORE_CONFIG: str(project.store),
            # Each task's words are kept and written when it ends, above
            # the status line (progress.py).
            "reporter": REPORTER, "verbosity": 0}
