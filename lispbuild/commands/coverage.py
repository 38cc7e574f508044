"""`doit coverage`: the project's test suites built again with sb-cover's
instrumentation (the project's libraries only: dependencies stay plain),
each run, their coverage merged; build/coverage/index.html (sb-cover's
HTML report), build/coverage/lcov.info, and a table on the terminal
(rules/coverage.py, coverage.py)."""
import os
import subprocess
import sys

from doit.cmd_base import Command

from ..settings import COVERAGE_VARIABLE
from . import PROCESSES_OPTION


class Coverage(Command):
    """doit's `coverage` command, installed with lispbuild (entry point
    group doit.COMMAND)."""
    name = "coverage"
    doc_purpose = "run the test suites instrumented; report what they covered"
    doc_usage = ""
    doc_description = ("Writes build/coverage/index.html and build/coverage/lcov.info and "
                       "prints expressions and branches covered per file. Fails if a suite "
                       "did not pass.")
    cmd_options = (PROCESSES_OPTION,)

    def execute(self, params, args):
        # A build of its own, in which the planner adds the instrumented
        # suites and the coverage tasks.
        return subprocess.run([sys.executable, "-m", "doit", "-n", str(params["processes"]),
                               "coverage-report"],
                              env={**os.environ, COVERAGE_VARIABLE: "1"}).returncode
