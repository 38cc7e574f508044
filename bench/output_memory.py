"""doit's own memory when a compile prints a lot, and the time it takes,
in fresh projects whose one file prints N MB while it compiles:

    .venv/bin/python bench/output_memory.py [--sizes 0 10 100] [--lispbuild DIR]

Prints a Markdown table: for each size, doit's peak resident memory
(VmHWM of its own process image), the wall and CPU seconds of the build
(`doit fasl`, a store of its own, SBCL included), and how many lines of
output the build showed. `--lispbuild DIR` runs another checkout's
lispbuild (PYTHONPATH), to compare two versions on one machine.
"""
import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DODO = """\
import lispbuild
project = lispbuild.Project()
project.library("loud", ["package.lisp", "code.lisp"], directory="src")
DOIT_CONFIG = lispbuild.doit_config(project)
def task_lispbuild():
    yield from lispbuild.tasks(project)
"""
# About 100 bytes a line.
CODE = """(in-package #:loud)
(eval-when (:compile-toplevel)
  (dotimes (i {lines})
    (format t "line ~D of what this compile prints, ~
               about a hundred bytes a line, for a benchmark ~%" i)))
"""
PEAK = """\
import atexit, os, re, sys
from doit.__main__ import main
atexit.register(lambda: open(os.environ["PEAK_FILE"], "w").write(
    re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read())[1]))
sys.exit(main())
"""


def measure(megabytes: int, where: Path, env: dict) -> tuple[float, float, float, int]:
    project = where / f"loud-{megabytes}"
    (project / "src").mkdir(parents=True)
    (project / "dodo.py").write_text(DODO)
    (project / "src/package.lisp").write_text("(defpackage #:loud (:use #:cl))\n")
    (project / "src/code.lisp").write_text(CODE.format(lines=megabytes * 10_000))
    (where / "peak.py").write_text(PEAK)
    peak = where / f"peak-{megabytes}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(where / "peak.py"), "fasl"], cwd=project,
                          capture_output=True, text=True,
                          env={**env, "PEAK_FILE": str(peak),
                               "LISPBUILD_STORE": str(project / "store")})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(proc.stdout + proc.stderr)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    shown = sum(1 for line in (proc.stdout + proc.stderr).splitlines()
                if re.match(r"line \d+ of what", line))
    return int(peak.read_text()) / 1024, wall, cpu, shown


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 10, 100])
    parser.add_argument("--lispbuild", help="a checkout whose lispbuild to run")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.lispbuild:
        env["PYTHONPATH"] = str(Path(args.lispbuild).resolve())
    print("| printed while compiling | doit's peak memory | wall | CPU | lines shown |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="lispbuild-bench-") as tmp:
        for size in args.sizes:
            memory, wall, cpu, shown = measure(size, Path(tmp), env)
            print(f"| {size} MB | {memory:.1f} MB | {wall:.2f} s | {cpu:.2f} s | {shown:,} |")


if __name__ == "__main__":
    main()
