"""aarch64 under qemu beside this machine, for hello and ppcre-grep:

    .venv/bin/python bench/aarch64.py [--rounds 3]

Each round copies the samples into a fresh project with an empty store
and builds each program cold for one target (`doit -n 2 exe:NAME` or
`exe:NAME@aarch64-linux`), then rebuilds it after a one-line edit of its
own Lisp file. The arm64 sysroot and lispbuild's own compiled Lisp (the
per-user tool store) are made before the first round and shared, as on a
machine that has built once. Then: each executable's size, and its
start-up (a run that prints and exits), natively and under
qemu-aarch64-static. Prints a Markdown table of medians over the rounds:
wall seconds, and CPU seconds (user+sys) of the build and every process
it started.
"""
import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ARM = "aarch64-linux"
# name -> (its own Lisp file, an edit of it, the arguments of a start-up run)
PROGRAMS = {
    "hello": ("samples/hello/app/main.lisp", ("argument~:P", "argument~:P (edited)"),
              ["static", "lisp"]),
    "ppcre-grep": ("samples/ppcre-grep/grep.lisp",
                   ("usage: ppcre-grep", "usage (edited): ppcre-grep"),
                   ["defsystem", "samples/ppcre-grep/ppcre-grep.asd"]),
}


def measured(command, cwd) -> tuple[float, float]:
    """(wall, user+sys of the command and its children) seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{command} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def doit(*args):
    return [sys.executable, "-m", "doit", *args]


def fresh_project(tmp: Path, i: int) -> Path:
    project = tmp / f"round-{i}"
    shutil.copytree(REPO / "samples", project / "samples")
    shutil.copy(REPO / "dodo.py", project / "dodo.py")
    return project


def edit_of(path: Path, old: str, new: str):
    """A one-line edit of a string the program prints: its FASL, core and
    executable are made again, not its runtime."""
    path.write_text(path.read_text().replace(old, new, 1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    rows: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="lispbuild-aarch64-") as tmp:
        warm = fresh_project(Path(tmp), -1)  # the sysroot and tool store, made once
        measured(doit("-n", "2", "exe:hello", f"exe:hello@{ARM}"), warm)
        for i in range(rounds):
            for name, (source, (old, new), _) in PROGRAMS.items():
                for target in ("", ARM):
                    project = fresh_project(Path(tmp), i * 10 + (target != ""))
                    task = f"exe:{name}" + (f"@{target}" if target else "")
                    machine = "aarch64 (qemu)" if target else "x86-64"
                    rows.setdefault((name, machine, "cold"), []).append(
                        measured(doit("-n", "2", task), project))
                    edit_of(project / source, old, new)
                    rows.setdefault((name, machine, "one-line edit"), []).append(
                        measured(doit("-n", "2", task), project))
                    if i == rounds - 1:
                        exe = project / "build" / (f"{target}/" if target else "") / "bin" / name
                        run = [exe, *PROGRAMS[name][2]]
                        if target:
                            run = [shutil.which("qemu-aarch64-static"), *run]
                        starts = [measured(run, project) for _ in range(10)]
                        rows[(name, machine, "start-up")] = starts
                        rows[(name, machine, "size")] = [(exe.stat().st_size / 1e6, 0)]
                    shutil.rmtree(project)
    print("| program | machine | what | median wall | median CPU | runs |")
    print("|---|---|---|---|---|---|")
    for (name, machine, what), runs in rows.items():
        if what == "size":
            print(f"| {name} | {machine} | executable size | {runs[0][0]:.1f} MB | | |")
            continue
        unit, scale = ("ms", 1000) if what == "start-up" else ("s", 1)
        print(f"| {name} | {machine} | {what} "
              f"| {statistics.median(w for w, _ in runs) * scale:.{0 if scale > 1 else 2}f} {unit} "
              f"| {statistics.median(c for _, c in runs) * scale:.{0 if scale > 1 else 2}f} {unit} "
              f"| {len(runs)} |")


if __name__ == "__main__":
    main()
