"""`doit coverage`'s tasks (LISPBUILD_COVERAGE, which the command sets):
coverage-run:NAME runs the instrumented test suite NAME@coverage, which
saves what it covered; coverage-report merges every run and writes the
reports under build/coverage/ (coverage.py). Never up to date."""
import os
import subprocess
from pathlib import Path

from doit.exceptions import TaskFailed

from .. import coverage, layout
from ..jobs import LispJob
from ..action import Context
from ..settings import COVERAGE_FILE_VARIABLE
from ..sbcl.driver import time_limit
from .lisp import print_notes

DIRECTORY = f"{layout.BUILD}/coverage"


def run_file(suite: str) -> str:
    return f"{DIRECTORY}/runs/{suite}.sexp"


def run_suite(suite: str, exe: Path, root: Path):
    """Run it; its verdict is printed, and kept for the report, which fails
    when a suite did (its coverage counts all the same)."""
    data = root / run_file(suite)
    data.parent.mkdir(parents=True, exist_ok=True)
    data.unlink(missing_ok=True)
    verdict = data.with_suffix(".verdict")
    try:
        code = subprocess.run([str(exe)], cwd=root, timeout=time_limit(),
                              env={**os.environ, COVERAGE_FILE_VARIABLE: str(data)}).returncode
    except subprocess.TimeoutExpired:
        code = "stopped after the time limit"
    verdict.write_text(f"{code}\n")
    if not data.exists():
        return TaskFailed(f"{layout.executable(exe.name)} wrote no coverage (exit {code})")
    return None


def report(suites: list[str], state, root: Path, ctx: Context):
    directory = root / DIRECTORY
    for old in ("index.html", "cover-index.html", "lcov.info"):
        (directory / old).unlink(missing_ok=True)
    for page in directory.glob("*.html"):
        page.unlink()
    print_notes(ctx.lisp.run(LispJob(
        task="coverage-report", command="coverage", state=state,
        product=directory / coverage.INDEX,
        arguments={"runs": [str(root / run_file(s)) for s in suites],
                   "directory": f"{directory}/"})))
    print(coverage.write_outputs(directory, root), end="")
    print(f"{DIRECTORY}/index.html, {DIRECTORY}/lcov.info")
    failed = [f"{s} ({(root / run_file(s)).with_suffix('.verdict').read_text().strip()})"
              for s in suites
              if (root / run_file(s)).with_suffix(".verdict").read_text().strip() != "0"]
    if failed:
        return TaskFailed(f"test suites that did not pass: {', '.join(failed)}")
    return None


def coverage_tasks(graph, root: Path, ctx: Context):
    """The tasks, for the instrumented suites of the graph."""
    suites = [name.rpartition("@")[0] for name in graph.coverage]
    for suite, binary in zip(suites, graph.coverage):
        yield {"basename": "coverage-run", "name": suite, "verbosity": 2,
               "actions": [(run_suite, [suite, root / layout.executable(binary), root])],
               "task_dep": [f"exe:{binary}"], "doc": f"run {binary}, saving its coverage"}
    yield {"basename": "coverage-report", "verbosity": 2,
           "actions": [(report, [suites, graph.coverage_state, root, ctx])],
           "task_dep": [f"coverage-run:{s}" for s in suites],
           "doc": "merge the suites' coverage; build/coverage/index.html and lcov.info"}
