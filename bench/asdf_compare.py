"""lispbuild next to what a Lisp user does today, on the ASDF samples:

    .venv/bin/python bench/asdf_compare.py [--runs N]

today:     one SBCL process: (asdf:load-system NAME) with ASDF's FASL cache,
           then save-lisp-and-die :executable t;
lispbuild: `doit -n 2 exe:NAME`, with a store of its own.

For each: a cold build (empty FASL cache / store), a no-op rebuild, the
rebuild after a one-line edit to one file of the sample, and a fresh clone
(the same sources at another path, the FASL cache / store kept). Prints a
Markdown table of medians and ratios.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SAMPLES = {  # name: (file edited, text replaced, replacement for the i-th edit)
    "ppcre-grep": ("grep.lisp", '"~D:~A~%"', '"~D:{i}~A~%"'),
    "webserver": ("webserver.lisp", "hello from a static hunchentoot",
                  "hello from a static hunchentoot {i}"),
}


def timed(command, cwd, env=None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{command} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def asdf_command(name: str, sample: Path) -> list[str]:
    return ["sbcl", "--noinform", "--non-interactive", "--no-sysinit", "--no-userinit",
            "--eval", "(require :asdf)",
            "--eval", f'(asdf:initialize-source-registry \'(:source-registry (:tree "{sample}/")'
                      ' (:tree "/usr/share/common-lisp/source/") :ignore-inherited-configuration))',
            "--eval", f'(asdf:load-system "{name}")',
            "--eval", f'(sb-ext:save-lisp-and-die "{sample}/{name}-asdf" :executable t'
                      ' :save-runtime-options t :toplevel (lambda () (sb-ext:exit :code'
                      f' (uiop:symbol-call :{name} :main (rest sb-ext:*posix-argv*)))))']


def measure(name: str, runs: int, tmp: Path) -> dict:
    edited, old, new = SAMPLES[name]
    result = {}
    # Today: ASDF in one process, its FASL cache under XDG_CACHE_HOME.
    sample = tmp / f"asdf-{name}"
    shutil.copytree(REPO / "samples" / name, sample)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp / f"xdg-{name}")}
    command = asdf_command(name, sample)
    result["asdf cold"] = timed(command, sample, env)
    result["asdf no-op"] = statistics.median(timed(command, sample, env) for _ in range(runs))
    result["asdf edit"] = statistics.median(
        _edit_and(lambda: timed(command, sample, env), sample / edited, old, new, i)
        for i in range(runs))
    clone = tmp / f"asdf-{name}-clone"
    shutil.copytree(REPO / "samples" / name, clone)
    result["asdf fresh clone"] = timed(asdf_command(name, clone), clone, env)
    # lispbuild: the repository's declarations, a store of its own.
    project = tmp / f"lispbuild-{name}"
    shutil.copytree(REPO / "samples", project / "samples")
    shutil.copy(REPO / "dodo.py", project / "dodo.py")
    env = {**os.environ, "LISPBUILD_STORE": str(tmp / f"store-{name}")}
    doit = [sys.executable, "-m", "doit", "-n", "2", f"exe:{name}"]
    result["lispbuild cold"] = timed(doit, project, env)
    result["lispbuild no-op"] = statistics.median(timed(doit, project, env) for _ in range(runs))
    result["lispbuild edit"] = statistics.median(
        _edit_and(lambda: timed(doit, project, env), project / "samples" / name / edited,
                  old, new, i)
        for i in range(runs))
    clone = tmp / f"lispbuild-{name}-clone"
    shutil.copytree(REPO / "samples", clone / "samples")
    shutil.copy(REPO / "dodo.py", clone / "dodo.py")
    result["lispbuild fresh clone"] = timed(doit, clone, env)
    return result


def _edit_and(build, path: Path, old: str, new: str, i: int) -> float:
    """Time `build` after a one-line edit (distinct for each i), then undo it."""
    original = path.read_text()
    path.write_text(original.replace(old, new.format(i=i), 1))
    try:
        return build()
    finally:
        path.write_text(original)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    print("| sample | build | ASDF + save-lisp-and-die | lispbuild `doit -n 2` | ratio |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="lispbuild-asdf-bench-") as tmp:
        for name in SAMPLES:
            r = measure(name, runs, Path(tmp))
            for kind in ("cold", "no-op", "edit", "fresh clone"):
                a, b = r[f"asdf {kind}"], r[f"lispbuild {kind}"]
                print(f"| {name} | {kind} | {a:.2f} s | {b:.2f} s | {a / b:.1f}x |")


if __name__ == "__main__":
    main()
