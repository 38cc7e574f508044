"""lispbuild next to what a Lisp user does today, in one run:

    .venv/bin/python bench/asdf_compare.py [--runs 3] [--synthetic-files 1000]

today:     one SBCL process: (asdf:load-system NAME) with ASDF's FASL cache,
           then save-lisp-and-die :executable t;
lispbuild: `doit -n 2 exe:NAME`, with a store of its own.

Projects: samples/webserver, samples/ppcre-grep, an application assembled
from Debian's libraries (bench/application/: drakma, postmodern, cl-who,
ironclad, cxml, local-time, yason and what they need, 133 systems and 392
files), and a synthetic project (bench/synthetic.py). Each with a project-local copy of a dependency
(alexandria for the samples, the synthetic project's first library), which
both find before Debian's. Builds: cold (empty FASL cache / store), no-op,
a one-line edit in the project's own file, and a one-line edit in an early
file of that dependency, after which ASDF recompiles everything that uses
it and lispbuild what its traces say consulted the edit (reuse.py). Each
is timed `--runs` times (the two tools alternating) and the medians
are printed, wall and CPU (user+sys of every process, workers included)
seconds, with how many FASLs each tool wrote, as a Markdown table; then the processes a cold lispbuild build of
the webserver starts, and where an edit's time goes.
"""
import argparse
import collections
import datetime
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import generate  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEBIAN = Path("/usr/share/common-lisp/source")


class Project:
    """One project as both tools build it: its directory, the system and
    entry, the file of its own and the file of its dependency to edit."""

    def __init__(self, name, make, own, dependency):
        self.name, self.make, self.own, self.dependency = name, make, own, dependency


def sample(name: str):
    def make(dest: Path):
        shutil.copytree(REPO / "samples" / name, dest)
        shutil.copytree(DEBIAN / "alexandria", dest / "alexandria")
    return make


def application(dest: Path):
    shutil.copytree(REPO / "bench" / "application", dest)
    shutil.copytree(DEBIAN / "alexandria", dest / "alexandria")


APPLICATION_PACKAGES = ("cl-drakma", "cl-postmodern", "cl-who", "cl-ironclad", "cl-cxml",
                        "cl-puri", "cl-local-time", "cl-yason", "cl-parse-number", "cl-esrap",
                        "cl-salza2", "cl-chipz")


def synthetic(files: int):
    def make(dest: Path):
        generate(dest, files, max(10, files // 50))
    return make


PROJECTS = {
    "webserver": lambda files: Project(
        "webserver", sample("webserver"),
        ("webserver.lisp", "hello from a static hunchentoot", "hello {i} from hunchentoot"),
        ("alexandria/alexandria-1/definitions.lisp", "Retain the current value.",
                            "Retain the current value {i}.")),
    "ppcre-grep": lambda files: Project(
        "ppcre-grep", sample("ppcre-grep"),
        ("grep.lisp", '"~D:~A~%"', '"~D:{i}~A~%"'),
        ("alexandria/alexandria-1/definitions.lisp", "Retain the current value.",
         "Retain the current value {i}.")),
    "application": lambda files: Project(
        "application", application,
        ("main.lisp", '"~A~%" (html word)', '"~A {i}~%" (html word)'),
        ("alexandria/alexandria-1/definitions.lisp", "Retain the current value.",
         "Retain the current value {i}.")),
    "synth-app": lambda files: Project(
        "synth-app", synthetic(files),
        ("app/main.lisp", '"synthetic: ~D~%"', '"synthetic {i}: ~D~%"'),
        ("lib00/f000.lisp", "(x 0 :type fixnum)", "(x {i} :type fixnum)")),
}

LISPBUILD_DODO = """import lispbuild
project = lispbuild.Project()
project.asdf_system("{name}", registry=["."])
project.binary("{name}", libraries=["{name}"], entry="{package}:main",
               entry_arguments="command-line-arguments"{foreign})
DOIT_CONFIG = lispbuild.doit_config(project)
def task_lispbuild():
    yield from lispbuild.tasks(project)
"""


def run(command, cwd, env=None, capture=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=capture, text=True)
    if proc.returncode != 0:
        sys.exit(f"{command} failed in {cwd}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return proc


def timed(command, cwd, env=None) -> tuple[float, float]:
    """Wall and CPU seconds of a command and every process it waited for
    (lispbuild's owner reaps its workers)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run(command, cwd, env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def asdf_command(name: str, root: Path) -> list[str]:
    package = "synth-app" if name == "synth-app" else name
    return ["sbcl", "--noinform", "--non-interactive", "--no-sysinit", "--no-userinit",
            "--eval", "(require :asdf)",
            "--eval", f'(asdf:initialize-source-registry \'(:source-registry (:tree "{root}/")'
                      f' (:tree "{DEBIAN}/") :ignore-inherited-configuration))',
            "--eval", f'(asdf:load-system "{name}")',
            "--eval", f'(sb-ext:save-lisp-and-die "{root}/{name}-asdf" :executable t'
                      ' :save-runtime-options t :toplevel (lambda () (sb-ext:exit :code'
                      f' (uiop:symbol-call :{package} :main (rest sb-ext:*posix-argv*)))))']


class Setup:
    """A project copied for each tool, with what building it takes."""

    def __init__(self, project: Project, tmp: Path):
        self.project = project
        self.asdf_root = tmp / f"asdf-{project.name}"
        project.make(self.asdf_root)
        self.asdf_env = {**os.environ, "XDG_CACHE_HOME": str(tmp / f"xdg-{project.name}")}
        self.ours = tmp / f"lispbuild-{project.name}"
        project.make(self.ours / "project")
        foreign = (',\n               foreign_libraries={"libssl": ["/usr/lib/x86_64-linux-gnu/libssl.a"], '
                   '"libcrypto": ["/usr/lib/x86_64-linux-gnu/libcrypto.a"]}'
                   if project.name in ("webserver", "application") else "")
        (self.ours / "project" / "dodo.py").write_text(LISPBUILD_DODO.format(
            name=project.name, package=project.name, foreign=foreign))
        self.ours_env = {**os.environ, "LISPBUILD_STORE": str(tmp / f"store-{project.name}")}
        self.doit = [sys.executable, "-m", "doit", "-n", "2", f"exe:{project.name}"]

    def asdf(self):
        return timed(asdf_command(self.project.name, self.asdf_root), self.asdf_root,
                     self.asdf_env)

    def lispbuild(self):
        return timed(self.doit, self.ours / "project", self.ours_env)

    def clean(self):
        shutil.rmtree(Path(self.asdf_env["XDG_CACHE_HOME"]), ignore_errors=True)
        shutil.rmtree(self.ours / "project" / "build", ignore_errors=True)
        shutil.rmtree(Path(self.ours_env["LISPBUILD_STORE"]), ignore_errors=True)

    def edit(self, which, i: int):
        path, old, new = which
        for root in (self.asdf_root, self.ours / "project"):
            text = (root / path).read_text()
            marker = new.format(i=i - 1) if i else old
            (root / path).write_text(text.replace(marker, new.format(i=i), 1))


def fasls_written(root: Path, since: float) -> int:
    """How many FASLs under `root` were written since `since` (a time)."""
    return sum(1 for path in root.rglob("*.fasl") if path.stat().st_mtime >= since)


def measure(setup: Setup, runs: int) -> dict:
    times = collections.defaultdict(list)

    def both(kind):
        start = time.time()
        times[f"asdf {kind}"].append(setup.asdf())
        times[f"asdf {kind} fasls"].append(
            fasls_written(Path(setup.asdf_env["XDG_CACHE_HOME"]), start))
        start = time.time()
        times[f"lispbuild {kind}"].append(setup.lispbuild())
        times[f"lispbuild {kind} fasls"].append(
            fasls_written(setup.ours / "project" / "build", start))

    for _ in range(runs):
        setup.clean()
        both("cold")
    for _ in range(runs):
        both("no-op")
    for i in range(runs):
        setup.edit(setup.project.own, i)
        both("edit, own file")
    for i in range(runs):
        setup.edit(setup.project.dependency, i)
        both("edit, early file of a dependency")
    return {k: statistics.median(v) if k.endswith("fasls") else
            (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
            for k, v in times.items()}


def sbcl_processes(setup: Setup, tmp: Path) -> str:
    """How many SBCL processes a cold build starts: fresh SBCLs and forks."""
    setup.clean()
    trace = tmp / "trace.log"
    run(["strace", "-f", "-qq", "-s", "200", "-e", "trace=execve,fork,vfork,clone,clone3",
         "-o", str(trace), *setup.doit], setup.ours / "project", setup.ours_env)
    lisp, execs, forks, pending, threads = set(), 0, 0, {}, {}
    for line in trace.read_text().splitlines():
        pid, _, rest = line.partition(" ")
        rest = rest.lstrip()
        # A call another process interrupted is split: "execve(...
        # <unfinished ...>", later "<... execve resumed>) = 0".
        if rest.startswith("execve("):
            pending[pid] = rest.split('"')[1]
            if "<unfinished" in rest:
                continue
        if rest.startswith(("execve(", "<... execve resumed>")):
            program = pending.pop(pid, "")
            if rest.rstrip().endswith("= 0") and "sbcl" in os.path.basename(program):
                lisp.add(pid)
                execs += 1
            continue
        if rest.startswith(("clone", "fork", "vfork")):
            threads[pid] = "CLONE_THREAD" in rest
            if "<unfinished" in rest:
                continue
        if rest.startswith(("clone", "fork", "vfork", "<... clone", "<... fork", "<... vfork")):
            child = rest.rsplit("=", 1)[-1].strip()
            if pid in lisp and not threads.pop(pid, False) and child.isdigit():
                lisp.add(child)
                forks += 1
    return (f"A cold `doit -n 2 exe:webserver` starts {execs + forks} SBCL processes: "
            f"{execs} from a fresh SBCL (the ASDF query, lispbuild's own Lisp, the first "
            f"worker) and {forks} forked by workers (workers, compiles, the dump).")


def where_an_edit_goes(setup: Setup, i: int) -> str:
    """The i-th edit of the project's own file (measure() made 0..i-1)."""
    setup.edit(setup.project.own, i)
    start = time.time()
    proc = run([*setup.doit[:-1], "--reporter", "json", setup.doit[-1]],
               setup.ours / "project", setup.ours_env)
    end = time.time()
    tasks = [t for t in json.loads(proc.stdout)["tasks"] if t["result"] == "success"
             and t["name"].partition(":")[0] in ("fasl", "core", "linkage", "runtime", "exe")]
    parts, first, last = [], end, start
    for t in tasks:
        began = datetime.datetime.strptime(t["started"], "%Y-%m-%d %H:%M:%S.%f").timestamp()
        first, last = min(first, began), max(last, began + t["elapsed"])
        parts.append(f"{t['name']} {t['elapsed']:.2f} s")
    return (f"A one-line edit of {setup.project.own[0]} ({end - start:.2f} s): doit's start, "
            f"loading the declarations and checking {len(json.loads(proc.stdout)['tasks'])} "
            f"tasks {first - start:.2f} s; " + ", ".join(parts)
            + f"; stopping the workers and exiting {end - last:.2f} s.")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--synthetic-files", type=int, default=1000)
    parser.add_argument("--projects", nargs="+", default=list(PROJECTS))
    parser.add_argument("--notes-only", action="store_true",
                        help="only where a webserver edit's time goes, and the processes")
    args = parser.parse_args()
    if "application" in args.projects:
        missing = [p for p in APPLICATION_PACKAGES if subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
            text=True).stdout != "install ok installed"]
        if missing:
            sys.exit(f"the application needs Debian's {' '.join(missing)}: "
                     f"apt-get install {' '.join(missing)}")
    rows, notes = [], []
    with tempfile.TemporaryDirectory(prefix="lispbuild-asdf-bench-") as tmp:
        for name in args.projects:
            setup = Setup(PROJECTS[name](args.synthetic_files), Path(tmp))
            if args.notes_only:
                setup.clean()
                setup.lispbuild()
                notes.append(where_an_edit_goes(setup, 0))
                notes.append(sbcl_processes(setup, Path(tmp)))
                continue
            results = measure(setup, args.runs)
            for kind in ("cold", "no-op", "edit, own file", "edit, early file of a dependency"):
                (aw, ac), (lw, lc) = results[f"asdf {kind}"], results[f"lispbuild {kind}"]
                af, lf = results[f"asdf {kind} fasls"], results[f"lispbuild {kind} fasls"]
                rows.append(f"| {name} | {kind} | {aw:.2f} s ({ac:.2f} s CPU) "
                            f"| {lw:.2f} s ({lc:.2f} s CPU) | {aw / lw:.2f}x "
                            f"| {af:.0f} / {lf:.0f} |")
            print(f"{name} measured", file=sys.stderr, flush=True)
            if name == "webserver":
                notes.append(where_an_edit_goes(setup, args.runs))
                notes.append(sbcl_processes(setup, Path(tmp)))
    print("| project | build | ASDF + save-lisp-and-die | lispbuild `doit -n 2` | ratio "
          "| FASLs compiled, ASDF / lispbuild |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
