"""`doit watch`: real edits, as editors make them, in a running watch;
what it builds, what it prints, what it restarts, and that Ctrl-C leaves
nothing running."""
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from conftest import copy_samples, terminal_session, write_project
from nginx import free_port
from dodo_text import dodo_py

STATUS = re.compile(r"^\d\d:\d\d:\d\d (.*) \(\d+\.\d\d s\) (ok|failed)$")

GREETER_DODO = dodo_py("""\
project.asdf_system("greeter", registry=["."])
project.binary("greeter", libraries=["greeter"], entry="greeter:main")
""")
GREETER = {
    "greeter.asd": '(defsystem "greeter" :components ((:file "package") (:file "main")))\n',
    "package.lisp": "(defpackage #:greeter (:use #:cl) (:export #:main))\n",
    "main.lisp": "(in-package #:greeter)\n"
                 "(defun main () (format t \"v0~%\") 0)\n",
}


def processes_in(project: Path) -> list[str]:
    """Every process (but this one) working in `project`: the watch, its
    doit, SBCLs, the programs it runs."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
        except OSError:
            continue
        if Path(cwd).is_relative_to(project):
            found.append(f"{entry} {comm}")
    return found


class Watch:
    """A `doit watch` in its own session, as a terminal runs it; its
    output in a file."""

    def __init__(self, project: Path, env: dict, *args):
        self.log = project.parent / f"{project.name}-watch.txt"
        with open(self.log, "w") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "doit", "watch", *args], cwd=project, env=env,
                stdout=output, stderr=subprocess.STDOUT, preexec_fn=terminal_session)

    def output(self) -> str:
        return self.log.read_text()

    def statuses(self) -> list[tuple[str, str]]:
        return [m.groups() for m in map(STATUS.match, self.output().splitlines()) if m]

    def wait_for_status(self, count: int, timeout: float = 300) -> tuple[str, str]:
        """The count-th status line, once it is printed."""
        deadline = time.monotonic() + timeout
        while len(self.statuses()) < count:
            assert self.process.poll() is None, self.output()
            assert time.monotonic() < deadline, self.output()
            time.sleep(0.1)
        return self.statuses()[count - 1]

    def ctrl_c(self):
        os.killpg(self.process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        assert self.process.wait(timeout=60) == 0, self.output()


def output_of(exe: Path) -> str:
    return subprocess.run([exe], capture_output=True, text=True, timeout=30).stdout


def save_by_rename(path: Path, text: str):
    """What vim and emacs do: write a new file, rename it over the old one."""
    tmp = path.with_name(path.name + ".swp~")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_watch_rebuilds_on_edits_as_editors_make_them(tmp_path, store_env):
    project = write_project(tmp_path / "greeter", GREETER_DODO, GREETER)
    exe, main = project / "build/bin/greeter", project / "main.lisp"
    watch = Watch(project, store_env, "exe:greeter")
    try:
        assert watch.wait_for_status(1)[1] == "ok"
        assert output_of(exe) == "v0\n"

        # An in-place write.
        main.write_text(GREETER["main.lisp"].replace("v0", "v1"))
        what, result = watch.wait_for_status(2)
        assert result == "ok" and what.startswith("main.lisp changed: ")
        assert "fasl:greeter/main.lisp" in what and "core:greeter" in what
        assert "fasl:greeter/package.lisp" not in what
        assert output_of(exe) == "v1\n"

        # Write to a temporary file, then rename it over the source.
        save_by_rename(main, GREETER["main.lisp"].replace("v0", "v2"))
        assert watch.wait_for_status(3)[1] == "ok"
        assert output_of(exe) == "v2\n"

        # A touch changes no content: no rebuild.
        inode = exe.stat().st_ino
        os.utime(main)
        time.sleep(3)
        assert len(watch.statuses()) == 3, watch.output()
        assert exe.stat().st_ino == inode

        # A syntax error: the rebuild fails, says where, keeps the last
        # good executable and the watch going.
        main.write_text(GREETER["main.lisp"].replace("v0", "v3") + "(defun broken (\n")
        what, result = watch.wait_for_status(4)
        assert result == "failed"
        assert re.search(r"^  main\.lisp:3: ", watch.output(), re.M), watch.output()
        assert output_of(exe) == "v2\n"

        # Its fix recovers.
        main.write_text(GREETER["main.lisp"].replace("v0", "v3"))
        assert watch.wait_for_status(5)[1] == "ok"
        assert output_of(exe) == "v3\n"

        # A new file in the .asd: ASDF is asked again, and the new file is
        # watched from then on. Both saved at once: one rebuild.
        (project / "extra.lisp").write_text(
            "(in-package #:greeter)\n(defun greeting () \"v4 extra\")\n")
        (project / "greeter.asd").write_text(GREETER["greeter.asd"].replace(
            '(:file "main")', '(:file "extra") (:file "main")'))
        main.write_text(GREETER["main.lisp"].replace('"v0~%"', '"~A~%" (greeting)'))
        what, result = watch.wait_for_status(6)
        assert result == "ok", watch.output()
        assert "fasl:greeter/extra.lisp" in what
        time.sleep(1)
        assert len(watch.statuses()) == 6, watch.output()
        assert output_of(exe) == "v4 extra\n"
        (project / "extra.lisp").write_text(
            "(in-package #:greeter)\n(defun greeting () \"v5 extra\")\n")
        what, result = watch.wait_for_status(7)
        assert what.startswith("extra.lisp changed: ") and result == "ok"
        assert output_of(exe) == "v5 extra\n"

        # Deleted, then written again: one build, of the new content.
        os.remove(main)
        time.sleep(0.2)
        main.write_text(GREETER["main.lisp"].replace("v0", "v6"))
        what, result = watch.wait_for_status(8)
        assert result == "ok", watch.output()
        time.sleep(1)
        assert len(watch.statuses()) == 8, watch.output()
        assert output_of(exe) == "v6\n"
    finally:
        watch.ctrl_c()
    none_left_within(project, 5)


def test_a_directory_moved_away_and_back_builds_again(tmp_path, store_env):
    """`mv app app2; mv app2 app`: the first build fails (the sources are
    gone), and their return is seen: the next build is good."""
    dodo = GREETER_DODO.replace('project.asdf_system("greeter", registry=["."])',
                                'project.library("greeter", ["package.lisp", "main.lisp"], '
                                'directory="app")')
    assert dodo != GREETER_DODO
    project = write_project(tmp_path / "moved", dodo,
                            {f"app/{n}": GREETER[n] for n in ("package.lisp", "main.lisp")})
    watch = Watch(project, store_env, "exe:greeter")
    try:
        assert watch.wait_for_status(1)[1] == "ok"
        (project / "app").rename(project / "app2")
        assert watch.wait_for_status(2)[1] == "failed"
        (project / "app2").rename(project / "app")
        what, result = watch.wait_for_status(3)
        assert result == "ok", watch.output()
        assert output_of(project / "build/bin/greeter") == "v0\n"
    finally:
        watch.ctrl_c()


def test_a_broken_dodo_py_is_one_line_in_the_watch(tmp_path, store_env):
    project = write_project(tmp_path / "greeter", GREETER_DODO, GREETER)
    watch = Watch(project, store_env, "exe:greeter")
    try:
        assert watch.wait_for_status(1)[1] == "ok"
        dodo = project / "dodo.py"
        dodo.write_text(GREETER_DODO + "x = (\n")
        assert watch.wait_for_status(2)[1] == "failed"
        time.sleep(0.5)
        after = watch.output().split("dodo.py changed", 1)[1].splitlines()[1:]
        lines = GREETER_DODO.count("\n") + 1
        assert after == [f"  dodo.py:{lines}: SyntaxError: '(' was never closed"], after
        dodo.write_text(GREETER_DODO)
        assert watch.wait_for_status(3)[1] == "ok"
    finally:
        watch.ctrl_c()


def none_left_within(project: Path, seconds: float):
    deadline = time.monotonic() + seconds
    while processes_in(project):
        assert time.monotonic() < deadline, processes_in(project)
        time.sleep(0.1)


def test_ctrl_c_during_a_rebuild_ends_the_watch(tmp_path, store_env):
    project = write_project(tmp_path / "greeter", GREETER_DODO, GREETER)
    watch = Watch(project, store_env, "exe:greeter")
    assert watch.wait_for_status(1)[1] == "ok"
    # A compile that takes 3 s: the Ctrl-C comes while it runs.
    (project / "main.lisp").write_text(GREETER["main.lisp"].replace("v0", "v1")
                                       + "(eval-when (:compile-toplevel) (sleep 3))\n")
    time.sleep(0.5)
    watch.ctrl_c()
    assert watch.output().rstrip().endswith("stopped"), watch.output()
    none_left_within(project, 5)


def page(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except OSError:
        return ""


def wait_for_page(url: str, text: str, watch: Watch, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while text not in page(url):
        assert watch.process.poll() is None, watch.output()
        assert time.monotonic() < deadline, watch.output()
        time.sleep(0.2)


def test_watch_reloads_the_server_and_restarts_it_when_it_must(samples, tmp_path):
    """`doit watch -v run:webserver`: an edit of the server's own Lisp is
    loaded into the running server (same pid), which answers with the new
    text; a defstruct redefined incompatibly restarts it, saying why; the
    watch says where the time went; Ctrl-C stops the watch, its workers and
    the server."""
    project = copy_samples(tmp_path / "web")
    port = str(free_port())
    dodo = project / "dodo.py"
    dodo.write_text(dodo.read_text().replace('args=["8080"]', f'args=["{port}"]'))
    env = {**os.environ, "LISPBUILD_STORE": str(samples / "cache")}
    watch = Watch(project, env, "-v", "run:webserver")
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_page(url, "hello from a static hunchentoot", watch)
        assert f"listening on {url}" in watch.output()  # the program's own output
        first = re.search(r"run:webserver: started \(pid (\d+)\)", watch.output()).group(1)
        source = project / "samples/webserver/webserver.lisp"
        text = source.read_text()
        source.write_text(text.replace("hello from a static hunchentoot",
                                       "hello from a reloaded hunchentoot")
                          + "(defstruct point x y)\n")
        wait_for_page(url, "hello from a reloaded hunchentoot", watch)
        watch.wait_for_status(2)
        assert re.search(rf"^\d\d:\d\d:\d\d reloaded webserver.fasl into webserver "
                         rf"\(pid {first}\) in \d+ ms$", watch.output(), re.M), watch.output()
        assert re.findall(r"run:webserver: started \(pid (\d+)\)", watch.output()) == [first]
        # The rebuild's phases, each a time, then the whole from the save,
        # which the reload ended: the dump and the executable came after.
        # (Said after the status line, once the program is checked.)
        phase_line = re.compile(r"^\d\d:\d\d:\d\d   detection (\S+) s, graph (\S+) s, compile "
                                r"(\S+) s, reload (\S+) s, dump (\S+) s, executable (\S+) s; "
                                r"save to ready (\S+) s$", re.M)
        deadline = time.monotonic() + 60
        while not phase_line.search(watch.output()) and time.monotonic() < deadline:
            time.sleep(0.1)
        times = phase_line.findall(watch.output())
        assert len(times) == 1, watch.output()
        phases, total = [float(t) for t in times[0][:-1]], float(times[0][-1])
        assert all(t >= 0 for t in phases) and 0 < sum(phases[:4]) <= total + 0.05, times
        # A structure with a slot more cannot be loaded over the old one.
        source.write_text(text.replace("hello from a static hunchentoot",
                                       "hello from a restarted hunchentoot")
                          + "(defstruct point x y z)\n")
        # (The FASL's forms before the structure's were loaded, as a REPL's
        # C-c C-k loads them: the restarted server is what counts.)
        watch.wait_for_status(3)
        deadline = time.monotonic() + 60
        while len(re.findall(r"run:webserver: started", watch.output())) < 2:
            assert time.monotonic() < deadline, watch.output()
            time.sleep(0.1)
        wait_for_page(url, "hello from a restarted hunchentoot", watch)
        assert re.search(r"run:webserver: restarting, as webserver.fasl failed to load: "
                         r"attempt to redefine the STRUCTURE-OBJECT class WEBSERVER::POINT "
                         r"incompatibly", watch.output()), watch.output()
        pids = re.findall(r"run:webserver: started \(pid (\d+)\)", watch.output())
        assert len(pids) == 2 and not os.path.exists(f"/proc/{first}/cmdline")
        assert re.search(r"^\d\d:\d\d:\d\d   detection .* restart (\S+) s; save to ready",
                         watch.output(), re.M), watch.output()
    finally:
        watch.ctrl_c()
    none_left_within(project, 5)
    assert page(url) == ""


TICKER_DODO = dodo_py("""\
project.library("ticker", ["ticker.lisp"])
project.binary("ticker", libraries=["ticker"], entry="ticker:main",
               reload_hook="ticker:call-with-reload")
project.run("ticker", binary="ticker")
""")
# A program that writes its text every 20 ms, holding the lock its reload
# hook takes: a reload happens between two writes.
TICKER = """\
(defpackage #:ticker (:use #:cl) (:export #:main #:call-with-reload))
(in-package #:ticker)
(defvar *lock* (sb-thread:make-mutex :name "ticker"))
(defun text () "v0")
(defun call-with-reload (reload)
  (sb-thread:with-mutex (*lock*) (funcall reload)))
(defun main ()
  (loop (sb-thread:with-mutex (*lock*)
          (with-open-file (out "ticks.tmp" :direction :output :if-exists :supersede)
            (write-line (text) out))
          (rename-file "ticks.tmp" "ticks.txt"))
        (sleep 0.02)))
"""


def test_a_reload_hook_decides_where_a_reload_happens(tmp_path, store_env):
    """reload_hook= names the program's function that reloads where it may;
    a hook that never calls its argument gets the program restarted, and
    the watch says why."""
    project = write_project(tmp_path / "ticker", TICKER_DODO, {"ticker.lisp": TICKER})
    watch = Watch(project, store_env, "run:ticker")
    ticks = project / "ticks.txt"

    def wait_for_text(text: str):
        deadline = time.monotonic() + 300
        while not (ticks.exists() and ticks.read_text().strip() == text):
            assert watch.process.poll() is None, watch.output()
            assert time.monotonic() < deadline, watch.output()
            time.sleep(0.05)

    try:
        wait_for_text("v0")
        first = re.search(r"run:ticker: started \(pid (\d+)\)", watch.output()).group(1)
        (project / "ticker.lisp").write_text(TICKER.replace('"v0"', '"v1"'))
        wait_for_text("v1")
        assert f"reloaded ticker.fasl into ticker (pid {first})" in watch.output()
        # A hook that never lets a reload happen, itself reloaded.
        never = TICKER.replace("(sb-thread:with-mutex (*lock*) (funcall reload))",
                               "(declare (ignore reload)) (sleep 3600)")
        (project / "ticker.lisp").write_text(never.replace('"v0"', '"v1"'))
        watch.wait_for_status(3)
        (project / "ticker.lisp").write_text(never.replace('"v0"', '"v2"'))
        wait_for_text("v2")
        assert re.search(r"run:ticker: restarting, as ticker::?call-with-reload did not call "
                         r"its argument within 5 s", watch.output(), re.I), watch.output()
        assert len(re.findall(r"run:ticker: started", watch.output())) == 2
    finally:
        watch.ctrl_c()
    none_left_within(project, 5)
