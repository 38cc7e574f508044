"""The doit tasks of a project: the graph's Actions (rules/), each run
through the rebuilder, and the tasks that run programs; doit's
configuration. See rules/__init__.py for what each task is."""
import atexit
import functools
import importlib
import os
import sys
import tempfile
from pathlib import Path

from . import layout, release, schedule, scratch, sysroot
from .asd_forms import asdf_programs
from .asdf import asdf_libraries
from .declare import Project, Run, library_name
from .digest import digest_bytes
from .graph import BinaryNode, library_c_sources, library_task, plan
from .modes import COVERAGE, build_mode
from .action import Action, Context
from .rebuild import execute, is_up_to_date
from .reload import Plan, reload_run, write_watch_file
from .remote import remote_from
from .rules.coverage import coverage_tasks
from .rules.binary import (COMPAT_TASK, LISPBUILD_FILES, archives_of, binary_actions,
                           c_action, shared_library_action)
from .rules.lisp import fasl_action, grovel_action, library_action
from .rules.release import release_action
from .rules.run import fail, program_tasks
from .sbcl.runners import Runners
from .settings import REPORTER, RUN_EXE_TASK, STORE_CONFIG, settings
from .targets import machines, variant
from .sbcl.processes import die_with_parent


def _doit_task(action: Action, ctx: Context, task_dep: list[str]) -> dict:
    ctx.graph_actions[action.task] = action
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
                  owner=int(settings().owner or os.getpid()))
    ctx.lisp = lisp_strategy(ctx)
    ctx.remote = remote_from(project.remote, ctx.build, ctx.owner)
    if os.getpid() == ctx.owner:
        for path in scratch.sweep(ctx.build):
            print(f"removed {path.relative_to(ctx.root)}, left by a stopped build",
                  file=sys.stderr)
        _die_with_this_process()
    if not settings().watch:  # a watch stops its workers itself
        atexit.register(ctx.lisp.shutdown)
    derived = asdf_libraries(project, ctx)
    graph = plan(project, derived, build_mode(settings().mode), coverage=settings().coverage,
                 programs=asdf_programs(project, derived))
    for node in graph.binaries.values():
        if node.binary.target:  # before any of its toolchain is looked up
            sysroot.want_archives(node.binary.target, archives_of(node.binary))
    made = _Tasks(ctx, project, graph)
    yield from made.lisp_files()
    yield from made.library_checks()
    yield from made.c_files()
    yield from made.binaries()
    yield from made.runs()
    if graph.coverage:
        yield from coverage_tasks(graph, ctx.root, ctx)
    if settings().watch:
        write_watch_file(ctx.root, made.inputs, {
            run.name: {"executable": str(ctx.root / layout.executable(run.binary)),
                       "args": list(run.args), "plan": made.plans[run.binary][0].as_dict()}
            for run in project.runs.values() if run.binary in made.plans})


class _Tasks:
    """The doit tasks of one graph, kind by kind; what they read, for a
    watch (`inputs`); and the actions that write each FASL and C object,
    for the manifests of releases."""

    def __init__(self, ctx: Context, project: Project, graph):
        self.ctx, self.project, self.graph = ctx, project, graph
        self.inputs = [str(project.root / "dodo.py")] + [
            str(project.root / library.asd) for library in graph.libraries.values()
            if library.asd]
        self.writers: dict[str, list[Action]] = {}
        self.c_actions: dict[str, Action] = {}
        self.clib_actions: dict[str, Action] = {}
        # The C files of libraries: an object for each static link, and a
        # shared library for the SBCLs that load the library's code.
        self.library_c = sorted({c for library in graph.libraries.values()
                                 for c in library_c_sources(library)})
        self.c_sources = {str(s) for b in project.binaries.values()
                          for s in b.c_sources} | set(self.library_c)
        # For a watch: each binary's reload plan, and the tasks that make
        # what it names.
        self.plans: dict[str, tuple[Plan, list[str]]] = {}

    def lisp_files(self):
        ctx = self.ctx
        for node in self.graph.fasls.values():
            after = list(node.after)
            fasl = fasl_action(node)
            if node.grovel:
                action = grovel_action(node)
                yield _doit_task(action, ctx, list(node.after))
                after.append(action.task)
                self.inputs.append(os.path.join(ctx.root, node.grovel))
                self.writers[node.fasl] = [action, fasl]
                if node.wrapper_c:
                    # The bindings load the library when their FASL is loaded.
                    clib = self.clib_actions[node.wrapper_c] = \
                        shared_library_action(node.wrapper_c)
                    yield _doit_task(clib, ctx, [action.task])
                    after.append(clib.task)
                    c = self.c_actions[node.wrapper_c] = c_action(node.wrapper_c, weak=True)
                    yield _doit_task(c, ctx, [action.task])
            else:
                self.inputs.append(os.path.join(ctx.root, node.source))
                self.writers[node.fasl] = [fasl]
            yield _doit_task(fasl, ctx, after)

    def library_checks(self):
        by_library = {}
        for node in self.graph.fasls.values():
            by_library.setdefault(node.library.name, []).append(node)
        for library in self.graph.libraries.values():
            task_dep = [f"fasl:{library.name}/{s.path}" for s in library.sources] \
                + [library_task(d) for d in library.depends_on]
            if library.unavailable:
                basename, _, name = library_task(library.name).partition(":")
                yield {"basename": basename, "name": name,
                       "actions": [(fail, [library.unavailable])], "task_dep": task_dep,
                       "doc": f"every FASL of {library.name}"}
                if (library.asdf_system or "").lower() in self.project.asdf_systems_by_name \
                        and library.name not in self.graph.binaries:
                    # What `doit` builds by default (exe) fails saying why,
                    # where ASDF could not say which binary the system makes.
                    yield {"basename": "exe", "name": library.name, "actions": [],
                           "task_dep": [library_task(library.name)],
                           "doc": f"what ASDF system {library.asdf_system} makes"}
            else:
                action = library_action(library, by_library.get(library.name, []),
                                        self.graph.complete[library.name])
                yield _doit_task(action, self.ctx, task_dep)

    def c_files(self):
        for source in self.library_c:
            action = self.clib_actions[source] = shared_library_action(source)
            self.inputs.append(os.path.join(self.ctx.root, source))
            yield _doit_task(action, self.ctx, [])
        for source in sorted((self.c_sources | {COMPAT_TASK}) - self.c_actions.keys()):
            action = self.c_actions[source] = c_action(source, weak=source in self.library_c)
            self.inputs += [os.path.join(self.ctx.root, i) for i in action.inputs]
            yield _doit_task(action, self.ctx, [])
        # Another machine's: its binaries' own C files and the compat layer.
        for node in self.graph.binaries.values():
            t = node.binary.target
            for source in [str(s) for s in node.binary.c_sources] + [COMPAT_TASK] if t else ():
                if variant(source, t) not in self.c_actions:
                    action = self.c_actions[variant(source, t)] = c_action(source, target=t)
                    yield _doit_task(action, self.ctx, [])

    @functools.cached_property
    def release_origin(self) -> release.Origin:
        """The archives' time and git commit, once a build for all binaries."""
        graph = self.graph
        sources = [node.grovel or node.source for node in graph.fasls.values()]
        asd = [library.asd for library in graph.libraries.values()
               if library.asd and not os.path.isabs(library.asd)]
        own = ["dodo.py", *sorted(s for s in self.c_sources if not os.path.isabs(s)), *asd] \
            + [p for p in sources if not os.path.isabs(p)]
        return release.source_origin(self.project.root, own)

    def binaries(self):
        ctx = self.ctx
        for node in self.graph.binaries.values():
            b = node.binary
            if node.unavailable:  # its tasks fail, saying why; the others build
                yield {"basename": "core", "name": b.name,
                       "actions": [(fail, [node.unavailable])], "doc": f"core {b.name}"}
                yield {"basename": "exe", "name": b.name, "actions": [],
                       "task_dep": [f"core:{b.name}"], "doc": f"exe {b.name}"}
                continue
            *base, core, table, runtime, exe = binary_actions(node, own=self.own_fasls)
            own_c = [variant(str(s), b.target) for s in b.c_sources] + list(node.c_sources)
            compat = variant(COMPAT_TASK, b.target)
            c_tasks = [f"c:{s}" for s in own_c] + [f"c:{compat}"]
            for action in base:
                yield _doit_task(action, ctx, list(node.after))
            yield _doit_task(core, ctx, list(node.after))
            yield _doit_task(table, ctx, [core.task, *c_tasks])
            yield _doit_task(runtime, ctx, [table.task, *c_tasks])
            yield _doit_task(exe, ctx, [runtime.task, core.task, *(a.task for a in base)])
            self.inputs += [os.path.join(ctx.root, i) for i in runtime.inputs
                            if not str(i).startswith(f"{layout.BUILD}/")]
            self.plans[b.name] = (self._plan(node, runtime), [*node.after, *c_tasks])
            if node.mode == COVERAGE:  # doit coverage's: never released
                continue
            yield from _release_tasks(self.graph, node, ctx, self.writers,
                                      [self.clib_actions[s] for s in node.c_sources]
                                      + [self.c_actions[s] for s in own_c]
                                      + [self.c_actions[compat]], c_tasks,
                                      lambda: self.release_origin)

    @functools.cached_property
    def own_fasls(self) -> frozenset:
        """The project's FASLs (not groveled or wrapping C): what a reload
        may load, and what a development executable may carry as its
        payload."""
        return frozenset(n.fasl for n in self.graph.fasls.values()
                         if not (n.grovel or n.wrapper_c or os.path.isabs(n.source)))

    def _plan(self, node: BinaryNode, runtime: Action) -> Plan:
        """What a development executable of `node` holds (reload.py): its
        project FASLs may be reloaded."""
        steps = [list(step) for step in node.state.steps()]
        return Plan(steps=steps,
                    reloadable=[s[1] for s in steps if s[0] == "load" and s[1] in self.own_fasls],
                    others=[str(i) for i in runtime.inputs[1:]],
                    runtime=str(runtime.outputs["runtime"]))

    def runs(self):
        project, root = self.project, self.ctx.root
        watch = settings().watch
        for run in project.runs.values():
            if "" not in machines(project.binaries[run.binary]):
                continue  # a watch runs this machine's programs
            reload = [f"reload:{run.name}"] if watch and run.binary in self.plans else []
            if reload:
                plan, after = self.plans[run.binary]
                yield {"basename": "reload", "name": run.name, "task_dep": after,
                       "actions": [(reload_run, [run.name, plan, root,
                                                 self.ctx.digests.digest])],
                       "doc": f"reload the new code into the program run:{run.name} runs"}
            yield {"basename": RUN_EXE_TASK, "name": run.name, "actions": [],
                   "task_dep": [f"exe:{run.binary}", *reload]}
        # The suites systems' test-ops declare (asdf.py), beside dodo.py's.
        tests = {**{name: Run(name=name, binary=name, args=(), exit_code=0)
                    for name, node in self.graph.binaries.items() if node.binary.test_op},
                 **project.tests}
        for kind, runs in (("run", project.runs), ("test", tests)):
            for run in runs.values():
                declared = project.binaries.get(run.binary) \
                    or self.graph.binaries[run.binary].binary
                yield from program_tasks(kind, run, machines(declared), root)


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
                      if not str(i).startswith(f"{layout.BUILD}/")
                      and not str(i).startswith(LISPBUILD_FILES)}
                     | {step[2] for step in steps if step[0] == "asdf"} | {"dodo.py"}
                     | {path for _, path in b.resources}
                     | {f for step in steps if step[0] == "asdf"
                        for f in graph.libraries[library_name(step[1])].planned_from})
    yield _doit_task(core, ctx, list(node.after))
    yield _doit_task(table, ctx, [core.task, *c_tasks])
    yield _doit_task(runtime, ctx, [table.task, *c_tasks])
    yield _doit_task(exe, ctx, [runtime.task, core.task])
    asdf = [graph.libraries[library_name(step[1])] for step in steps if step[0] == "asdf"]
    libraries = [{"library": lib.name, "system": lib.asdf_system, "version": lib.version,
                  "directory": str(lib.directory), "found_in": lib.found_in} for lib in asdf]
    action = release_action(node, stages, version, release_origin, sources, libraries)
    task = _doit_task(action, ctx, [exe.task])
    task["verbosity"] = 2
    yield task


def doit_config(project: Project) -> dict:
    """DOIT_CONFIG: lispbuild's progress reporter; doit's own record kept in SQLite (the default dbm falls
    back to dbm.dumb here), and every executable built by default."""
    state = layout.state(project.root / layout.BUILD, "")
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass
    dep_file = state / layout.DOIT
    if not os.access(state, os.W_OK):
        # A read-only build/ (an archived tree): doit's record is only a
        # cache of what lispbuild's checks decide, so keep it elsewhere.
        dep_file = Path(tempfile.gettempdir()) / f"lispbuild-doit-{os.getuid()}-{digest_bytes(bytes(state))[:16]}.sqlite3"
    return {"dep_file": str(dep_file), "backend": "sqlite3",
            "default_tasks": ["exe"], STORE_CONFIG: str(project.store),
            # Each task's words are kept and written when it ends, above
            # the status line (progress.py).
            "reporter": REPORTER, "verbosity": 0}
