"""Measures samples/hello as a user meets it, in a fresh copy of the
samples with a store of its own, and prints a Markdown report:

    .venv/bin/python bench/measure.py [--runs N]

- cold build (`doit -n 2 exe:hello exe:hello-z`), and a no-op `doit exe:hello`;
- the rebuild after a one-line edit to one Lisp file;
- size and start-up time of hello, with a plain and a zstd-compressed core;
- start-up next to `save-lisp-and-die :executable t` of the same FASLs
  (the dynamic executable SBCL makes by itself).
Times are medians of wall-clock runs on a shared machine: read the ratios.
"""
import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed(command, cwd, check=True) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if check and proc.returncode != 0:
        sys.exit(f"{command} failed:\n{proc.stdout}{proc.stderr}")
    return elapsed


def median_ms(command, cwd, runs) -> float:
    return statistics.median(timed(command, cwd) for _ in range(runs)) * 1000


def doit(*args):
    return [sys.executable, "-m", "doit", *args]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    rows = []
    with tempfile.TemporaryDirectory(prefix="lispbuild-bench-") as tmp:
        project = Path(tmp) / "project"
        shutil.copytree(REPO / "samples", project / "samples")
        dodo = (REPO / "dodo.py").read_text()
        # The same hello, with a compressed core, for the size comparison.
        dodo = dodo.replace('project.run("hello"',
                            'project.binary("hello-z", libraries=["hello"], entry="hello:main",'
                            ' entry_arguments="command-line-arguments",'
                            ' compression=True)\nproject.run("hello"')
        (project / "dodo.py").write_text(dodo)

        targets = ("exe:hello", "exe:hello-z")
        rows.append(("cold build of hello, plain and compressed, `doit -n 2`",
                     f"{timed(doit('-n', '2', *targets), project):.1f} s"))
        rows.append(("no-op `doit exe:hello`",
                     f"{median_ms(doit('exe:hello'), project, 5):.0f} ms"))

        main_lisp = project / "samples/hello/app/main.lisp"
        original = main_lisp.read_text()
        edits = []
        for i in range(5):
            main_lisp.write_text(original.replace("argument~:P", f"argument~:P ({i})"))
            edits.append(timed(doit("-n", "2", "exe:hello"), project))
        main_lisp.write_text(original)
        timed(doit(*targets), project)
        rows.append(("rebuild after a one-line edit to samples/hello/app/main.lisp "
                     "(fasl, core, exe)", f"{statistics.median(edits):.2f} s"))

        # save-lisp-and-die :executable t from the same FASLs.
        fasls = ["build/fasl/hello-util/package.fasl", "build/fasl/hello-util/text.fasl",
                 "build/fasl/hello/package.fasl", "build/fasl/hello/main.fasl"]
        loads = [arg for f in fasls for arg in ("--eval", f'(load "{f}")')]
        timed(["sbcl", "--non-interactive", "--no-sysinit", "--no-userinit", *loads, "--eval",
               '(sb-ext:save-lisp-and-die "build/hello-dynamic" :executable t'
               ' :save-runtime-options t :toplevel (lambda () (sb-ext:exit :code'
               ' (hello:main (rest sb-ext:*posix-argv*)))))'], project)

        bins = {"static, plain core (`build/bin/hello`)": "build/bin/hello",
                "static, zstd core (`build/bin/hello-z`)": "build/bin/hello-z",
                "`save-lisp-and-die :executable t` (dynamic, glibc)": "build/hello-dynamic"}
        startup = {}
        for label, path in bins.items():
            size = (project / path).stat().st_size / 2**20
            startup[path] = median_ms([str(project / path), "a"], project, runs)
            rows.append((f"{label}: size, start-up and exit",
                         f"{size:.1f} MiB, {startup[path]:.1f} ms"))
        rows.append(("start-up, static plain / dynamic",
                     f"{startup['build/bin/hello'] / startup['build/hello-dynamic']:.2f}x"))
        rows.append(("start-up, static zstd / static plain",
                     f"{startup['build/bin/hello-z'] / startup['build/bin/hello']:.1f}x"))

    print(f"| measure (median of {runs} runs where repeated) | result |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
