"""Which warm worker runs a job, decided over fake registry entries
(worker.py's _place): no SBCL starts; a worker that would be started is
recorded instead."""
import json
import os
from pathlib import Path

import pytest

from lispbuild.jobs import LispJob
from lispbuild.action import Context
from lispbuild.steps import EMPTY, StateDigests
from lispbuild.sbcl.registry import VERSION, Worker
from lispbuild.sbcl.worker import WarmWorkers

# What a library's files load: ASDF, a dependency's FASLs (its base), then
# the library's own earlier files.
BASE = EMPTY.extend([("require", "ASDF"), ("load", "dep/a.fasl"), ("load", "dep/b.fasl")])
FULL = BASE.extend([("load", "app/one.fasl"), ("load", "app/two.fasl")])


class RecordingWorkers(WarmWorkers):
    """Warm workers whose starts are recorded, each answering as the
    worker it would be."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.started = []

    def _start(self, source, steps, prefixes, n, mode, library, save_image=False):
        self.started.append((source and source.id, n, mode, library, save_image))
        return worker(f"new-{len(self.started)}", prefixes[n], n, mode, library)


def worker(id, hash, n, mode="runner", library="app", owner=None) -> Worker:
    return Worker(version=VERSION, id=id, pid=os.getpid(), pgid=os.getpgid(0), owner=owner or os.getppid(),
                  fifo="", library=library, mode=mode, n=n, hash=hash, images=[])


@pytest.fixture
def workers(tmp_path) -> RecordingWorkers:
    # The owner is this test's parent: alive, and not this process (which
    # would become a subreaper).
    ctx = Context(root=tmp_path, store_root=tmp_path / "cache", owner=os.getppid())
    ctx.__dict__["states"] = StateDigests("root", lambda path: f"digest of {path}")
    return RecordingWorkers(ctx)


def register(workers: RecordingWorkers, *entries: Worker):
    workers.dir.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        (workers.dir / f"{entry.id}.json").write_text(json.dumps(entry.__dict__))


def compile_job(project=True, save_image=False) -> LispJob:
    return LispJob(task="fasl:app/three.lisp", command="compile", state=FULL, arguments={},
                   product=Path("three.fasl"), library="app", base=BASE,
                   hints={"project": project, "save_image": save_image})


def place(workers, job):
    prefixes = workers.ctx.states.prefixes(job.state)
    chosen, advance = workers._place(job, job.state.steps(), prefixes)
    return chosen.id, advance


def prefix(workers, n: int) -> str:
    return workers.ctx.states.prefixes(FULL)[n]


def test_a_first_compile_starts_the_librarys_zygote_then_a_runner_from_it(workers):
    assert place(workers, compile_job()) == ("new-2", 0)
    assert workers.started == [(None, 3, "zygote", "app", False),
                               ("new-1", 5, "runner", "app", False)]


def test_a_zygote_is_saved_as_an_image_only_where_the_job_says_it_is_worth_one(workers):
    place(workers, compile_job(save_image=True))
    assert workers.started[0] == (None, 3, "zygote", "app", True)


def test_a_worker_holding_the_whole_state_runs_the_job_as_it_is(workers):
    register(workers, worker("whole", prefix(workers, 5), 5))
    assert place(workers, compile_job()) == ("whole", 0)
    assert workers.started == []


def test_a_runner_of_the_library_loads_only_what_it_lacks(workers):
    register(workers, worker("runner", prefix(workers, 4), 4))
    assert place(workers, compile_job()) == ("runner", 1)
    assert workers.started == []


def test_a_runner_of_another_library_is_a_source_not_a_place(workers):
    register(workers, worker("other", prefix(workers, 4), 4, library="elsewhere"))
    assert place(workers, compile_job()) == ("new-1", 0)
    assert workers.started == [("other", 5, "runner", "app", False)]


def test_a_zygote_below_the_base_starts_the_librarys_own_zygote(workers):
    register(workers, worker("asdf", prefix(workers, 1), 1, mode="zygote", library=None))
    place(workers, compile_job())
    assert workers.started == [("asdf", 3, "zygote", "app", False),
                               ("new-1", 5, "runner", "app", False)]


def test_a_file_outside_the_project_gets_no_zygote_of_its_library(workers):
    register(workers, worker("asdf", prefix(workers, 1), 1, mode="zygote", library=None))
    place(workers, compile_job(project=False))
    assert workers.started == [("asdf", 5, "runner", "app", False)]


def test_a_worker_whose_state_differs_is_not_used(workers):
    register(workers, worker("stale", "another state's digest", 4))
    place(workers, compile_job())
    assert workers.started[0][0] is None


def test_a_worker_that_is_gone_is_not_used_nor_a_file_rewritten_read_stale(workers):
    gone = worker("gone", prefix(workers, 4), 4)
    gone.pid = 2 ** 22 + 54321  # above pid_max's default: no such process
    register(workers, gone, worker("shallow", prefix(workers, 3), 3))
    assert place(workers, compile_job()) == ("shallow", 2)
    # The same file again, now holding the whole state: read anew.
    register(workers, worker("shallow", prefix(workers, 5), 5))
    assert place(workers, compile_job()) == ("shallow", 0)


def test_workers_of_another_build_are_not_used_and_a_dead_builds_are_forgotten(workers):
    dead_owner = 2 ** 22 + 12345  # above pid_max's default: no such process
    register(workers, worker("theirs", prefix(workers, 5), 5, owner=os.getpid()),
              worker("orphan", prefix(workers, 5), 5, owner=dead_owner))
    place(workers, compile_job())
    assert workers.started[0][0] is None
    assert (workers.dir / "theirs.json").exists()
    assert not (workers.dir / "orphan.json").exists()


def test_a_dump_runs_in_the_deepest_worker_or_a_new_zygote(workers):
    dump = LispJob(task="core:app", command="dump", state=FULL, arguments={},
                   product=Path("app.core"))
    assert place(workers, dump) == ("new-1", 0)
    assert workers.started == [(None, 5, "zygote", None, False)]
    workers.started.clear()
    register(workers, worker("deep", prefix(workers, 4), 4))
    assert place(workers, dump) == ("deep", 0)
    assert workers.started == []


def test_a_registry_file_of_another_version_is_no_worker(workers):
    older = worker("older", prefix(workers, 5), 5)
    older.version = VERSION - 1
    register(workers, older)
    place(workers, compile_job())
    assert workers.started[0][0] is None  # not a source to fork from
