"""How a Lisp job runs: a strategy beside the action, as Bazel separates
spawn strategies from actions. The action and its key are the same
whichever runner runs it.

Three runners, each with `run(job)` (the notes SBCL wrote) and `shutdown()`:
  fresh      driver.FreshSbcl: a new SBCL per job, which performs every
             step itself; the reference the others are measured against
  workers    worker.WarmWorkers: a child forked from a process that holds
             the job's first steps
  canonical  canonical.CanonicalSbcl: a fresh SBCL in the canonical process
             of a release dump

`Runners.candidates` orders them for a job, as Bazel's ordered strategy
list: the first that can take it runs it; one that cannot (a library that
starts a thread, a worker that died) says why, and the next runs it.
`SAME_BYTES` states, per runner and command, whether its outputs are byte
for byte a fresh SBCL's (tests/e2e/test_workers.py checks each True)."""
import sys

from ..errors import BuildGone
from ..scratch import process_alive
from ..settings import settings
from ..targets import state_target

SAME_BYTES = {
    "fresh": {"compile": True, "check-undefined": True, "grovel": True, "wrapper": True,
              "dump": True, "asdf-graph": True},
    # A development dump saves the worker's heap as it is (devdump.lisp).
    "workers": {"compile": True, "check-undefined": True, "grovel": True, "wrapper": True,
                "dump": False},
    # Its own paths and seeds: a release's bytes, the same wherever it runs.
    "canonical": {"dump": False},
}


class RunnerUnavailable(Exception):
    """This runner cannot run the job; the next in the list does."""


def _fresh(ctx):
    from .driver import FreshSbcl
    return FreshSbcl(ctx)


def _workers(ctx):
    from .worker import WarmWorkers
    return WarmWorkers(ctx)


def _canonical(ctx):
    from .canonical import CanonicalSbcl
    return CanonicalSbcl(ctx)


FACTORIES = {"fresh": _fresh, "workers": _workers, "canonical": _canonical}


class Runners:
    """The runners of one build process, each made when a job first needs
    it; `run(job)` gives the job to the first candidate that takes it."""

    def __init__(self, ctx, fresh_only: bool | None = None, factories=None):
        self.ctx = ctx
        self.fresh_only = settings().fresh if fresh_only is None else fresh_only
        self.factories = factories or FACTORIES
        self.made: dict[str, object] = {}
        self.ran: dict[str, str] = {}   # task -> the runner that ran its last job
        if not self.fresh_only:
            # Made by the build's owner, before doit forks the processes
            # that run jobs: it becomes the subreaper of the workers they
            # start, and its shutdown stops them all.
            self.runner("workers")

    def candidates(self, job) -> list[str]:
        """The runners that may run `job`, in the order they are tried."""
        if job.command == "dump" and job.hints.get("release_directory"):
            return ["canonical"]
        # Workers are forked from this machine's SBCL; another machine's
        # runs fresh, under qemu (targets.py).
        if self.fresh_only or job.command not in SAME_BYTES["workers"] \
                or state_target(job.state):
            return ["fresh"]
        return ["workers", "fresh"]

    def runner(self, name: str):
        if name not in self.made:
            self.made[name] = self.factories[name](self.ctx)
        return self.made[name]

    def run(self, job) -> str:
        names = self.candidates(job)
        for i, name in enumerate(names):
            try:
                notes = self.runner(name).run(job)
            except RunnerUnavailable as why:
                if i + 1 == len(names):
                    raise
                if not process_alive(self.ctx.owner):
                    raise BuildGone("the build was stopped") from None
                print(f"{job.task}: {why}; running it in a {names[i + 1]} SBCL",
                      file=sys.stderr)
                continue
            self.ran[job.task] = name
            return notes

    def runner_of(self, task: str) -> str | None:
        """The runner that ran the task's last job in this process, if any."""
        return self.ran.pop(task, None)

    def shutdown(self):
        for runner in self.made.values():
            runner.shutdown()
