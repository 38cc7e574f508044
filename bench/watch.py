"""How fast `doit watch` turns a saved edit into a running program:

    .venv/bin/python bench/watch.py [--edits 7] [--busy 2] [--application]

hello: from the save of a one-line edit to samples/hello/app/main.lisp to
the new build/bin/hello in place (its output shows the edit).
webserver: from the save of a one-line edit to samples/webserver/
webserver.lisp to the server that `doit watch run:webserver` keeps running
answering GET / with the new text: reloaded into the running server, and
with --no-reload restarted.
Each in a copy of the samples with a store of its own, after the watch's
first build; medians over the edits, as a Markdown table. --busy N runs N
busy loops (one process each) while the edits are measured.
--application: the application of bench/asdf_compare.py (166 systems of
Debian's libraries) instead: from the save of a one-line edit to its
main.lisp to the new build/bin/application printing the new text.
"""
import contextlib
import multiprocessing
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def wait_for(check, timeout=120.0, step=0.005) -> float:
    start = time.perf_counter()
    while not check():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("gave up waiting")
        time.sleep(step)
    return time.perf_counter()


def output_of(exe: Path) -> str:
    try:
        return subprocess.run([exe], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return ""


def new_output(exe: Path, text: str):
    """A check that the executable was replaced (a new inode: lispbuild
    renames it into place) by one that prints `text`; cheap to poll."""
    seen = {"inode": os.stat(exe).st_ino}

    def check():
        try:
            inode = os.stat(exe).st_ino
        except OSError:
            return False
        if inode == seen["inode"]:
            return False
        seen["inode"] = inode
        return text in output_of(exe)
    return check


def page(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.read().decode()
    except OSError:
        return ""


def start_watch(project: Path, env, *tasks) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "doit", "watch", *tasks], cwd=project,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def stop_watch(watch: subprocess.Popen):
    os.killpg(watch.pid, signal.SIGINT)
    watch.wait(30)


def measure_executable(project: Path, env: dict, name: str, source: Path, old: str,
                       new: str, shows: str, edits: int, busy: int) -> list[float]:
    """`doit watch exe:NAME`; edit i replaces `old` by `new` (formatted
    with i) in `source`: from the save to build/bin/NAME printing `shows`
    (formatted with i)."""
    exe = project / "build" / "bin" / name
    watch = start_watch(project, env, f"exe:{name}")
    try:
        wait_for(lambda: bool(output_of(exe)), timeout=1800, step=0.5)
        time.sleep(2)
        original, times = output_of(exe), []
        with busy_loops(busy):
            for i in range(edits):
                text = source.read_text()
                check = new_output(exe, shows.format(i=i))
                source.write_text(text.replace(old, new.format(i=i), 1))
                saved = time.perf_counter()
                times.append(wait_for(check, timeout=600) - saved)
                check = new_output(exe, original.splitlines()[0])
                source.write_text(text)
                wait_for(check, timeout=600)
                time.sleep(1)
        return times
    finally:
        stop_watch(watch)


def measure_hello(tmp: Path, edits: int, busy: int) -> list[float]:
    project = tmp / "hello"
    shutil.copytree(REPO / "samples", project / "samples")
    shutil.copy(REPO / "dodo.py", project)
    return measure_executable(project, {**os.environ, "LISPBUILD_STORE": str(tmp / "store-hello")},
                              "hello", project / "samples/hello/app/main.lisp",
                              "hello from a static SBCL", "hello from a static SBCL {i}",
                              "hello from a static SBCL {i}", edits, busy)


def measure_application(tmp: Path, edits: int, busy: int) -> list[float]:
    from asdf_compare import PROJECTS, Setup  # bench/, beside this file
    setup = Setup(PROJECTS["application"](0), tmp)
    project = setup.ours / "project"
    return measure_executable(project, setup.ours_env, "application", project / "main.lisp",
                              '"~A~%" (html word)', '"~A watched {i}~%" (html word)',
                              "watched {i}", edits, busy)


@contextlib.contextmanager
def busy_loops(count: int):
    loops = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(count)]
    for loop in loops:
        loop.start()
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.join()


def _spin():
    while True:
        pass


def measure_webserver(tmp: Path, edits: int, busy: int, *options: str) -> list[float]:
    project = tmp / f"web{'-'.join(options)}"
    shutil.copytree(REPO / "samples", project / "samples")
    shutil.copy(REPO / "dodo.py", project)
    env = {**os.environ, "LISPBUILD_STORE": str(tmp / "store-web")}
    source = project / "samples/webserver/webserver.lisp"
    url = "http://127.0.0.1:8080/"
    watch = start_watch(project, env, *options, "run:webserver")
    try:
        wait_for(lambda: "hello from" in page(url), timeout=900, step=0.2)
        time.sleep(2)
        times = []
        with busy_loops(busy):
            for i in range(edits):
                text = source.read_text()
                # Each run's own text: another run's FASLs and cores, in the
                # shared store, must not answer for this run's edits.
                marker = f"hello {i} {'-'.join(options) or 'reload'} from a static hunchentoot"
                source.write_text(text.replace("hello from a static hunchentoot", marker, 1))
                saved = time.perf_counter()
                times.append(wait_for(lambda: marker in page(url)) - saved)
                source.write_text(text)
                wait_for(lambda: "hello from a static hunchentoot" in page(url))
                time.sleep(1)
        return times
    finally:
        stop_watch(watch)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--edits", type=int, default=7)
    parser.add_argument("--busy", type=int, default=0)
    parser.add_argument("--application", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lispbuild-watch-bench-") as tmp:
        if args.application:
            rows = [("the new build/bin/application",
                     measure_application(Path(tmp), args.edits, args.busy), 0.3)]
        else:
            rows = [("the new build/bin/hello", measure_hello(Path(tmp), args.edits, args.busy),
                     0.3),
                    ("the webserver reloaded, answering with the new text",
                     measure_webserver(Path(tmp), args.edits, args.busy), 0.25),
                    ("the webserver restarted (--no-reload), answering with the new text",
                     measure_webserver(Path(tmp), args.edits, args.busy, "--no-reload"), 0.6)]
    print(f"{args.busy} busy loops, {os.cpu_count()} CPUs")
    print("| from a saved one-line edit to | median | fastest | slowest | target |")
    print("|---|---|---|---|---|")
    for what, times, target in rows:
        print(f"| {what} | {statistics.median(times):.2f} s | {min(times):.2f} s "
              f"| {max(times):.2f} s | {target} s |")


if __name__ == "__main__":
    main()
