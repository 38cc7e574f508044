"""The fault campaign, as demanding users meet it: a project, its build/,
its store and the tool store on four file systems; another user who
plants files where release dumps run; an ordinary user who builds,
watches and releases; a disk that fills up; a compile that prints 100 MB;
a remote server that lost an object or cuts a transfer short; builds of
one project at the same time. Mounts are made in mount namespaces of the
tests' own (unshare), so nothing outlives a test."""
import hashlib
import http.server
import os
import pwd
import queue
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

import doit as doit_package
from conftest import REPO, DoitRun, built, doit, write_project
from dodo_text import dodo_py
from lispbuild.sbcl.isolation import DEFAULT_RELEASE_DIR

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="creates a user (useradd): run as root")

HELLO_DODO = """\
import lispbuild

project = lispbuild.Project()
project.library("hello-util", ["package.lisp", "text.lisp"], directory="samples/hello/util")
project.library("hello", ["package.lisp", "main.lisp"], directory="samples/hello/app",
                depends_on=["hello-util"])
project.binary("hello", libraries=["hello"], entry="hello:main",
               entry_arguments="command-line-arguments", version="1.0.0",
               smoke_args=["static"])

DOIT_CONFIG = lispbuild.doit_config(project)


def task_lispbuild():
    yield from lispbuild.tasks(project)
"""


def hello_project(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "dodo.py").write_text(HELLO_DODO)
    shutil.copytree(REPO / "samples/hello", dest / "samples/hello")
    return dest


def in_mount_namespace(script: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`sh -eu` running `script` in a mount namespace of its own: its
    mounts vanish with it (as root; otherwise in a user namespace, as
    root there)."""
    unshare = ["unshare", "-m", "--propagation", "private"] if ROOT else ["unshare", "-rm"]
    return subprocess.run([*unshare, "sh", "-euc", script], capture_output=True, text=True,
                          env=env or os.environ.copy(), timeout=900)


def run_doit(out: Path, name: str, *args: str) -> str:
    """A shell line: doit with `args`, its output in OUT/NAME.txt, its exit
    code in OUT/NAME.rc."""
    return (f'if "{sys.executable}" -m doit {" ".join(args)} > "{out}/{name}.txt" 2>&1; '
            f'then echo 0 > "{out}/{name}.rc"; else echo $? > "{out}/{name}.rc"; fi')


def result(out: Path, name: str) -> DoitRun:
    return DoitRun(int((out / f"{name}.rc").read_text()), (out / f"{name}.txt").read_text())


# --- 1. any file-system layout ---------------------------------------------

def test_project_build_store_and_tool_store_on_four_file_systems(tmp_path):
    """Project, build/ (a bind mount of a fourth), LISPBUILD_STORE and the
    per-user tool store (XDG_CACHE_HOME) each on a tmpfs of their own:
    a cold build, a restore of everything across file systems, a no-op."""
    out = tmp_path / "out"
    out.mkdir()
    source = hello_project(tmp_path / "source")
    p, b, s, c = (tmp_path / d for d in "pbsc")
    script = f"""
        for d in "{p}" "{b}" "{s}" "{c}"; do mkdir -p "$d"; mount -t tmpfs -o size=512m tmpfs "$d"; done
        cp -a "{source}/." "{p}/"
        mkdir "{p}/build" && mount --bind "{b}" "{p}/build"
        stat -c %d "{p}" "{p}/build" "{s}" "{c}" > "{out}/devices"
        cd "{p}"
        export LISPBUILD_STORE="{s}" XDG_CACHE_HOME="{c}"
        {run_doit(out, "cold", "-n", "2")}
        build/bin/hello a b > "{out}/run-cold" 2>&1 || true
        find build -mindepth 1 -maxdepth 1 -exec rm -rf {{}} +
        {run_doit(out, "restored", "-n", "2")}
        build/bin/hello c > "{out}/run-restored" 2>&1 || true
        {run_doit(out, "noop")}
        find "{c}" -maxdepth 3 -type d > "{out}/tool-store"
    """
    proc = in_mount_namespace(script)
    assert proc.returncode == 0, proc.stderr
    assert len(set((out / "devices").read_text().split())) == 4
    cold, restored, noop = (result(out, n) for n in ("cold", "restored", "noop"))
    assert cold.returncode == 0, cold.output
    assert "Invalid cross-device link" not in cold.output
    assert (out / "run-cold").read_text() == "hello from a static SBCL: 2 arguments\n1: a\n2: b\n"
    assert restored.returncode == 0, restored.output
    assert {"fasl:hello/main.lisp", "core:hello", "exe:hello"} <= restored.executed
    assert (out / "run-restored").read_text().startswith("hello from a static SBCL: 1 argument")
    assert noop.returncode == 0 and not noop.executed, noop.output
    assert f"{c}/lispbuild/toolchain/objects" in (out / "tool-store").read_text().split()


# --- 4. a full disk ----------------------------------------------------------

def test_a_full_disk_is_named_and_nothing_half_written_stays(tmp_path):
    """build/ on a tmpfs too small for the core (base:hello's: hello.core is
    the one-line marker of its payload): the dump fails naming the
    full file system; then a store too small for the core: the same from
    Python's side. After room is made, the build finishes."""
    out = tmp_path / "out"
    out.mkdir()
    project = hello_project(tmp_path / "project")
    small, store = tmp_path / "small", tmp_path / "small-store"
    script = f"""
        mkdir -p "{small}" "{store}" "{project}/build"
        mount -t tmpfs -o size=24m tmpfs "{small}"
        mount --bind "{small}" "{project}/build"
        cd "{project}"
        {run_doit(out, "build-full", "-n", "2")}
        find build -name '*.base.core' -o -name '.tmp-*' -o -path '*/scratch/*' > "{out}/left-build"
        mount -o remount,size=512m "{small}"
        mount -t tmpfs -o size=24m tmpfs "{store}"
        export LISPBUILD_STORE="{store}"
        rm -rf build/.lispbuild/scratch
        {run_doit(out, "store-full", "-n", "2")}
        find "{store}" -name '.tmp-*' > "{out}/left-store"
        mount -o remount,size=512m "{store}"
        {run_doit(out, "roomy", "-n", "2")}
        build/bin/hello z > "{out}/run" 2>&1 || true
    """
    proc = in_mount_namespace(script, {**os.environ,
                                       "LISPBUILD_STORE": str(tmp_path / "empty-store")})
    assert proc.returncode == 0, proc.stderr
    full = result(out, "build-full")
    assert full.returncode != 0
    # build/ is where the small tmpfs is mounted (a bind mount).
    # The dump is base:hello's: the image the project's FASLs complete.
    assert re.search(rf"base:hello: .*the file system at {re.escape(str(project / 'build'))} "
                     rf"is full: [\d,]+ bytes free", full.output), full.output
    assert (out / "left-build").read_text() == ""
    store_full = result(out, "store-full")
    assert store_full.returncode != 0
    assert re.search(rf"base:hello: no space left on device writing {re.escape(str(store))}/"
                     rf"\S+: the file system at {re.escape(str(store))} is full", store_full.output), \
        store_full.output
    assert "Nothing half-written was kept" in store_full.output
    assert (out / "left-store").read_text() == ""
    roomy = result(out, "roomy")
    assert roomy.returncode == 0, roomy.output
    assert "fasl:hello/main.lisp" not in roomy.executed  # the FASLs made before stayed good
    assert (out / "run").read_text().startswith("hello from a static SBCL: 1 argument")


# --- 5. output bounded ---------------------------------------------------------

LOUD_DODO = dodo_py("""\
project.library("loud", ["package.lisp", "code.lisp"], directory="src")
project.binary("loud", libraries=["loud"], entry="loud:main")
""")
LOUD = """(in-package #:loud)
(eval-when (:compile-toplevel)
  (dotimes (i 1000000)
    (format t "line ~D of what this compile prints, a hundred bytes a line or so, ~
               a hundred megabytes in all~%" i)))
(defun main () 0)
"""
# doit's own peak memory, in kB: VmHWM, of this process image alone
# (getrusage's maxrss keeps the peak of the forking pytest across exec).
PEAK_MEMORY = """\
import atexit, os, re, sys
from doit.__main__ import main
atexit.register(lambda: open(os.environ["PEAK_FILE"], "w").write(
    re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read())[1]))
sys.exit(main())
"""


@pytest.mark.parametrize("fails", [False, True])
def test_a_compile_that_prints_100_mb_is_shown_bounded(tmp_path, store_env, fails):
    code = LOUD + ("(defun broken (x) (let ((y 1 2)) y))\n" if fails else "")
    project = write_project(tmp_path / "loud", LOUD_DODO, {
        "src/package.lisp": "(defpackage #:loud (:use #:cl) (:export #:main))\n",
        "src/code.lisp": code})
    (tmp_path / "peak.py").write_text(PEAK_MEMORY)
    peak = tmp_path / "peak"
    proc = subprocess.run([sys.executable, str(tmp_path / "peak.py"), "fasl"], cwd=project,
                          capture_output=True, text=True, env={**store_env,
                                                               "PEAK_FILE": str(peak)})
    output = proc.stdout + proc.stderr
    assert (proc.returncode != 0) == fails, output
    kept = project / "build/.lispbuild/output/fasl/loud/code.lisp.txt"
    assert "fasl:loud/code.lisp printed:\nline 0 of what" in output, output[:3000]
    assert re.search(r"\[\.\.\. [\d,]+ lines left out; all 1,000,0\d\d lines \([\d,]+ bytes\) "
                     r"are in build/\.lispbuild/output/fasl/loud/code\.lisp\.txt\]", output)
    assert "line 999999 of what" in output
    assert len(output) < 20_000
    if fails:
        assert re.search(r"src/code.lisp:\d+: ERROR: The LET binding spec \(Y 1 2\) is "
                         r"malformed\.", output), output
    with open(kept, "rb") as f:
        assert sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b"")) \
            >= 1_000_000
    # doit's own memory stays flat (it held the whole output before: 190 MB).
    assert int(peak.read_text()) < 80_000, f"{int(peak.read_text()) // 1024} MB"


# --- 6. the remote store heals ---------------------------------------------

class _Server(http.server.ThreadingHTTPServer):
    """A remote store in memory (GET, HEAD, PUT), in a thread; `cut`
    makes it send half of every object it is asked for, then hang up."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.data: dict[str, bytes] = {}
        self.cut = False
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/cache"


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_PUT(self):
        self.server.data[self.path] = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _answer(self, body: bool):
        data = self.server.data.get(self.path)
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not body:
            return
        if self.server.cut and "/cas/" in self.path:
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)

    def do_GET(self):
        self._answer(True)

    def do_HEAD(self):
        self._answer(False)


def remote_env(server: _Server, store: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISPBUILD_")}
    return {**env, "LISPBUILD_REMOTE": server.url, "LISPBUILD_STORE": str(store),
            **{k: str(v) for k, v in extra.items()}}


def warnings(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("warning: ")]


def test_a_lost_object_is_said_once_and_sent_again(tmp_path, shared_store):
    server = _Server()
    writer = hello_project(tmp_path / "writer")
    built(writer, env=remote_env(server, shared_store, LISPBUILD_REMOTE_UPLOAD=1))
    exe = (writer / "build/bin/hello").read_bytes()
    lost = f"/cache/cas/{hashlib.sha256(exe).hexdigest()}"
    assert lost in server.data
    del server.data[lost]
    reader = built(hello_project(tmp_path / "reader"), env=remote_env(server, tmp_path / "r1"))
    said = warnings(reader.output)
    assert len(said) == 1 and "but not its object" in said[0], reader.output
    # An uploading build that has the object (from its own store) sends it again.
    healer = hello_project(tmp_path / "healer")
    built(healer, env=remote_env(server, shared_store, LISPBUILD_REMOTE_UPLOAD=1))
    assert server.data.get(lost) == exe
    again = built(hello_project(tmp_path / "reader2"), "-v", "2",
                  env=remote_env(server, tmp_path / "r2"))
    assert not warnings(again.output), again.output
    assert "exe:hello: restored from the remote store" in again.output


def test_a_transfer_cut_short_is_a_connection_problem(tmp_path, shared_store):
    server = _Server()
    built(hello_project(tmp_path / "writer"),
          env=remote_env(server, shared_store, LISPBUILD_REMOTE_UPLOAD=1))
    server.cut = True
    reader = hello_project(tmp_path / "reader")
    run = built(reader, env=remote_env(server, tmp_path / "r"))
    said = warnings(run.output)
    assert len(said) == 1, run.output
    assert re.search(r"the connection was cut during GET cas/ after [\d,]+ of [\d,]+ bytes",
                     said[0]), said[0]
    assert "not JSON" not in run.output and "did not match its digest" not in run.output
    assert subprocess.run([reader / "build/bin/hello"], capture_output=True).returncode == 0


# --- 9. quiet when nothing is wrong -------------------------------------------

def test_builds_of_one_project_at_once_are_quiet_and_leave_a_no_op(tmp_path):
    project = hello_project(tmp_path / "project")
    env = {**os.environ, "LISPBUILD_STORE": str(tmp_path / "store")}
    builds = [subprocess.Popen([sys.executable, "-m", "doit", "-n", "2"], cwd=project, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
              for _ in range(4)]
    outputs = [b.communicate(timeout=600)[0] for b in builds]
    for b, output in zip(builds, outputs):
        assert b.returncode == 0, output
        assert "could not start" not in output and "fresh SBCL" not in output, output
    assert sum("waiting for another build of this project" in o for o in outputs) >= 1
    for _ in range(2):
        again = built(project)
        assert not again.executed, again.output


SLEEPER_DODO = dodo_py("""\
project.library("sleeper", ["sleeper.lisp"], directory="src")
project.binary("sleeper", libraries=["sleeper"], entry="sleeper:main")
project.run("sleeper", binary="sleeper")
""")


def test_a_running_program_does_not_hold_up_other_builds(tmp_path, store_env):
    """`doit run:NAME` of a server holds no lock while it runs."""
    project = write_project(tmp_path / "sleeper", SLEEPER_DODO, {"src/sleeper.lisp": (
        "(defpackage #:sleeper (:use #:cl) (:export #:main))\n(in-package #:sleeper)\n"
        "(defun main () (write-line \"up\") (finish-output) (sleep 30) 0)\n")})
    built(project, env=store_env)
    server = subprocess.Popen([sys.executable, "-m", "doit", "run:sleeper"], cwd=project,
                              env=store_env, stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        assert "up\n" in iter(server.stdout.readline, "")  # doit's lines, then the program's
        started = time.monotonic()
        other = built(project, env=store_env)
        assert time.monotonic() - started < 20 and not other.executed, other.output
        assert "waiting for another build" not in other.output
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


# --- 2 and 3. other users ---------------------------------------------------------

USER = "lispbuild-campaign"


@pytest.fixture(scope="module")
def ordinary_user(tmp_path_factory):
    """A user of the machine, not root, with a home; lispbuild and its
    Python libraries copied where that user can read them (run with
    Debian's python3)."""
    if not ROOT:
        pytest.skip("creates a user (useradd): run as root")
    subprocess.run(["userdel", "-r", USER], capture_output=True)
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", USER], check=True)
    shared = Path(tempfile.mkdtemp(prefix="lispbuild-campaign-"))
    shared.chmod(0o755)
    site = Path(doit_package.__file__).parent.parent
    shutil.copytree(site, shared / "site", ignore=shutil.ignore_patterns(
        "__editable__*", "pip", "pip-*", "_pytest", "pytest", "pytest-*", "__pycache__"))
    shutil.copytree(REPO / "lispbuild", shared / "src/lispbuild",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for path in [shared, *shared.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    entry = pwd.getpwnam(USER)
    yield entry, shared
    subprocess.run(["pkill", "-KILL", "-u", USER], capture_output=True)
    time.sleep(0.5)
    subprocess.run(["userdel", "-r", USER], capture_output=True)
    shutil.rmtree(shared, ignore_errors=True)


def as_user(user, shared: Path, project: Path, *args, **popen) -> subprocess.Popen:
    env = {"HOME": user.pw_dir, "USER": user.pw_name, "LANG": "C.UTF-8",
           "PATH": "/usr/bin:/bin", "PYTHONPATH": f"{shared / 'src'}:{shared / 'site'}"}
    return subprocess.Popen([shutil.which("runuser"), "-u", user.pw_name, "--", "/usr/bin/python3", "-m",
                             "doit", *args], cwd=project, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)


def user_doit(user, shared, project, *args) -> DoitRun:
    process = as_user(user, shared, project, *args)
    return DoitRun(process.wait(timeout=900), process.stdout.read())


def user_project(user, name: str) -> Path:
    project = hello_project(Path(tempfile.mkdtemp(prefix=f"lispbuild-{name}-")))
    project.chmod(0o755)
    subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(project)], check=True)
    return project


def redump(project: Path, env: dict):
    """Make the next release:hello dump again: release-core's record goes
    from the store, its outputs from build/."""
    with sqlite3.connect(project / "build/.lispbuild/digests.sqlite3") as db:
        key, = db.execute("select key from task where name = 'release-core:hello'").fetchone()
    Path(env["LISPBUILD_STORE"], "actions", key[:2], f"{key}.json").unlink()
    shutil.rmtree(project / "build/release")


def listing(directory: Path) -> list:
    """Everything under `directory`, links not followed: name, kind, owner, mtime."""
    found = []
    for top, dirs, files in os.walk(directory):
        for name in dirs + files:
            info = os.lstat(os.path.join(top, name))
            found.append((os.path.join(top, name), info.st_mode, info.st_uid, info.st_mtime_ns,
                          os.readlink(os.path.join(top, name)) if os.path.islink(
                              os.path.join(top, name)) else None))
    return sorted(found)


def test_release_directory_planted_by_another_user_changes_nothing(ordinary_user, tmp_path,
                                                                   store_env):
    """root's release dumps, with a symlink, a directory and a lock of
    another user's at the path they run in: the same bytes, nothing of
    theirs touched, nothing of root's left in /tmp."""
    user, _ = ordinary_user
    project = hello_project(tmp_path / "project")
    built(project, "-n", "2", "release:hello", env=store_env)
    # Dumped again (not restored), traced, to see where it runs.
    redump(project, store_env)
    trace = tmp_path / "trace"
    proc = subprocess.run(["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=mount", "-o",
                           str(trace), sys.executable, "-m", "doit", "-n", "2", "release:hello"],
                          cwd=project, env=store_env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    visible = re.search(rf'mount\("/proc/self/fd/\d+", "({re.escape(DEFAULT_RELEASE_DIR)}/[0-9a-f]{{16}})"',
                        trace.read_text())[1]
    exe = (project / "build/release/hello/hello").read_bytes()
    planted = Path(tempfile.mkdtemp(prefix="planted-"))
    theirs = ["runuser", "-u", USER, "--"]
    parent = Path(visible).parent
    shutil.rmtree(parent, ignore_errors=True)
    try:
        for plant in ("symlink", "directory"):
            subprocess.run([*theirs, "mkdir", "-p", "-m", "0777", str(parent)], check=True)
            os.chown(planted, user.pw_uid, user.pw_gid)
            if plant == "symlink":
                subprocess.run([*theirs, "ln", "-s", str(planted), visible], check=True)
                subprocess.run([*theirs, "touch", f"{visible}.lock"], check=True)
            else:
                subprocess.run([*theirs, "mkdir", "-m", "0777", "-p", f"{visible}/lispbuild"],
                               check=True)
                subprocess.run([*theirs, "sh", "-c", f"echo theirs > {visible}/lispbuild/"
                                                     f"sorteddir.so"], check=True)
            before = listing(parent)
            redump(project, store_env)
            again = built(project, "-n", "2", "release:hello", env=store_env)
            assert "release-core:hello" in again.executed
            assert (project / "build/release/hello/hello").read_bytes() == exe, plant
            assert list(planted.iterdir()) == [], plant
            assert listing(parent) == before, plant
            if plant == "directory":
                assert Path(f"{visible}/lispbuild/sorteddir.so").read_text() == "theirs\n"
            shutil.rmtree(parent)
    finally:
        shutil.rmtree(parent, ignore_errors=True)
        shutil.rmtree(planted, ignore_errors=True)
    assert not parent.exists()


def test_an_ordinary_user_builds_watches_and_releases(ordinary_user, tmp_path, store_env):
    """Everything but installing packages works as a user who is not
    root, and that user's release is the same bytes as root's."""
    user, shared = ordinary_user
    mine = hello_project(tmp_path / "root-project")
    built(mine, "-n", "2", "release:hello", env=store_env)
    project = user_project(user, "user")
    try:
        run = user_doit(user, shared, project, "-n", "2")
        assert run.returncode == 0, run.output
        assert (project / "build/bin/hello").stat().st_uid == user.pw_uid
        hello = subprocess.run([project / "build/bin/hello", "u"], capture_output=True,
                               text=True)
        assert hello.stdout.startswith("hello from a static SBCL: 1 argument"), hello.stdout
        release = user_doit(user, shared, project, "-n", "2", "release:hello")
        assert release.returncode == 0, release.output
        assert (project / "build/release/hello/hello").read_bytes() == \
            (mine / "build/release/hello/hello").read_bytes()
        assert not Path(DEFAULT_RELEASE_DIR).exists()
        # A watch: a save rebuilds.
        watch = as_user(user, shared, project, "watch", "exe:hello", start_new_session=True)
        try:
            lines = _read_until(watch, lambda line: re.search(r"\) (ok|failed)$", line))
            assert lines[-1].endswith("ok"), lines
            main = project / "samples/hello/app/main.lisp"
            main.write_text(main.read_text().replace("hello from", "hi from"))
            lines = _read_until(watch, lambda line: re.search(r"\) (ok|failed)$", line))
            assert "main.lisp changed" in lines[-1] and lines[-1].endswith("ok"), lines
        finally:
            os.killpg(watch.pid, signal.SIGINT)
            watch.wait(timeout=60)
        hello = subprocess.run([project / "build/bin/hello"], capture_output=True, text=True)
        assert hello.stdout.startswith("hi from a static SBCL"), hello.stdout
    finally:
        shutil.rmtree(project, ignore_errors=True)


def _read_until(process: subprocess.Popen, done, timeout: float = 300) -> list[str]:
    """Lines of the process's output, up to the first for which done(line)."""
    if not hasattr(process, "lines"):
        process.lines = queue.Queue()
        threading.Thread(target=lambda: [process.lines.put(line) for line in process.stdout],
                         daemon=True).start()
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            lines.append(process.lines.get(timeout=1).rstrip("\n"))
        except queue.Empty:
            assert process.poll() is None, "\n".join(lines)
            continue
        if done(lines[-1]):
            return lines
    raise AssertionError("\n".join(lines))
