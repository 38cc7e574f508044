"""Where a cold build's CPU goes, by kind of process, next to ASDF's:

    .venv/bin/python bench/cpu_split.py [--project synth-app] [--runs 1]

Needs root and Debian's `acct` (process accounting: the kernel writes each
process's CPU seconds when it ends, forked children included, which
getrusage cannot split). A cold `doit -n 2 exe:NAME` (bench/asdf_compare.py's
projects and set-up), then ASDF + save-lisp-and-die for the same project.
Kinds: lispbuild's Python (doit and its two job processes), warm workers
(the development runtime, `sbcl-dev`), the children they fork for each job
(a compile or a dump: named after the thread that forked them), fresh
SBCLs (ASDF's answer, lispbuild's own Lisp compiled once), the C
toolchain. Prints a Markdown table; per-file figures are over the FASLs
the build compiled.
"""
import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from asdf_compare import PROJECTS, Setup  # noqa: E402

KINDS = {"python": "lispbuild's Python (doit)", "sbcl-dev": "warm workers",
         "finalizer": "children of workers (a job each)", "sbcl": "fresh SBCLs"}
C_TOOLS = {"cc1", "as", "ld", "collect2", "gcc", "musl-gcc", "objcopy", "x86_64-linux-gn"}


def cpu_by_kind(accounting: Path) -> tuple[collections.Counter, collections.Counter]:
    """CPU seconds and process counts by kind, from an accounting file."""
    text = subprocess.run(["dump-acct", str(accounting)], capture_output=True, text=True,
                          check=True).stdout
    seconds, count = collections.Counter(), collections.Counter()
    for line in text.splitlines():
        fields = [f.strip() for f in line.split("|")]
        comm = fields[0]
        kind = KINDS.get(comm) or ("C toolchain" if comm in C_TOOLS else None)
        if kind is None:
            continue  # accton itself, the shell's sleep, ...
        seconds[kind] += (float(fields[2]) + float(fields[3])) / 100  # user+sys, ticks
        count[kind] += 1
    return seconds, count


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", default="synth-app", choices=list(PROJECTS))
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    if not shutil.which("accton"):
        sys.exit("needs Debian's acct (apt-get install acct), run as root")
    print(f"| {args.project}, cold | CPU | processes | per FASL |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="lispbuild-cpu-split-") as tmp:
        setup = Setup(PROJECTS[args.project](1000), Path(tmp))
        for _ in range(args.runs):
            setup.clean()
            accounting = Path(tmp) / "pacct"
            accounting.unlink(missing_ok=True)
            accounting.touch()
            subprocess.run(["accton", str(accounting)], check=True, capture_output=True)
            try:
                wall, cpu = setup.lispbuild()
            finally:
                subprocess.run(["accton", "off"], check=True, capture_output=True)
            fasls = len(list((setup.ours / "project" / "build" / "fasl").rglob("*.fasl")))
            seconds, count = cpu_by_kind(accounting)
            for kind in [*KINDS.values(), "C toolchain"]:
                print(f"| {kind} | {seconds[kind]:.2f} s | {count[kind]} "
                      f"| {1000 * seconds[kind] / fasls:.1f} ms |")
            print(f"| lispbuild, all (getrusage) | {cpu:.2f} s, {wall:.2f} s wall | "
                  f"| {1000 * cpu / fasls:.1f} ms |")
            asdf_wall, asdf_cpu = setup.asdf()
            print(f"| ASDF + save-lisp-and-die | {asdf_cpu:.2f} s, {asdf_wall:.2f} s wall | 1 "
                  f"| {1000 * asdf_cpu / fasls:.1f} ms |")
            print(f"| FASLs compiled | {fasls} | | |")


if __name__ == "__main__":
    main()
