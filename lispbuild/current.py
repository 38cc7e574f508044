"""Tasks current by stat: how a build with nothing to do checks each task
without computing its key, as ninja checks its log against the files'
times.

When a task's full check (rebuild.py) finds build/ holding the outputs of
its key, what that check read is remembered: the stat of every file whose
digest it asked for (inputs, outputs, toolchain, what the task observed
itself reading), its load state's digest, and the digest of the graph's
structure (every task's function, parameters, file names, toolchain and
load steps; lispbuild's own code). The next check of the task is true at
once when all of these are as remembered: then every digest its key is
made of, and so the key and its outputs, are too. Anything else (a stat
that differs, a file gone, another graph, another state) is a full check.

A build also keeps one record for the whole graph, its snapshot: the
tasks it found current and the union of what their checks read (with
the files their load states load). The next build stats each of those
files once, at its first check; when none changed (and the graph is the
same), every task of the snapshot is current without a look at its own
record or its state's digest, and the tasks found current besides are
added to it. A snapshot that does not hold is started again. It answers
only until a check in the build finds a task not current: from then on
tasks run and write files, and each check is the task's own.

Tasks with parameters found late (a release's git origin) are always
checked in full.
"""
import hashlib
import os

from .action import Action, Context
from .keys import package_digest
from .steps import step_files


def graph_digest(ctx: Context) -> str:
    """The digest of the structure of the graph's tasks (ctx.graph_actions):
    all of their keys but the contents of files. Computed once a process."""
    found = ctx.__dict__.get("_graph_digest")
    if found is None:
        structures, toolchains, rows = {}, {}, []
        for task, action in sorted(ctx.graph_actions.items()):
            for find in action.toolchain:
                if find not in toolchains:
                    toolchains[find] = [f"{find.__module__}.{find.__qualname__}",
                                        ctx.toolchain_paths(find)]
            rows.append([task, f"{action.run.__module__}.{action.run.__qualname__}",
                         action.params, [str(i) for i in action.inputs],
                         {role: str(p) for role, p in action.outputs.items()},
                         [toolchains[find] for find in action.toolchain],
                         sorted(action.executable), _structure(action.state, structures)])
        blob = repr([package_digest(), rows]).encode()  # the same code gives the same order
        found = ctx.__dict__["_graph_digest"] = hashlib.sha256(blob).hexdigest()
        ctx.__dict__["_toolchain_files"] = {path for _, paths in toolchains.values()
                                            for path in paths}
    return found


def _structure(state, memory: dict) -> str | None:
    """The steps of a load state, folded link by link (the files' names,
    not their contents)."""
    if state is None:
        return None
    found = memory.get(id(state))
    if found is None:
        parent = "" if state.parent is None else _structure(state.parent, memory)
        found = memory[id(state)] = hashlib.sha256(
            (parent + repr(state.own)).encode()).hexdigest()
    return found


def eligible(action: Action, ctx: Context) -> bool:
    return action.late is None and ctx.graph_actions.get(action.task) is action


def holds(action: Action, ctx: Context) -> bool:
    """Whether the task is current as its last full check found it."""
    if not eligible(action, ctx):
        return False
    if _snapshot_holds(action, ctx):
        return True
    row = ctx.digests.current_row(action.task)
    if row is None:
        return False
    graph, state, files = row
    if graph != graph_digest(ctx) or state != _state_digest(action, ctx):
        return False
    if not _files_hold(files, ctx):
        return False
    _add_to_snapshot(action, ctx, (line.split("\t", 1) for line in files.split("\n")))
    return True


def _files_hold(files: str, ctx: Context) -> bool:
    # Each file is looked at afresh (another task may have written it since
    # the last look), but for the toolchain, which a build does not change.
    toolchain = ctx.__dict__.setdefault("_toolchain_stats", {})
    for line in files.split("\n"):
        path, _, recorded = line.partition("\t")
        now = toolchain.get(path) or _stat(path, ctx)
        if now != recorded:
            return False
        if path in ctx.__dict__["_toolchain_files"]:
            toolchain[path] = now
    return True


def _snapshot_holds(action: Action, ctx: Context) -> bool:
    """Whether the build's snapshot (read at its first check) answers for
    the task, and no check of this build has found a task not current."""
    covered = ctx.__dict__.get("_snapshot_tasks")
    if covered is None:
        graph, tasks, files = ctx.digests.snapshot()
        if graph == graph_digest(ctx) and all(_stat(path, ctx) == stat
                                              for path, stat in files.items()):
            covered, seen = tasks, files  # it holds: what is added must agree with it
        else:
            covered, seen = set(), {}
            ctx.digests.restart_snapshot(graph_digest(ctx))
        ctx.__dict__.update(_snapshot_tasks=covered, _snapshot_seen=seen)
    return action.task in covered


def not_current(ctx: Context):
    """A check found a task not current: it will run and write files, so
    the snapshot answers no more in this build, and is not added to."""
    ctx.__dict__.update(_snapshot_tasks=set(), _snapshot_seen=None)


def _add_to_snapshot(action: Action, ctx: Context, files):
    """The task is current, having read `files` ((path, stat) pairs) and
    its load state's files: added to the snapshot, if they agree with it."""
    seen = ctx.__dict__.get("_snapshot_seen")
    if seen is None:
        return
    added = []
    for path, stat in files:
        if path not in seen:
            seen[path] = stat
            added.append((path, stat))
        elif seen[path] != stat:  # changed during the build
            not_current(ctx)
            return
    if action.state is not None and not _add_state(action.state, seen, added, ctx):
        not_current(ctx)
        return
    ctx.digests.add_to_snapshot(action.task, added)


def _add_state(state, seen: dict, added: list, ctx: Context) -> bool:
    """The stats of the files a load state loads, each link once a build:
    its digest (taken by then) was made of them."""
    walked = ctx.__dict__.setdefault("_snapshot_states", set())
    while state is not None and id(state) not in walked:
        for step in state.own:
            for path in step_files(step):
                path = os.path.abspath(os.path.join(ctx.root, path))
                stat = ctx.digests.stat_of(path)
                if stat is None or seen.get(path, stat) != stat:
                    return False
                if path not in seen:  # a file of another task's: added once
                    seen[path] = stat
                    added.append((path, stat))
        walked.add(id(state))
        state = state.parent
    return True


def remember(action: Action, ctx: Context, consulted: list):
    """The task's full check found it current, having read `consulted`
    ((path, stat) of each file it asked the digest of)."""
    if not eligible(action, ctx):
        return
    files = dict(consulted)
    for find in action.toolchain:  # its digests are asked once a build: said here
        for path in ctx.toolchain_paths(find):
            files[path] = ctx.digests.stat_of(path)
    if None in files.values():
        return
    ctx.digests.record_current(action.task, graph_digest(ctx), _state_digest(action, ctx),
                               "\n".join(f"{p}\t{s}" for p, s in sorted(files.items())))
    _add_to_snapshot(action, ctx, files.items())


def _state_digest(action: Action, ctx: Context) -> str:
    return "" if action.state is None else ctx.states.digest(action.state)


def _stat(path: str, ctx: Context) -> str:
    try:
        return ctx.digests.stat_key(path)
    except OSError:
        return "gone"
