"""Which runner runs a Lisp job (runners.py), with fake runners: the
ordered list, the fall back when one cannot take a job, and the record of
which ran it."""
import os
from pathlib import Path

import pytest

from lispbuild.jobs import LispJob
from lispbuild.action import Context
from lispbuild.sbcl.runners import SAME_BYTES, RunnerUnavailable, Runners
from lispbuild.steps import EMPTY


class Fake:
    def __init__(self, name, log, unavailable=None):
        self.name, self.log, self.unavailable = name, log, unavailable
        self.stopped = False

    def run(self, job):
        self.log.append((self.name, job.task))
        if self.unavailable:
            raise RunnerUnavailable(self.unavailable)
        return f"notes of {self.name}"

    def shutdown(self):
        self.stopped = True


def runners(tmp_path, log, unavailable=(), fresh_only=False):
    made = {}

    def factory(name):
        def make(ctx):
            made[name] = Fake(name, log, "a library started a thread" if name in unavailable
                              else None)
            return made[name]
        return make
    ctx = Context(root=tmp_path, store_root=tmp_path / "cache", owner=os.getpid())
    return Runners(ctx, fresh_only, {n: factory(n) for n in ("fresh", "workers", "canonical")}), made


def job(command="compile", **hints):
    return LispJob(task=f"{command}:x", command=command, state=EMPTY, arguments={},
                   product=Path("x"), hints=hints)


def test_jobs_go_to_workers_then_fresh_and_release_dumps_to_the_canonical_process(tmp_path):
    chosen, _ = runners(tmp_path, [])
    assert chosen.candidates(job("compile")) == ["workers", "fresh"]
    assert chosen.candidates(job("dump")) == ["workers", "fresh"]
    assert chosen.candidates(job("dump", release_directory="/srv/release")) == ["canonical"]
    assert chosen.candidates(job("asdf-graph")) == ["fresh"]
    fresh, _ = runners(tmp_path, [], fresh_only=True)
    assert fresh.candidates(job("compile")) == ["fresh"]
    assert fresh.candidates(job("dump", release_directory="/srv/release")) == ["canonical"]


def test_the_first_runner_that_takes_a_job_runs_it_and_is_named(tmp_path):
    log = []
    chosen, made = runners(tmp_path, log)
    assert chosen.run(job("compile")) == "notes of workers"
    assert chosen.runner_of("compile:x") == "workers"
    assert chosen.runner_of("compile:x") is None  # said once, to the record
    assert list(made) == ["workers"]  # the others are never started


def test_a_runner_that_cannot_take_a_job_hands_it_to_the_next(tmp_path, capsys):
    log = []
    chosen, made = runners(tmp_path, log, unavailable={"workers"})
    assert chosen.run(job("compile")) == "notes of fresh"
    assert log == [("workers", "compile:x"), ("fresh", "compile:x")]
    assert chosen.runner_of("compile:x") == "fresh"
    assert "compile:x: a library started a thread; running it in a fresh SBCL" \
        in capsys.readouterr().err
    chosen.shutdown()
    assert made["workers"].stopped and made["fresh"].stopped


def test_a_job_that_no_runner_takes_fails(tmp_path):
    chosen, _ = runners(tmp_path, [], unavailable={"canonical"})
    with pytest.raises(RunnerUnavailable):
        chosen.run(job("dump", release_directory="/srv/release"))


def test_every_runner_states_its_bytes_for_every_command_it_runs():
    assert set(SAME_BYTES) == {"fresh", "workers", "canonical"}
    assert all(SAME_BYTES["fresh"].values())
    assert set(SAME_BYTES["workers"]) <= set(SAME_BYTES["fresh"])


def test_every_runner_made_shuts_down(tmp_path):
    """The real runners, made (no SBCL starts), all answer shutdown."""
    ctx = Context(root=tmp_path, store_root=tmp_path / "cache", owner=os.getppid())
    real = Runners(ctx, fresh_only=False)
    for name in ("fresh", "workers", "canonical"):
        real.runner(name)
    real.shutdown()
    assert set(real.made) == {"fresh", "workers", "canonical"}


def test_what_a_worker_that_failed_printed_is_kept_in_the_builds_log(tmp_path):
    from lispbuild.rebuild import FAULT_LOG, keep_output
    ctx = Context(root=tmp_path, store_root=tmp_path / "cache")
    output = tmp_path / "worker.log"
    output.write_bytes(b"x" * 5000 + b"\nHeap exhausted, game over.\n")
    said = keep_output(ctx, output, "a worker could not start (pid 7 ended before it was ready)")
    assert said == f"its output is in {FAULT_LOG}"
    log = (tmp_path / FAULT_LOG).read_text()
    assert "(pid 7 ended before it was ready); its output ended:" in log
    assert log.rstrip().endswith("Heap exhausted, game over.") and len(log) < 4200
    assert keep_output(ctx, tmp_path / "gone.log", "x") == "its output is gone"
