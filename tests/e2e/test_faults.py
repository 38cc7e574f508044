"""Faults and hostile input: a damaged store never puts a wrong byte under
build/, a build killed at any point is mended by the next one, and input
that once hung or crashed doit fails its task with a message."""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import DoitRun, built, doit, write_project
from lispbuild.digest import hash_file
from lispbuild.store import Store
from test_bad_input import GOOD, PACKAGE, dodo
from dodo_text import dodo_py

OUTPUTS = ("build/fasl/demo/package.fasl", "build/fasl/demo/code.fasl",
           "build/core/demo.core", "build/core/demo.base.core", "build/runtime/demo",
           "build/bin/demo")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """The demo project, built once with its own store; each test damages a
    copy of it."""
    project = write_project(tmp_path_factory.mktemp("faults") / "demo", dodo(),
                            {"src/package.lisp": PACKAGE, "src/code.lisp": GOOD})
    built(project)
    return project


def copy_of(demo: Path, dest: Path) -> Path:
    shutil.copytree(demo, dest, symlinks=True)
    return dest


def records(project: Path) -> dict[str, tuple[str, dict]]:
    """Each task's action key and outputs, as build/ recorded them (but
    lispbuild's own, kept in its tool store)."""
    with sqlite3.connect(project / "build/.lispbuild/digests.sqlite3") as db:
        return {name: (key, json.loads(outputs))
                for name, key, outputs in db.execute("select name, key, outputs from task")
                if not name.startswith("lisp:")}


def runs_correctly(project: Path) -> bool:
    run = subprocess.run([project / "build/bin/demo", "a"], capture_output=True, text=True)
    return run.returncode == 0 and run.stdout == "2\n"


def consistent(project: Path):
    """Every output under build/ holds the bytes its task's record names,
    the store holds nothing bad, and the program runs."""
    store = Store(project / "cache")
    for name, (key, outputs) in records(project).items():
        for role, output in outputs.items():
            assert store.has_object(output["sha256"]), (name, role)
    for path in OUTPUTS:
        sha = hash_file(project / path)
        assert any(sha == o["sha256"] for _, outputs in records(project).values()
                   for o in outputs.values()), path
    lines = []
    assert store.check(lines.append)["removed"] == 0, lines
    assert runs_correctly(project)
    leftovers = [p for p in (project / "build").rglob("*")
                 if p.name.startswith(".tmp-") or p.parent.name == "scratch"]
    assert not leftovers, leftovers


def object_of(project: Path, task: str, role: str) -> Path:
    return Store(project / "cache").object_path(records(project)[task][1][role]["sha256"])


def record_of(project: Path, task: str) -> Path:
    key = records(project)[task][0]
    return project / "cache/actions" / key[:2] / f"{key}.json"


def overwrite(path: Path, data: bytes):
    os.chmod(path, 0o644)
    path.write_bytes(data)


DAMAGES = {"flipped": lambda b: b[:100] + bytes([b[100] ^ 0x10]) + b[101:],
           "truncated": lambda b: b[:len(b) // 2], "emptied": lambda b: b"",
           "appended": lambda b: b + b"\0"}


@pytest.mark.parametrize("damage", DAMAGES)
# base:demo holds the image (the development executable's payload, the
# project's FASLs, completes it).
@pytest.mark.parametrize("task,role", [("fasl:demo/code.lisp", "fasl"), ("base:demo", "core"),
                                       ("runtime:demo", "runtime"), ("exe:demo", "exe")])
def test_a_damaged_object_is_never_restored(demo, tmp_path, task, role, damage):
    project = copy_of(demo, tmp_path / "demo")
    good = {path: (project / path).read_bytes() for path in OUTPUTS}
    damaged = object_of(project, task, role)
    overwrite(damaged, DAMAGES[damage](damaged.read_bytes()))
    shutil.rmtree(project / "build")  # everything comes from the store
    result = built(project, "-n", "2")
    assert "did not match its digest and was removed" in result.output, result.output
    assert task in result.executed
    consistent(project)
    if task != "base:demo":  # only a dump gives other bytes when it runs again
        assert {path: (project / path).read_bytes() for path in OUTPUTS} == good
    assert not built(project, "-n", "2").executed - {"lib:demo"}


BAD_RECORDS = {
    "list": "[]", "empty": "{}", "null outputs": '{"version": 1, "outputs": null}',
    "not json": "{\"outp",
    "wrong role": '{"version": 1, "outputs": {"program": {"sha256": "%s", "executable": true}}}',
    "a path": '{"version": 1, "outputs": {"exe": {"sha256": "/bin/ls", "executable": true}}}',
    "a relative path": '{"version": 1, "outputs": {"exe": {"sha256": "../../../../etc/shadow", '
                       '"executable": true}}}',
    "another version": '{"version": 0, "outputs": {"exe": {"sha256": "%s", "executable": true}}}',
}


@pytest.mark.parametrize("record", BAD_RECORDS)
def test_a_record_of_the_wrong_shape_is_treated_as_absent(demo, tmp_path, record):
    project = copy_of(demo, tmp_path / "demo")
    good = (project / "build/bin/demo").read_bytes()
    path = record_of(project, "exe:demo")
    overwrite(path, BAD_RECORDS[record].replace("%s", "ab" * 32).encode())
    shutil.rmtree(project / "build")
    result = built(project, "-n", "2")
    assert "exe:demo" in result.executed and "restored" not in result.output.split(
        "exe:demo")[-1].split("\n")[0]
    assert (project / "build/bin/demo").read_bytes() == good
    consistent(project)


def test_damaged_symbol_records_are_derived_again(demo, tmp_path):
    project = copy_of(demo, tmp_path / "demo")
    for path in (project / "cache/derived/symbols").rglob("*.json"):
        overwrite(path, b"[]")
    os.unlink(record_of(project, "linkage:demo"))
    shutil.rmtree(project / "build")
    result = built(project)
    assert "linkage:demo" in result.executed
    consistent(project)


def test_store_check_reports_and_removes_what_is_bad(demo, tmp_path):
    project = copy_of(demo, tmp_path / "demo")
    fasl = object_of(project, "fasl:demo/code.lisp", "fasl")
    overwrite(fasl, fasl.read_bytes()[:-3])
    overwrite(record_of(project, "exe:demo"), b"[]")
    check = doit(project, "store-check")
    assert check.returncode == 1, check.output
    assert f"removed objects/{fasl.parent.name}/{fasl.name}: its bytes do not match" \
        in check.output
    # The object; the records naming it (under the compile's full, base and
    # trace keys: reuse.py); the executable's.
    assert "removed actions/" in check.output and "5 removed" in check.output, check.output
    again = doit(project, "store-check")
    assert again.returncode == 0 and " 0 removed" in again.output, again.output
    shutil.rmtree(project / "build")
    assert {"fasl:demo/code.lisp", "exe:demo"} <= built(project).executed
    consistent(project)


def test_a_build_killed_at_any_point_is_mended_by_the_next(tmp_path):
    """kill -9 of doit during compiles, the dump, the link, store writes and
    restores (points spread over a cold build, then over a restore)."""
    source = write_project(tmp_path / "source", dodo(),
                           {"src/package.lisp": PACKAGE, "src/code.lisp": GOOD})
    started = time.monotonic()
    built(copy_of(source, tmp_path / "timed"))
    cold = time.monotonic() - started
    points = [("cold", cold * f) for f in (0.1, 0.25, 0.4, 0.55, 0.7, 0.85)]
    points += [("restore", s) for s in (0.3, 0.6)]
    for n, (kind, after) in enumerate(points):
        project = copy_of(tmp_path / "timed" if kind == "restore" else source,
                          tmp_path / f"killed-{n}")
        shutil.rmtree(project / "build", ignore_errors=True)
        build = subprocess.Popen([sys.executable, "-m", "doit", "-n", "2"], cwd=project,
                                 start_new_session=True, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        time.sleep(after)
        os.kill(build.pid, signal.SIGKILL)
        build.wait()
        time.sleep(0.5)  # doit's workers end with it
        built(project, "-n", "2")
        consistent(project)
        assert not built(project).executed - {"lib:demo"}


def test_a_directory_where_a_source_should_be_fails_and_does_not_hang(demo, tmp_path):
    project = copy_of(demo, tmp_path / "demo")
    (project / "src/code.lisp").unlink()
    (project / "src/code.lisp").mkdir()
    result = subprocess.run([sys.executable, "-m", "doit", "-n", "2"], cwd=project,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "fasl:demo/code.lisp: cannot read input file src/code.lisp: Is a directory" \
        in result.stdout + result.stderr, result.stdout + result.stderr
    assert runs_correctly(project)


def test_a_state_file_of_garbage_and_scratch_of_a_killed_build_are_mended(demo, tmp_path):
    project = copy_of(demo, tmp_path / "demo")
    state = project / "build/.lispbuild"
    (state / "digests.sqlite3").write_bytes(b"garbage " * 1000)
    dead = 2**22 + 7  # above Linux's pid_max: no such process
    left = [state / f"scratch/{dead}-job-x/code.fasl", project / f"build/bin/.tmp-{dead}-a",
            state / f"workers/requests/{dead}/x.lisp"]
    for path in left:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("half")
    result = built(project)
    assert not result.executed - {"lib:demo"}, result.output  # the outputs are still good
    assert not any(path.exists() for path in left)
    consistent(project)


HOSTILE_DODOS = {
    "a library named ..": ('project.library("..", ["a.lisp"])', "library name '..'"),
    "a wildcard in a source": ('project.library("w", ["ma*in[1].lisp"])',
                               "source 'ma*in[1].lisp' contains one of *?["),
    "an absolute source": ('project.library("w", ["/etc/passwd.lisp"])',
                           "source '/etc/passwd.lisp' must be a path inside"),
    "a source outside": ('project.library("w", ["../x.lisp"])',
                         "source '../x.lisp' must be a path inside"),
    "a binary named .": ('project.binary(".", libraries=[], entry="a:b")', "binary name '.'"),
}


@pytest.mark.parametrize("case", HOSTILE_DODOS)
def test_hostile_declarations_are_refused_before_anything_runs(tmp_path, case):
    line, message = HOSTILE_DODOS[case]
    project = write_project(tmp_path / "p", f"import lispbuild\nproject = lispbuild.Project()\n"
                            f"{line}\nDOIT_CONFIG = lispbuild.doit_config(project)\n"
                            f"def task_l():\n    yield from lispbuild.tasks(project)\n", {})
    result = doit(project)
    assert result.returncode != 0 and message in result.output, result.output
    assert "Traceback" not in result.output
    assert not (project / "cache").exists()


def test_a_project_path_with_a_wildcard_is_refused_with_a_message(tmp_path):
    project = write_project(tmp_path / "p[x]", dodo(),
                            {"src/package.lisp": PACKAGE, "src/code.lisp": GOOD})
    result = doit(project)
    assert result.returncode != 0 and "SBCL reads as a wildcard" in result.output, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("form,task,message", [
    ("(eval-when (:compile-toplevel) (sb-ext:exit))", "fasl:demo/code.lisp",
     "SBCL exited with code 0 without writing code.fasl"),
    ("(eval-when (:compile-toplevel) (sb-unix:unix-kill (sb-unix:unix-getpid) 9))",
     "fasl:demo/code.lisp", "SBCL was killed by SIGKILL"),
    ("(sb-ext:exit :code 3 :abort t)", "core:demo", "SBCL exited with code 3 without writing"),
])
def test_a_process_that_exits_or_is_killed_is_named(demo, tmp_path, form, task, message):
    project = copy_of(demo, tmp_path / "demo")
    (project / "src/code.lisp").write_text(GOOD + form + "\n")
    result = doit(project, "-n", "2")
    assert result.returncode != 0
    assert f"{task}: {message}" in result.output, result.output
    assert "Traceback" not in result.output and "FileNotFoundError" not in result.output
    assert runs_correctly(project)


def test_a_file_without_in_package_is_read_in_cl_user(tmp_path):
    project = write_project(tmp_path / "p", dodo_py("""\
project.library("plain", ["main.lisp"])
project.binary("plain", libraries=["plain"], entry="cl-user:main")
"""), {"main.lisp": "(defun main () (format t \"~A~%\" (package-name *package*)) 0)\n"})
    built(project)
    run = subprocess.run([project / "build/bin/plain"], capture_output=True, text=True)
    assert run.stdout == "COMMON-LISP-USER\n"


def test_a_no_op_in_a_read_only_build_directory(demo, tmp_path):
    """An archived tree whose build/ is mounted read-only still says
    "nothing to do" (a bind mount: root ignores file modes)."""
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs unshare -m (root)")
    project = copy_of(demo, tmp_path / "demo")
    script = (f"mount --bind -o ro build build && touch build/x 2>/dev/null && exit 9; "
              f"{sys.executable} -m doit -n 2")
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=project,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "-- exe:demo" in result.stdout
    assert not DoitRun(0, result.stdout).executed - {"lib:demo"}, result.stdout
