"""Watch mode: `doit watch [TASK...]` builds, then rebuilds whenever an input
of the graph changes, keeping the warm workers alive in between; with
run:NAME it keeps that program running on the newest build.

A program a run keeps running is a development executable: after a
build in which only the project's own Lisp changed, it loads the new
FASLs into itself (reload.py) and goes on; otherwise, or with
--no-reload, the watch restarts it, and says why.

Each build is doit's own `run`, in the watch's process (no Python to
start), with dodo.py and the ASDF definitions read again every time, as
the user's own `doit` would read them; the watch owns the builds
(LISPBUILD_OWNER), so that the workers they start outlive each build and
end with the watch. A build tells the watch what it read
(build/.lispbuild/watch.json): the inputs to watch, and the programs the
runs start.

Changes come from watchfiles (inotify, through Rust's notify): a burst of
them (a save-all, a git checkout, an editor's write-then-rename) is one
batch, hence one rebuild; a batch rebuilds only when the content of an
input changed (a touch does not). A failed rebuild leaves the last good
executables where they were, and the watch goes on.
"""
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from doit.cmd_base import Command, DodoTaskLoader
from doit.doit_cmd import DoitMain

from .. import layout, reload
from ..digest import DigestCache
from ..action import Context
from ..buildlock import release_build_lock
from ..settings import (OWNER_VARIABLE, RELOAD_SOCKET_VARIABLE, RUN_EXE_TASK,
                        STOP_GRACE_SECONDS, WATCH_VARIABLE)
from ..sbcl.processes import become_subreaper
from ..sbcl.worker import WarmWorkers
from . import PROCESSES_OPTION, timing

# A diagnostic about a file of the project: "path:line: ...", the path
# relative (those of Debian's libraries are absolute).
PROJECT_DIAGNOSTIC = re.compile(r"^[^/\s][^\s:]*:\d+: ")


def say(line: str):
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


class Program:
    """A program the watch keeps running on the newest good build:
    reloaded, or restarted (the previous one stopped first: SIGTERM, then
    SIGKILL after a grace period); one that exits on its own stays ended
    until the next good build. Its output goes where the watch's goes."""

    def __init__(self, name: str, command: list[str], cwd: Path, reloads: bool):
        self.name, self.command, self.cwd, self.reloads = name, command, cwd, reloads
        self.process: subprocess.Popen | None = None
        self.told = False

    def update(self, plan: reload.Plan, digest) -> bool:
        """After a good build: go on if the program holds this build's code
        (reload:NAME loaded it), else restart it, saying why when it ran.
        Whether it was restarted."""
        if self.reloads and self.process is not None and self.process.poll() is None:
            why = reload.verdict(self.cwd, self.name, plan, digest)
            if why is None:
                return False
            say(f"run:{self.name}: restarting, as {why}")
        self.restart(plan, digest)
        return True

    def restart(self, plan: reload.Plan, digest):
        self.stop()
        env = dict(os.environ)
        if self.reloads:
            env[RELOAD_SOCKET_VARIABLE] = reload.socket_path(self.name)
            (self.cwd / reload.socket_path(self.name)).parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(self.command, cwd=self.cwd, env=env)
        if self.reloads:
            reload.started(self.cwd, self.name, self.process.pid, plan, digest)
        self.told = False
        say(f"run:{self.name}: started (pid {self.process.pid})")

    def check(self):
        if self.process is not None and not self.told and self.process.poll() is not None:
            self.told = True
            say(f"run:{self.name}: exited with {self.process.returncode}; "
                f"it starts again after the next good build")

    def stop(self):
        reload.forget(self.cwd, self.name)
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _content(digests: DigestCache, paths) -> dict[str, str | None]:
    """Each file's sha256 (None if it cannot be read), hashed only when its
    stat changed."""
    found = {}
    for path in paths:
        try:
            found[path] = digests.digest(path)
        except OSError:
            found[path] = None
    return found


# In a traceback: where it was, and the exception (the last line).
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)')


def _dodo_error(said: str, root: Path) -> str | None:
    """"dodo.py:LINE: SyntaxError: ..." for a dodo.py that could not be
    read or run (doit prints the whole traceback), else None."""
    dodo = str(root / "dodo.py")
    lines = said.splitlines()
    places = [m for m in map(_FRAME.match, lines) if m and m["file"] == dodo]
    if not places or not lines[-1].strip():
        return None
    return f"dodo.py:{places[-1]['line']}: {lines[-1].strip()}"


def _summary(ran: list[str]) -> str:
    """The tasks a build ran, by name when they fit on a line, else counted
    by kind ("171 fasl, c, core, linkage, runtime, exe")."""
    if not ran:
        return "nothing to do"
    if len(ran) <= 6:
        return " ".join(ran)
    kinds: dict[str, int] = {}
    for name in ran:
        kind = name.partition(":")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    return ", ".join(f"{n} {kind}" if n > 1 else kind for kind, n in kinds.items())


_interrupted = threading.Event()


def _interrupt(*_):
    """Ctrl-C and SIGTERM. Remembered as well as raised: doit, interrupted
    while a task runs, can turn the KeyboardInterrupt into an error of its
    own (its JSON reporter fails on the unfinished task) and return."""
    _interrupted.set()
    raise KeyboardInterrupt


class Watch(Command):
    """doit's `watch` command, installed with lispbuild (entry point
    group doit.COMMAND)."""
    name = "watch"
    doc_purpose = "build, then rebuild what changed whenever an input of the graph changes"
    doc_usage = "[TASK ...] [run:NAME ...]"
    doc_description = ("TASK defaults to the default tasks. run:NAME keeps that program "
                       "running on the newest build. Ctrl-C stops the watch, its workers "
                       "and its programs.")
    cmd_options = (
        PROCESSES_OPTION,
        {"name": "verbose", "short": "v", "long": "verbose", "type": bool, "default": False,
         "help": "after each build, where its time went: detection, graph, compile, "
                 "reload, dump, executable, restart"},
        {"name": "no_reload", "long": "no-reload", "type": bool, "default": False,
         "help": "restart the programs of run:NAME after each good build instead of "
                 "loading the new code into them"},
    )

    def execute(self, params, args):
        root = Path.cwd()
        runs = [a.partition(":")[2] for a in args if a.startswith("run:")]
        tasks = [a for a in args if not a.startswith("run:")]
        if runs and not tasks:
            tasks = [f"{RUN_EXE_TASK}:{name}" for name in runs]
        become_subreaper()
        ctx = Context(root=root, store_root=root / "cache")
        workers = WarmWorkers(ctx)
        programs: dict[str, Program] = {}
        os.environ.update({OWNER_VARIABLE: str(os.getpid()), WATCH_VARIABLE: "1"})
        report = layout.state(root / layout.BUILD, layout.WATCH_REPORT)
        arguments = ["-n", str(params["processes"]), "--reporter", "json", "--verbosity", "0",
                     "--output-file", str(report), *tasks,
                     *[f"{RUN_EXE_TASK}:{name}" for name in runs
                       if f"{RUN_EXE_TASK}:{name}" not in tasks]]
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)
        stop = threading.Event()
        try:
            changed, inputs = None, [str(root / "dodo.py")]
            saved = detected = None
            while True:
                # What the inputs held when the build read them: a save
                # during the build starts the next one at once.
                read = _content(ctx.digests, inputs)
                start = time.time()
                ok, info, tasks = self._build(root, arguments, report, changed)
                built, restart = time.time(), None
                if ok and info and runs:
                    restarted = False
                    for name in runs:
                        if name not in info["runs"]:
                            say(f"run:{name}: no such run is declared")
                            continue
                        run = info["runs"][name]
                        command = [run["executable"], *run["args"]]
                        if name not in programs or programs[name].command != command:
                            if name in programs:
                                programs[name].stop()
                            programs[name] = Program(name, command, root,
                                                     not params["no_reload"])
                        restarted |= programs[name].update(reload.Plan(**run["plan"]),
                                                           ctx.digests.digest)
                    restart = time.time() - built if restarted else None
                if params["verbose"]:
                    ready = time.time() if restart is not None else \
                        timing.reloaded(tasks) or time.time()
                    say(timing.line(timing.phases(tasks, saved, detected, start, built, restart),
                                    saved, ready))
                inputs = info["inputs"] if info else [str(root / "dodo.py")]
                # An input the build read for the first time (all of them, the
                # first time round): what it read is what its processes hashed;
                # one it did not hash (another binary's) is taken as it is now.
                new = [p for p in inputs if p not in read]
                hashed = {p: ctx.digests.recorded(p) for p in new}
                read.update(_content(ctx.digests, [p for p in new if hashed[p] is None]))
                read.update({p: d for p, d in hashed.items() if d is not None})
                changed = self._wait(root, inputs, read, ctx.digests, programs, stop)
                detected = time.time()
                saved = max((os.stat(root / p).st_mtime for p in changed
                             if os.path.exists(root / p)), default=detected)
        except KeyboardInterrupt:
            say("stopped")
            return 0
        finally:
            for program in programs.values():
                program.stop()
            workers.shutdown(wait_for_images=False)

    @staticmethod
    def _build(root: Path, arguments: list[str], report_file: Path, changed):
        """One build; prints one line (what changed, what ran, how long,
        ok or failed) and the project's own diagnostics in full. Whether it
        succeeded, the watch information it wrote, doit's report of its tasks."""
        start = time.monotonic()
        report_file.unlink(missing_ok=True)
        sys.modules.pop("dodo", None)  # read the declarations again
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors):
            returncode = DoitMain(DodoTaskLoader()).run(arguments)
        release_build_lock()
        os.chdir(root)
        if _interrupted.is_set():
            raise KeyboardInterrupt
        elapsed = time.monotonic() - start
        try:
            report = json.loads(report_file.read_text())["tasks"]
        except (OSError, ValueError, KeyError):
            report = []
        ran = [t["name"] for t in report if t["result"] in ("success", "fail")
               and t["name"].partition(":")[0] not in ("lib", "reload", RUN_EXE_TASK)]
        failures = [t["error"].strip() for t in report if t["result"] == "fail"]
        notes = [line for t in report for line in t.get("err", "").splitlines()
                 if PROJECT_DIAGNOSTIC.match(line)]
        what = (", ".join(sorted(changed)) + " changed: ") if changed else ""
        say(f"{what}{_summary(ran)} ({elapsed:.2f} s) "
            f"{'ok' if returncode == 0 else 'failed'}")
        for line in dict.fromkeys(notes):
            print(f"  {line}")
        for failure in failures:
            print("  " + failure.replace("\n", "\n  "))
        if returncode != 0 and not failures:
            said = errors.getvalue().strip()
            print("  " + (_dodo_error(said, root) or said[-4000:]).replace("\n", "\n  "))
        sys.stdout.flush()
        try:
            info = json.loads(layout.state(root / layout.BUILD, layout.WATCH).read_text())
        except (OSError, ValueError):
            info = None
        return returncode == 0, info, report

    @staticmethod
    def _wait(root: Path, inputs: list[str], read: dict, digests: DigestCache,
              programs: dict, stop) -> set[str]:
        """Block until the content of an input differs from what the last
        build read; the names (relative to the root) of what changed."""
        import watchfiles  # here: only the watch needs it

        watched = set(inputs)
        # A directory renamed away and back (or checked out) is one event
        # for the directory, none for the files in it: each directory
        # above a watched file stands for the files below it.
        below: dict[str, set[str]] = {}
        for path in watched:
            directory = os.path.dirname(path)
            while directory.startswith(f"{root}{os.sep}"):
                below.setdefault(directory, set()).add(path)
                directory = os.path.dirname(directory)
        known = _content(digests, watched)
        # A file that was missing when the build read it (None) and is
        # back already counts too (a directory renamed away and back).
        changed = {p for p in watched if p in read and known[p] != read[p]}
        if changed:
            return {os.path.relpath(p, root) for p in changed}
        outside = sorted(p for p in watched if not Path(p).is_relative_to(root))
        touched: set[str] = set()
        started = False
        for batch in watchfiles.watch(root, *outside, stop_event=stop,
                                      watch_filter=lambda change, path: path in watched
                                      or path in below,
                                      step=50, rust_timeout=500, yield_on_timeout=True):
            for program in programs.values():
                program.check()
            for _, path in batch:
                touched |= below.get(path, {path})
            # An editor that deletes, then creates: wait for the file to
            # come back (or for half a second of quiet) before building.
            if batch and not all(os.path.exists(p) for p in touched):
                continue
            if not started:
                # The watcher runs now (its first answer comes within half a
                # second): a save made before it started is seen here.
                touched |= watched
                started = True
            now = _content(digests, touched)
            changed = {p for p in touched if now[p] != known[p]}
            known.update(now)
            touched.clear()
            if changed:
                break
        else:
            raise KeyboardInterrupt
        return {os.path.relpath(p, root) for p in changed}
