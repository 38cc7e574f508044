"""Warm workers: the FASLs they write are those of a fresh SBCL, no SBCL
outlives a build however it ends, and a job a worker cannot serve runs in
a fresh SBCL."""
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import runpy

from lispbuild.asdf import asdf_libraries
from lispbuild.sbcl.driver import FreshSbcl
from lispbuild.graph import plan
from lispbuild.action import Context
from lispbuild.buildlock import release_build_lock
from lispbuild.rules.lisp import compile_fasl, fasl_action

from conftest import built, copy_samples, doit, terminal_session, write_project
from dodo_text import dodo_py


def lisp_processes(project: Path) -> list[int]:
    """The SBCL processes (workers, their children, fresh ones) working in
    `project`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue  # gone, or a zombie
        if comm in ("sbcl", "sbcl-dev") and Path(cwd).is_relative_to(project):
            found.append(int(entry))
    return found


def none_left_within(project: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while lisp_processes(project):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def fasls(project: Path) -> dict[str, bytes]:
    """Every FASL, what each file refers to undefined, and each library's
    report of what it leaves undefined."""
    root = project / "build"
    return {str(p.relative_to(root)): p.read_bytes()
            for p in [*(root / "fasl").rglob("*"), *(root / "undefined").rglob("*")]
            if p.suffix in (".fasl", ".undefined", ".txt")
            and "@aarch64-linux" not in str(p)}  # another machine's: always a fresh SBCL


def test_workers_and_fresh_sbcl_write_the_same_fasls(samples, tmp_path):
    """Every FASL of every sample and every library's report, built by warm
    workers (the samples fixture) and by a fresh SBCL per job, is the same
    bytes, as runners.SAME_BYTES says of compile and check-undefined."""
    warm = fasls(samples)
    assert len(warm) > 300  # hunchentoot and all it needs, two files each
    fresh = copy_samples(tmp_path / "fresh")
    env = {**os.environ, "LISPBUILD_FRESH": "1", "LISPBUILD_STORE": str(tmp_path / "store")}
    built(fresh, "-n", "2", *(f"exe:{exe.name}" for exe in (samples / "build/bin").iterdir()),
          env=env)
    assert not (fresh / "build/.lispbuild/workers").exists()
    assert fasls(fresh) == warm


def edit(path: Path, old: str, new: str):
    path.write_text(path.read_text().replace(old, new))


def test_a_worker_started_from_an_image_writes_the_fasl_of_a_fresh_sbcl(samples, tmp_path):
    """The first build that compiles the project's top library (one no
    other library depends on) saves an image of its dependencies, so that
    the first edit after it is as fast as the ones after; the edit's worker
    starts from it, and what it compiles is what a fresh SBCL compiles."""
    project = copy_samples(tmp_path / "p")
    env = {**os.environ, "LISPBUILD_STORE": str(samples / "cache")}
    source = project / "samples/webserver/webserver.lisp"
    edit(source, "hello from a static hunchentoot", "hello, first edit")
    # The first build here: the dependencies restored, webserver.lisp compiled.
    assert "fasl:webserver/webserver.lisp" in built(project, "exe:webserver", env=env).executed
    assert list((project / "build/.lispbuild/images").glob("*.core"))
    edit(source, "hello, first edit", "hello, second edit")
    trace = tmp_path / "exec.log"
    proc = subprocess.run(["strace", "-f", "-qq", "-s", "4096", "-e", "trace=execve",
                           "-o", str(trace), sys.executable, "-m", "doit", "exe:webserver"],
                          cwd=project, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "build/.lispbuild/images/" in trace.read_text()

    with contextlib.chdir(project):
        dodo = runpy.run_path(str(project / "dodo.py"))["project"]
        ctx = Context(root=project, store_root=samples / "cache")
        ctx.lisp = FreshSbcl(ctx)
        action = fasl_action(plan(dodo, asdf_libraries(dodo, ctx))
                             .fasls["webserver/webserver.lisp"])
        fresh = tmp_path / "webserver.fasl"
        reads = tmp_path / "webserver.reads"
        consulted = tmp_path / "webserver.trace"
        try:
            compile_fasl(action, ctx, {"fasl": fresh, "reads": reads, "trace": consulted,
                                       "undefined": tmp_path / "webserver.undefined"})
        finally:
            release_build_lock()  # taken to compile lispbuild's Lisp, if it had to
    assert fresh.read_bytes() == (project / "build/fasl/webserver/webserver.fasl").read_bytes()
    # And it read, beyond what it declared, what the worker's compile read.
    assert reads.read_text() == (project / "build/fasl/webserver/webserver.reads").read_text()
    # And its trace (reuse.py) is the worker's.
    assert consulted.read_text() == \
        (project / "build/fasl/webserver/webserver.trace").read_text()


def test_no_sbcl_remains_after_success_or_failure(tmp_path, store_env):
    project = copy_samples(tmp_path / "p")
    built(project, "-n", "2", "exe:hello", env=store_env)
    assert none_left_within(project, 5)
    main = project / "samples/hello/app/main.lisp"
    main.write_text(main.read_text() + "\n(this is not closed\n")
    failed = doit(project, "-n", "2", "exe:hello", env=store_env)
    assert failed.returncode != 0 and "main.lisp" in failed.output
    assert none_left_within(project, 5)


FOREVER_DODO = dodo_py("""\
project.library("slow", ["package.lisp", "forever.lisp"])
project.binary("slow", libraries=["slow"], entry="slow:main")
""")
FOREVER = {"package.lisp": "(defpackage #:slow (:use #:cl) (:export #:main))\n",
           "forever.lisp": "(in-package #:slow)\n"
                           "(eval-when (:compile-toplevel) (loop (sleep 0.1)))\n"
                           "(defun main () 0)\n"}


def start_forever(tmp_path, env) -> tuple[Path, subprocess.Popen]:
    """A build whose second file's compile never ends, once it is under way."""
    project = write_project(tmp_path / "forever", FOREVER_DODO, FOREVER)
    with open(tmp_path / "output.txt", "w") as output:
        build = subprocess.Popen([sys.executable, "-m", "doit", "-n", "2"], cwd=project,
                                 env=env, preexec_fn=terminal_session, stdout=output,
                                 stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not (project / "build/fasl/slow/package.fasl").exists():
        assert time.monotonic() < deadline and build.poll() is None
        time.sleep(0.1)
    time.sleep(2)  # forever.lisp is compiling now
    assert build.poll() is None
    return project, build


def test_a_worker_child_whose_lisp_fails_ends_and_its_job_runs_in_fresh_sbcl(tmp_path,
                                                                           store_env):
    """A condition that escapes the job (not an error a compile reports:
    here a STORAGE-CONDITION signalled at compile time) ends the worker's
    child, which says so; the job runs again in a fresh SBCL, whose failure
    names the task, and no process is left behind (such a child used to go
    back to its worker's loop and spin)."""
    sources = {**FOREVER, "forever.lisp": "(in-package #:slow)\n"
               "(eval-when (:compile-toplevel) (error 'storage-condition))\n"
               "(defun main () 0)\n"}
    project = write_project(tmp_path / "escapes", FOREVER_DODO, sources)
    failed = doit(project, "-n", "2", env=store_env)
    assert failed.returncode != 0
    assert re.search(r"fasl:slow/forever\.lisp: the worker's child failed \(lispbuild: a "
                     r"worker's child \(pid \d+\) failed: .*\); running it in a fresh SBCL",
                     failed.output), failed.output
    assert "fasl:slow/forever.lisp: SBCL exited with code" in failed.output, failed.output
    assert none_left_within(project, 5), lisp_processes(project)


def test_ctrl_c_stops_a_compile_that_never_ends(tmp_path, store_env):
    project, build = start_forever(tmp_path, store_env)
    assert lisp_processes(project)
    os.killpg(build.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    assert build.wait(timeout=60) != 0
    assert none_left_within(project, 5), lisp_processes(project)
    # What was built before is still there.
    assert (project / "build/fasl/slow/package.fasl").exists()


def test_workers_outlive_a_killed_build_by_seconds(tmp_path, store_env):
    project, build = start_forever(tmp_path, store_env)
    os.kill(build.pid, signal.SIGKILL)
    build.wait()
    try:
        # doit's own worker processes (forked for -n 2) end with it at once.
        assert group_ends_within(build.pid, 5)
        assert none_left_within(project, 60), lisp_processes(project)
    finally:
        if not group_ends_within(build.pid, 0):
            os.killpg(build.pid, signal.SIGKILL)


def group_ends_within(pgid: int, seconds: float) -> bool:
    """Whether every process of the group `pgid` ends within `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        members = []
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(stat[2]) == pgid and stat[0] != "Z":
                members.append(entry)
        if not members:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def test_a_compile_over_the_time_limit_fails_naming_the_file(tmp_path, store_env):
    project = write_project(tmp_path / "forever", FOREVER_DODO, FOREVER)
    started = time.monotonic()
    result = doit(project, "-n", "2", env={**store_env, "LISPBUILD_TIME_LIMIT": "4"})
    assert result.returncode != 0
    assert "fasl:slow/forever.lisp: stopped after 4 s compiling forever.lisp" in result.output, \
        result.output
    assert time.monotonic() - started < 90
    assert none_left_within(project, 5), lisp_processes(project)
    assert (project / "build/fasl/slow/package.fasl").exists()


THREAD_DODO = dodo_py("""\
project.library("ticker", ["package.lisp", "ticker.lisp", "main.lisp"])
project.binary("ticker", libraries=["ticker"], entry="ticker:main")
""")
THREAD = {"package.lisp": "(defpackage #:ticker (:use #:cl) (:export #:main))\n",
          "ticker.lisp": "(in-package #:ticker)\n"
                         "(defvar *ticker* (sb-thread:make-thread\n"
                         "                  (lambda () (loop (sleep 0.05))) :name \"ticker\"))\n"
                         "(push (lambda () (sb-thread:terminate-thread *ticker*)\n"
                         "        (sb-thread:join-thread *ticker* :default nil))\n"
                         "      sb-ext:*save-hooks*)\n",
          "main.lisp": "(in-package #:ticker)\n"
                       "(defun main (&rest args) (format t \"ticked ~D~%\" (length args)) 0)\n"}


def test_a_library_that_starts_a_thread_compiles_in_fresh_sbcl(tmp_path, store_env):
    """A worker that has loaded code which starts a thread cannot fork:
    what it would have served runs in a fresh SBCL, saying so. The
    executable's image is dumped whole, as a program started with the
    project's FASLs loaded at start-up would run the thread the dump's
    save hook stops."""
    project = write_project(tmp_path / "thread", THREAD_DODO, THREAD)
    built(project, "-n", "2", env=store_env)
    # A cold build compiles main.lisp in the process that loaded ticker.lisp
    # (rules/lisp.py); an edit compiles it alone, from the library's runner.
    main = project / "main.lisp"
    main.write_text(main.read_text().replace("ticked", "ticked:"))
    result = built(project, "-n", "2", env=store_env)
    fallbacks = [line for line in result.output.splitlines()
                 if "running it in a fresh SBCL" in line]
    assert any(line.startswith("fasl:ticker/main.lisp:") for line in fallbacks), result.output
    assert all("a thread is running" in line for line in fallbacks)
    assert 'FASLs left the thread "ticker" running' in result.output, result.output
    assert (project / "build/core/ticker.core").read_bytes()[:8] != b"lispbuil"
    run = subprocess.run([project / "build/bin/ticker", "a"], capture_output=True, text=True)
    assert run.stdout == "ticked: 1\n"
    assert none_left_within(project, 5)


LEFT_WAITING = """
import importlib, multiprocessing, sys
importlib.import_module("lispbuild.tasks")._die_with_this_process()
jobs = multiprocessing.Queue()
multiprocessing.Process(target=jobs.get).start()  # waits for a job that never comes
sys.exit(3)
"""


def test_a_doit_process_left_waiting_for_a_job_does_not_hold_the_exit():
    """What a Ctrl-C that comes while doit starts its processes leaves: one
    that never got the signal waits for a job; doit still exits."""
    result = subprocess.run([sys.executable, "-c", LEFT_WAITING], timeout=30)
    assert result.returncode == 3
