"""How a no-op build grows with the project, next to doit's own floor:

    .venv/bin/python bench/noop_scaling.py [--sizes 500 2000] [--runs 10]

For each size, a synthetic project (bench/synthetic.py) is built once
with `doit -n 2`, then timed doing nothing; beside it, a plain doit
dodo.py with one task per Lisp file, each with a file_dep on its source
(doit's own up-to-date check, the least any doit build can do). The two
no-ops alternate, so that the machine's noise falls on both. Prints a
Markdown table of medians, wall and CPU (user+sys) seconds.
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import generate, plain_doit_dodo  # noqa: E402


def timed(command, cwd, env=None) -> tuple[float, float]:
    """Wall and CPU (user+sys of the process and all it waited for) seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{command} failed in {cwd}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def tasks_of(project: Path) -> int:
    out = subprocess.run([sys.executable, "-m", "doit", "list", "--all"], cwd=project,
                         capture_output=True, text=True).stdout
    return len(out.splitlines())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    doit = [sys.executable, "-m", "doit", "-n", "2"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="lispbuild-noop-") as tmp:
        for size in args.sizes:
            project = Path(tmp) / f"synthetic-{size}"
            files = generate(project, size, max(10, size // 50))
            env = {**os.environ, "LISPBUILD_STORE": str(Path(tmp) / f"store-{size}")}
            cold = subprocess.run(doit, cwd=project, capture_output=True, text=True, env=env)
            if cold.returncode != 0:
                sys.exit(cold.stdout[-3000:] + cold.stderr[-3000:])
            plain = Path(tmp) / f"plain-{size}"
            plain_doit_dodo(plain, project)
            timed(doit, plain)  # creates its targets and doit's record
            ours, floor = [], []
            for _ in range(args.runs):
                ours.append(timed(doit, project, env))
                floor.append(timed(doit, plain))
            rows.append((files, tasks_of(project), tasks_of(plain),
                         statistics.median(w for w, _ in ours),
                         statistics.median(c for _, c in ours),
                         statistics.median(w for w, _ in floor),
                         statistics.median(c for _, c in floor)))
    print("| Lisp files | tasks (lispbuild / plain doit) | lispbuild no-op | plain doit no-op, file_dep | ratio (wall) |")
    print("|---|---|---|---|---|")
    for files, ours_tasks, plain_tasks, wall, cpu, floor_wall, floor_cpu in rows:
        print(f"| {files} | {ours_tasks} / {plain_tasks} | {wall:.3f} s ({cpu:.3f} s CPU) "
              f"| {floor_wall:.3f} s ({floor_cpu:.3f} s CPU) | {wall / floor_wall:.2f}x |")


if __name__ == "__main__":
    main()
