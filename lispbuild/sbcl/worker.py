"""Warm workers: long-lived SBCL processes (worker.lisp) that hold a load
state and fork a child for each job, so that a compile or a dump pays
neither SBCL's start nor the loading of what it needs.

A worker's state is the first N steps of some job's state (steps.py); it
says which, by their digest, in build/.lispbuild/workers/ID.json, where
every process of the build (doit runs tasks in several) finds it. For a
job, the worker holding the longest prefix of the job's state is used:

- it holds the whole state: it forks the job's child;
- it is the *runner* of the library being compiled: it loads that
  library's next files itself, then forks the child (a library's files
  compile in order, each after the ones before it);
- otherwise it forks a new runner for the library, which loads the rest.

A library of the project (not one of Debian's) also gets a *zygote*: a
worker that holds the library's dependencies and nothing more, from which
a new runner starts at once when an edit makes the old runner's files
stale. The zygote saves itself as an image (images/DIGEST.core) for the
next build, whose zygote then starts from it instead of loading everything.

Workers exit with the build: the process that owns it (doit's main
process) stops them all when it exits, and a worker whose owner is gone
(killed) stops itself and its whole process group within a second.
Where a worker cannot serve (a library started a thread, so it cannot
fork; the worker died), the job runs in a fresh SBCL and says so.
"""
import json
import math
import os
import signal
import subprocess
import time

from .. import layout
from ..action import Context
from ..graph import ASDF_STEP
from ..jobs import LispJob
from ..rebuild import ensure, keep_output
from ..scratch import process_alive
from ..toolchain import find_sbcl
from .driver import (job_form, job_time_limit, lisp_literal, lisp_plist, lisp_steps,
                     over_time, sbcl_environment, support_fasls, support_settings)
from .outcome import check_result
from .processes import FileLock, become_subreaper, dev_runtime_action, read_reply
from .registry import Image, Worker, deepest, deepest_image, registered
from .runners import RunnerUnavailable
from ..settings import settings

# How long the owner waits, when it exits, for images being saved.
IMAGE_WAIT_SECONDS = 60
# A job's child in which lispbuild's own Lisp failed exits with this code
# (worker.lisp's +child-failed+), not with a compile's 1.
CHILD_FAILED = 3

# Measured here: a worker loads a FASL in about 3 ms, an ASDF definition
# in about 15 ms and a contrib in about 20 ms; it starts from an image in
# about 0.2 s.
STEP_SECONDS = {"load": 0.003, "asdf": 0.015, "require": 0.02, "loaded": 0.001,
                "foreign": 0.0}
IMAGE_START_SECONDS = 0.2


def worth_an_image(steps: list) -> bool:
    """Whether starting from an image of a state beats loading these steps."""
    return sum(STEP_SECONDS[step[0]] for step in steps) > IMAGE_START_SECONDS


class WorkerUnavailable(RunnerUnavailable):
    """This job cannot run in a worker; it runs in a fresh SBCL."""


class StateMoved(Exception):
    """The worker to start from no longer holds the state it announced."""


PLACEMENT_ATTEMPTS = 5


class WarmWorkers:
    def __init__(self, ctx: Context):
        if os.getpid() == ctx.owner:
            become_subreaper()
        self.ctx = ctx
        self.dir = layout.state(ctx.build, layout.WORKERS)
        self.images = layout.state(ctx.build, layout.IMAGES)
        self.requests = self.dir / "requests" / str(ctx.owner)
        # A watch owns its builds, and keeps their workers from one to the next.
        self.long_lived = settings().watch
        self._started: list[subprocess.Popen] = []

    # --- running a job ---------------------------------------------------

    def run(self, job: LispJob) -> str:
        """The job's notes; WorkerUnavailable if no worker can run it."""
        steps = job.state.steps()
        prefixes = self.ctx.states.prefixes(job.state)
        for attempt in range(PLACEMENT_ATTEMPTS):
            # A runner moves on when another process's job reaches it
            # first: its registry said where it was, not where it is.
            # Place the job again, once it has said so.
            time.sleep(0.02 * attempt)
            try:
                with self._lock():
                    worker, advance = self._place(job, steps, prefixes)
            except StateMoved:
                continue
            status, diagnostics, printed = self._send_job(worker, job, steps, prefixes, advance)
            if status != "mismatch":
                return check_result(job, status, diagnostics, printed, self.ctx.build)
        raise WorkerUnavailable("no worker kept the state it announced")

    def _place(self, job: LispJob, steps: list, prefixes: list[str]) -> tuple[Worker, int]:
        """The worker to run `job`, and how many steps it loads first."""
        full = len(steps)
        best = deepest(self.dir, self.ctx.owner, prefixes)
        if best and best.n == full:
            return best, 0
        if job.command != "compile":
            # A dump: the child loads what the best worker lacks.
            return best or self._start(None, steps, prefixes, full, "zygote", None), 0
        base = job.base.length
        if best and best.mode == "runner" and best.library == job.library and best.n >= base:
            return best, full - best.n
        source = best
        if job.hints.get("project") and base > 0 and (source is None or source.n < base):
            # The library's zygote, saved as an image where the job says it
            # is worth one for the builds to come.
            source = self._start(source, steps, prefixes, base, "zygote", job.library,
                                 save_image=job.hints.get("save_image", False))
        return self._start(source, steps, prefixes, full, "runner", job.library), 0

    # --- the registry ------------------------------------------------------

    def _lock(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        return FileLock(self.dir / ".lock")

    # --- starting workers -------------------------------------------------

    def _start(self, source: Worker | None, steps: list, prefixes: list[str], n: int,
               mode: str, library: str | None, save_image: bool = False) -> Worker:
        """A new worker holding the first `n` steps: forked from `source`,
        or started from an image if that holds more. Every other worker is
        forked, in the end, from one that holds nothing (started in a fresh
        SBCL once a build) or from the one that holds only ASDF, which most
        states start with."""
        image = deepest_image(self.images, prefixes[:n + 1])
        if source is None and image is None and n > 0:
            source = self._start(None, steps, prefixes, 0, "zygote", None)
        if source is not None and source.n == 0 and n > 1 and steps[0] == ASDF_STEP:
            source = self._start(source, steps, prefixes, 1, "zygote", None)
        # Named by the build's owner: builds of one project at the same
        # time share the registry, and each removes only its own.
        worker_id = f"{self.ctx.owner}-{os.urandom(6).hex()}"
        fifo = self.dir / f"{worker_id}.fifo"
        os.mkfifo(fifo)
        from_n = max(source.n if source else 0, image.n if image else 0)
        config = {"id": worker_id, "fifo": str(fifo), "registry": str(self.dir),
                  "owner": self.ctx.owner, "library": library or "", "mode": mode,
                  "state": [n, prefixes[n]], "long_lived": self.long_lived}
        config_text = (lisp_plist({**config,
                                   **support_settings(self.ctx, support_fasls(self.ctx))})
                       + " :steps " + lisp_steps(steps[from_n:n]))
        if source is not None and source.n >= (image.n if image else 0):
            lines = self._exchange(source, f"(:spawn :config ({config_text}) "
                                           f":expect ({source.n} {lisp_literal(source.hash)}))")
        else:
            lines = self._launch(image, config_text, worker_id)
        if lines == ["mismatch"]:
            os.unlink(fifo)
            raise StateMoved()
        if not lines or lines[-1] != "ready":
            os.unlink(fifo)
            reason = lines[-1] if lines else "it ended without a word"
            if reason.startswith("spawned "):
                reason = f"pid {reason.split()[1]} ended before it was ready"
            # What it printed (a spawned worker prints where its source does).
            said = self.dir / f"{source.id if source else worker_id}.log"
            raise WorkerUnavailable(f"a worker could not start ({reason}; "
                                    f"{keep_output(self.ctx, said, reason)})")
        worker = Worker.from_json((self.dir / f"{worker_id}.json").read_text())
        if worker is None:
            os.unlink(fifo)
            raise WorkerUnavailable(f"worker {worker_id}'s registry file is not of this "
                                    f"lispbuild's version")
        # A watch keeps its zygotes alive instead of saving them.
        if (mode == "zygote" and library and save_image and not self.long_lived
                and worth_an_image(steps[image.n if image else 0:n])):
            self._save_image(worker, n)
        return worker

    def _launch(self, image: Image | None, config_text: str, worker_id: str) -> list[str]:
        """A worker in a new SBCL (its own session and process group)."""
        config = self.requests / f"{worker_id}.config"
        reply = self.requests / f"{worker_id}.reply"
        self.requests.mkdir(parents=True, exist_ok=True)
        os.mkfifo(reply)
        config.write_text(f"({config_text} :pgid 0 :reply {lisp_literal(reply)})\n",
                          encoding="utf-8")
        action = dev_runtime_action()
        ensure(action, self.ctx)
        runtime = str(self.ctx.root / action.outputs["runtime"])
        if image is None:
            command = [runtime, "--core", str(find_sbcl().core), "--script",
                       str(support_fasls(self.ctx).lispbuild),
                       "serve", str(config)]
        else:
            command = [runtime, "--core", str(image.path), "--noinform",
                       "--end-runtime-options", str(config)]
        log = open(self.dir / f"{worker_id}.log", "wb")
        try:
            fd = os.open(reply, os.O_RDONLY | os.O_NONBLOCK)
            process = subprocess.Popen(command, cwd=self.ctx.root, stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=log, env=sbcl_environment(self.ctx.root),
                                       start_new_session=True)
        finally:
            log.close()
        self._started.append(process)
        try:
            return read_reply(fd, lambda: process.poll() is None)
        finally:
            os.close(fd)
            reply.unlink(missing_ok=True)
            config.unlink(missing_ok=True)

    def _save_image(self, worker: Worker, n: int):
        """Ask a zygote to save its state for the builds to come (in the
        background; the owner waits for it when the build ends)."""
        self.images.mkdir(parents=True, exist_ok=True)
        core = self.images / f"{worker.hash}.core"
        (self.images / f"{worker.hash}.json").write_text(
            json.dumps({"n": n, "library": worker.library}))
        for old in self.images.glob("*.json"):
            if old.stem != worker.hash and json.loads(old.read_text()).get("library") == worker.library:
                old.with_suffix(".core").unlink(missing_ok=True)
                old.unlink(missing_ok=True)
        self._exchange(worker, f"(:image :path {lisp_literal(core)} "
                               f":expect ({n} {lisp_literal(worker.hash)}))")

    # --- talking to a worker ------------------------------------------------

    def _send_job(self, worker: Worker, job: LispJob, steps: list, prefixes: list[str],
                  advance: int):
        name = os.urandom(16).hex()
        diagnostics = self.requests / f"{name}.diagnostics"
        log = self.requests / f"{name}.log"
        state = worker.n + advance
        text = (f"(:job :job {job_form(job, steps[worker.n:], diagnostics)} :advance {advance} "
                f":expect ({worker.n} {lisp_literal(worker.hash)}) "
                f":state ({state} {lisp_literal(prefixes[state])}) :log {lisp_literal(log)})")
        limit = job_time_limit(job)
        try:
            try:
                lines = self._exchange(worker, text, time.monotonic() + limit)
            except TimeoutError:
                raise over_time(job, limit) from None
            if not lines or lines[-1].startswith("started"):
                raise WorkerUnavailable(f"the worker for {worker.library or 'this image'} "
                                        f"ended during the job")
            if lines[-1].startswith(("cannot-fork", "error")):
                raise WorkerUnavailable(f"the worker for {worker.library or 'this image'} "
                                        f"cannot serve: {lines[-1]}")
            if lines[-1] == f"exit {CHILD_FAILED}":
                said = log.read_text(encoding="utf-8", errors="replace").strip() \
                    if log.exists() else ""
                raise WorkerUnavailable(f"the worker's child failed ("
                                        f"{said.splitlines()[-1] if said else 'it said nothing'})")
            reported = diagnostics.read_text(encoding="utf-8") if diagnostics.exists() else ""
            printed = self.requests / f"{name}.printed"
            if log.exists():
                os.replace(log, printed)  # check_result keeps it, or removes it
            return lines[-1], reported, printed
        finally:
            diagnostics.unlink(missing_ok=True)
            log.unlink(missing_ok=True)

    def _exchange(self, worker: Worker, request: str, deadline: float = math.inf) -> list[str]:
        """Send a request to a worker's FIFO; the lines it answers (by the
        deadline, a time.monotonic(), or TimeoutError)."""
        self.requests.mkdir(parents=True, exist_ok=True)
        name = os.urandom(16).hex()
        request_file = self.requests / f"{name}.lisp"
        reply = self.requests / f"{name}.reply"
        os.mkfifo(reply)
        fd = os.open(reply, os.O_RDONLY | os.O_NONBLOCK)
        try:
            request_file.write_text(request[:-1] + f" :reply {lisp_literal(reply)})\n",
                                    encoding="utf-8")
            try:
                out = os.open(worker.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                raise WorkerUnavailable("a worker is gone") from None
            try:
                os.write(out, f"{request_file}\n".encode())
            finally:
                os.close(out)
            return read_reply(fd, lambda: process_alive(worker.pid), deadline)
        finally:
            os.close(fd)  # a job whose client is gone (Ctrl-C) is stopped
            reply.unlink(missing_ok=True)
            request_file.unlink(missing_ok=True)

    # --- the end of the build ------------------------------------------------

    def shutdown(self, wait_for_images: bool = True):
        """Stop every worker of this build (the owner, when it exits);
        images being saved are waited for, unless the build was interrupted."""
        if os.getpid() != self.ctx.owner or not self.dir.exists():
            return
        deadline = time.monotonic() + (IMAGE_WAIT_SECONDS if wait_for_images else 0)
        try:
            while time.monotonic() < deadline and any(w.images for w in registered(self.dir, self.ctx.owner)):
                time.sleep(0.05)
        except KeyboardInterrupt:
            pass
        workers = registered(self.dir, self.ctx.owner)
        for pgid in {w.pgid for w in workers}:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            while True:  # reap those that were re-parented here
                try:
                    os.waitpid(-pgid, 0)
                except ChildProcessError:
                    break
        for process in self._started:
            process.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(process_alive(w.pid) for w in workers):
            time.sleep(0.02)
        for path in self.dir.glob(f"{self.ctx.owner}-*"):
            path.unlink(missing_ok=True)
        for path in self.requests.glob("*") if self.requests.exists() else ():
            path.unlink(missing_ok=True)
        try:  # empty now; left, the next build would call it a stopped build's
            self.requests.rmdir()
        except OSError:
            pass


