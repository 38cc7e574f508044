"""The rebuilder: decides from content hashes whether a task's result can be
reused, and otherwise runs it and records the result.

doit is the scheduler: it orders tasks and asks `is_up_to_date` before each.
An action's key hashes what its result depends on (keys.py). The store
maps keys to the digests of the outputs, so a task is up to date when the
files under build/ still have those digests, and a task whose key is in
the store is restored rather than rebuilt.
"""
import fcntl
import inspect
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from doit.exceptions import TaskFailed

from . import current, layout, observed, reuse
from .action import Action, Context
from .buildlock import hold_build_lock
from .digest import BUILT, FOLLOWED, RESTORED
from .errors import CorruptObject, LispbuildError, UnsoundReuse
from .keys import action_key, key_description, what_it_read
from .scratch import scratch_dir
from .settings import settings
from .records import Output, Outputs, outputs_json, parse_outputs
from .store import Store, copy_atomically


def is_up_to_date(action: Action, ctx: Context) -> bool:
    """doit's uptodate check: build/ holds the outputs of the action's key,
    as this build directory recorded when it last wrote them (the store
    is asked only when that record does not say so).

    Never raises: whatever goes wrong here (an unreadable input, a broken
    record) makes the task run, and the task reports it. (doit 0.37 with
    -n 2 hangs when a check raises.)"""
    try:
        hold_build_lock(ctx)
        if current.holds(action, ctx):
            return True
        if "follower" in action.means and ctx.digests.followed_in(action.task, ctx.build_id):
            # Compiled in this build, after the file before it: shown as run.
            current.not_current(ctx)
            return False
        with ctx.digests.consulting() as consulted:
            found = _outputs_current(action, ctx)
        if found:
            current.remember(action, ctx, consulted)
        else:
            current.not_current(ctx)
        return found
    except Exception:
        current.not_current(ctx)
        return False


def _outputs_current(action: Action, ctx: Context) -> bool:
    key = action_key(action, ctx)
    recorded = ctx.digests.task_key(action.task)
    outputs = None
    if recorded is not None and recorded[0] == key:
        outputs = parse_outputs(json.loads(recorded[1]), action.outputs)
    local = outputs is not None
    if local and not observed.still_read_alike(outputs, ctx, _in_store(ctx.store)):
        local, outputs = False, None
    if not local:
        outputs = _stored_outputs(action, key, ctx, ctx.store)
    if outputs is None and not settings().check_reuse:
        outputs = _reused_outputs(action, key, ctx, ctx.store)
    if outputs is None:
        return False
    for role, recorded in outputs.items():
        try:
            if ctx.digests.digest(os.path.join(ctx.root, action.outputs[role])) \
                    != recorded.sha256:
                return False
        except FileNotFoundError:
            return False
    if not local:  # build/ holds them: say so here, and ask the store no more
        _record_in_build(action, ctx, key, outputs)
    return True


# doit asks each uptodate callable for its signature, for every task: this
# answers at once.
is_up_to_date.__signature__ = inspect.signature(is_up_to_date)


def execute(action: Action, ctx: Context):
    """doit's python-action: restore the outputs from the store, or build them.

    On failure nothing under build/ or in the store is touched: outputs are
    built in a scratch directory and only then stored and copied in place.
    Any error fails the task with a message naming it."""
    try:
        if "follower" not in action.means \
                or not ctx.digests.followed_in(action.task, ctx.build_id):
            _restore_or_build(action, ctx)
    except LispbuildError as error:
        return TaskFailed(str(error))
    except OSError as error:
        from . import space
        full = space.no_space(error, action.task,
                              ", ".join(str(p) for p in action.outputs.values()),
                              [ctx.build, ctx.store_root])
        return TaskFailed(full or f"{action.task}: {type(error).__name__}: {error}")
    except Exception as error:
        return TaskFailed(f"{action.task}: {type(error).__name__}: {error} (a fault in "
                          f"lispbuild: {log_fault(ctx, action.task)} has its traceback)")
    return None


FAULT_LOG = layout.from_root(layout.LOG)


def log_fault(ctx: Context, task: str) -> str:
    """Append the exception being handled, with its traceback, to the
    build's log; the log's path from the project root."""
    import traceback
    try:
        path = ctx.root / FAULT_LOG
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {task}\n"
                      + traceback.format_exc())
    except OSError:
        return "no log (build/ cannot be written)"
    return FAULT_LOG


def keep_output(ctx: Context, output: Path, what: str, limit: int = 4000) -> str:
    """Append the end of a process's `output` file to the build's log
    (the process's own file goes when its build ends); says where."""
    try:
        said = output.read_bytes()[-limit:].decode(errors="replace")
        path = ctx.root / FAULT_LOG
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {what}; its output ended:\n"
                      f"{said}\n")
    except OSError:
        return "its output is gone"
    return f"its output is in {FAULT_LOG}"


def _restore_or_build(action: Action, ctx: Context, store: Store | None = None):
    hold_build_lock(ctx)
    store = store or ctx.store
    remote = ctx.remote if store is ctx.store else None
    description = key_description(action, ctx)
    key = description.key()
    outputs, whence = _stored_outputs(action, key, ctx, store), "the store"
    if outputs is None and remote is not None:
        outputs, whence = remote.fetch(key, action.outputs, store), "the remote store"
        if outputs is not None and not observed.still_read_alike(outputs, ctx,
                                                                 _in_store(store)):
            outputs = None  # built from files that have changed since
    reused = None  # what a trace reuses, compiled again all the same to compare
    if outputs is None and store is ctx.store:
        outputs, whence = _reused_outputs(action, key, ctx, store), "a compile (reused)"
        if outputs is not None and settings().check_reuse:
            reused, outputs = outputs, None
    if store is ctx.store:  # a task of the build: `doit why` can say why it ran
        read = what_it_read(action, ctx, description)
        if outputs is None:
            read = read.with_reuse(reuse.why_not(action, ctx, store, key))
        ctx.digests.record_run(action.task, ctx.build_id, read.to_json())
    if outputs is not None:
        try:
            _restore(action, ctx, store, outputs)
            if store is ctx.store:
                print(f"{action.task}: restored from {whence}")
        except CorruptObject as error:
            print(f"{action.task}: {error}; building it", file=sys.stderr)
            outputs = None
    if outputs is None:
        outputs, whence = _build(action, ctx, key, store, reused), BUILT
    _finish(action, ctx, key, store, outputs, whence)


def _finish(action: Action, ctx: Context, key: str, store: Store, outputs: Outputs, whence):
    """build/ holds `outputs`, of `key`: said in its record, and for `doit
    why`; what this machine has (and _build recorded: no input changed
    meanwhile) goes to the remote store, when the project uploads."""
    _record_in_build(action, ctx, key, outputs)
    if store is not ctx.store:
        return
    ctx.digests.finish_run(action.task, whence if whence in (BUILT, FOLLOWED) else RESTORED)
    if ctx.remote is not None and whence != "the remote store" \
            and store.get_action(key, action.outputs) is not None:
        ctx.remote.push(key, outputs, store)


def _record_in_build(action: Action, ctx: Context, key: str, outputs: Outputs):
    """build/ holds the outputs of `key`: said in the build directory's
    own record, which the next check reads first."""
    ctx.digests.record_task(action.task, key, json.dumps(outputs_json(outputs)))


def _restore(action: Action, ctx: Context, store: Store, outputs: Outputs):
    """Copy each recorded output into place, checking its bytes."""
    for role, recorded in outputs.items():
        dest = ctx.root / action.outputs[role]
        store.restore(recorded.sha256, dest, recorded.executable)
        ctx.digests.remember(dest, recorded.sha256)


def ensure(action: Action, ctx: Context):
    """Make one of lispbuild's own artifacts current outside doit's graph
    (its compiled Lisp, the development runtime), once, however many
    processes ask at the same time; kept in ctx.tool_store. Raises
    LispbuildError."""
    hold_build_lock(ctx)  # first: the build lock is always taken before this one
    lock_path = layout.state(ctx.build, layout.LOCKS) / action.task.replace(":", "-")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_up_to_date(action, ctx):
            _restore_or_build(action, ctx, ctx.tool_store)


def _build(action: Action, ctx: Context, key: str, store: Store,
           reused: Outputs | None) -> Outputs:
    """Run the action, store its outputs and put them in place; then its
    followers' (rules/lisp.py), whose keys hold the digests of this one's
    outputs. `reused`: what a trace would have reused, which must be the
    same (LISPBUILD_CHECK_REUSE)."""
    with scratch_dir(ctx.build) as scratch:
        scratch = Path(scratch)
        paths = {role: scratch / Path(p).name for role, p in action.outputs.items()}
        followers = action.run(action, ctx, paths) or ()
        # Which runner made a Lisp job's outputs (runners.Runners.runner_of).
        made_by = getattr(ctx.lisp, "runner_of", lambda task: None)(action.task)
        outputs = _put(action, ctx, key, store, paths, made_by)
        if reused is not None and reused != outputs:
            differ = ", ".join(role for role in outputs if reused.get(role) != outputs[role])
            raise UnsoundReuse(f"{action.task}: LISPBUILD_CHECK_REUSE: its trace reused "
                               f"outputs that differ from a fresh compile's ({differ}); "
                               f"the compile consulted something its trace does not name")
        _place(action, ctx, store, outputs)
        for follower, made in followers:
            _settle_follower(follower, made, action, ctx, store, made_by)
        return outputs


def _put(action: Action, ctx: Context, key: str, store: Store, paths: dict,
         made_by: str | None) -> Outputs:
    outputs = {role: Output(store.put_file(path), role in action.executable)
               for role, path in paths.items()}
    # An input edited while the action ran makes the result belong to no
    # key: keep it out of the store.
    if action_key(action, ctx) == key:
        store.put_action(key, outputs, made_by)
        reuse.record(action, ctx, store, key, outputs, made_by)
        variant = observed.variant_recorded(key, outputs, _in_store(store))
        if variant is not None:
            store.put_action(variant, outputs, made_by)
    return outputs


def _place(action: Action, ctx: Context, store: Store, outputs: Outputs):
    for role, recorded in outputs.items():
        dest = ctx.root / action.outputs[role]
        copy_atomically(store.object_path(recorded.sha256), dest, recorded.executable)
        ctx.digests.remember(dest, recorded.sha256)


def _settle_follower(follower: Action, made: dict, leader: Action, ctx: Context,
                     store: Store, made_by: str | None):
    """A file compiled in `leader`'s process after it (rules/lisp.py): its
    outputs recorded under its own key and put in place, as its own task
    would have (which then does nothing). LISPBUILD_CHECK_REUSE=1 compiles
    it alone too first, and fails if the bytes differ."""
    description = key_description(follower, ctx)
    key = description.key()
    if settings().check_reuse:
        with scratch_dir(ctx.build) as scratch:
            alone = {role: Path(scratch) / Path(p).name for role, p in follower.outputs.items()}
            follower.run(replace(follower, means={**follower.means, "follower": ""}), ctx, alone)
            differ = [role for role in made if alone[role].read_bytes() != made[role].read_bytes()]
        if differ:
            raise UnsoundReuse(f"{follower.task}: LISPBUILD_CHECK_REUSE: compiled after "
                               f"{leader.task} in its process, its outputs differ from a "
                               f"compile alone ({', '.join(differ)})")
    ctx.digests.record_run(follower.task, ctx.build_id,
                           what_it_read(follower, ctx, description).to_json())
    outputs = _put(follower, ctx, key, store, made, made_by)
    _place(follower, ctx, store, outputs)
    _finish(follower, ctx, key, store, outputs, FOLLOWED)


def _reused_outputs(action: Action, key: str, ctx: Context, store: Store) -> Outputs | None:
    """A compile's outputs that its trace says still hold (reuse.py), if the
    files it read undeclared read alike too."""
    outputs = reuse.stored_outputs(action, ctx, store, key)
    if outputs is None or not observed.still_read_alike(outputs, ctx, _in_store(store)):
        return None
    return outputs


def _in_store(store: Store):
    """The text of a stored object (an action's `reads` output)."""
    return lambda sha256: store.object_path(sha256).read_text(encoding="utf-8")


def _stored_outputs(action: Action, key: str, ctx: Context, store: Store) -> Outputs | None:
    """The outputs the store holds for the action as it would run now:
    its key's latest record if the files it observed read alike, else
    the record made when they were as they are now (observed.py)."""
    outputs = store.get_action(key, action.outputs)
    if outputs is None or observed.still_read_alike(outputs, ctx, _in_store(store)):
        return outputs
    variant = observed.variant_now(key, outputs, ctx, _in_store(store))
    found = variant and store.get_action(variant, action.outputs)
    if found and observed.still_read_alike(found, ctx, _in_store(store)):
        return found
    return None
