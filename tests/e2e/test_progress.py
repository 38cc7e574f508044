"""The status line on a terminal: [done/total] counting only the tasks
that run, the elapsed time, and what tasks said written above it."""
import os
import pty
import re
import subprocess
import sys

import pytest

from conftest import write_project
from dodo_text import dodo_py

DODO = dodo_py("""\
project.library("greeter", ["package.lisp", "main.lisp"])
project.binary("greeter", libraries=["greeter"], entry="greeter:main")
""")
FILES = {
    "package.lisp": "(defpackage #:greeter (:use #:cl) (:export #:main))\n",
    "main.lisp": "(in-package #:greeter)\n(defun main () (helper) 0)\n",
}
STATUS = re.compile(r"\x1b\[K\[(\d+)/(\d+)\] (\d+\.\d) s ([^\r\n\x1b]*)")


def on_a_terminal(project, env, *args) -> tuple[int, str]:
    """doit run with a pseudo-terminal as its output, and what it wrote."""
    main, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "doit", *args], cwd=project, env=env,
                               stdout=terminal, stderr=terminal, stdin=subprocess.DEVNULL)
    os.close(terminal)
    written = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        written += chunk
    os.close(main)
    return process.wait(), written.decode(errors="replace")


def test_a_terminal_sees_done_over_total_and_the_words_of_tasks(tmp_path, store_env):
    project = write_project(tmp_path / "greeter", DODO, FILES)
    code, written = on_a_terminal(project, store_env, "-n", "2")
    assert code == 0, written
    statuses = STATUS.findall(written)
    # package.lisp, main.lisp, the library's check, compat.c, base, core,
    # linkage, runtime, exe.
    assert statuses[-1][:2] == ("9", "9") and statuses[-1][3] == "done", written
    assert {total for _, total, _, _ in statuses} == {"9"}, written
    assert [int(done) for done, *_ in statuses] == sorted(int(done) for done, *_ in statuses)
    # A diagnostic is written above the status line, on lines of its own.
    warning = re.search(r"\x1b\[K(main\.lisp:2: STYLE-WARNING: undefined function: "
                        r"GREETER::HELPER)\r?\n", written)
    assert warning, written

    # An edit: only what it changes is counted.
    (project / "main.lisp").write_text("(in-package #:greeter)\n(defun main () 1)\n")
    code, written = on_a_terminal(project, store_env, "-n", "2")
    assert code == 0, written
    final = STATUS.findall(written)[-1]
    assert final[0] == final[1] and final[3] == "done", written
    assert int(final[1]) == 4  # main.lisp, the library's check, the core, the exe: no relink
    assert "helper" not in written.lower()


def test_a_log_gets_doits_own_lines(tmp_path):
    project = write_project(tmp_path / "greeter", DODO, FILES)
    own_store = {k: v for k, v in os.environ.items() if k != "LISPBUILD_STORE"}
    result = subprocess.run([sys.executable, "-m", "doit"], cwd=project, env=own_store,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "\x1b" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert ".  fasl:greeter/main.lisp" in lines and ".  exe:greeter" in lines
    # What the task said follows its line.
    assert re.search(r"main\.lisp:2: STYLE-WARNING: undefined function: GREETER::HELPER",
                     result.stdout), result.stdout


FLEXI_DODO = dodo_py("""\
project.asdf_system("app")
project.binary("app", libraries=["app"], entry="app:main")
""")
FLEXI_APP = {
    "app.asd": '(defsystem "app" :depends-on ("flexi-streams") :components ((:file "app")))\n',
    "app.lisp": "(defpackage #:app (:use #:cl))\n(in-package #:app)\n"
                "(defun main () (print (flexi-streams:octets-to-string #(104 105))) (helper) 0)\n",
}


def test_warnings_outside_the_project_are_counted_per_library(tmp_path):
    own_store = {k: v for k, v in os.environ.items() if k != "LISPBUILD_STORE"}
    project = write_project(tmp_path / "quiet", FLEXI_DODO, FLEXI_APP)
    result = subprocess.run([sys.executable, "-m", "doit", "-n", "2"], cwd=project,
                            env=own_store, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "/usr/share/common-lisp" not in result.stdout + result.stderr
    summary = re.search(r"^warnings in code outside the project \(flexi-streams (\d+)\); "
                        r"LISPBUILD_WARNINGS=all shows them$", result.stdout, re.MULTILINE)
    assert summary and int(summary.group(1)) > 0, result.stdout
    # The project's own, in full.
    assert "app.lisp:3: STYLE-WARNING: undefined function: APP::HELPER" in result.stdout

    everything = write_project(tmp_path / "loud", FLEXI_DODO, FLEXI_APP)
    result = subprocess.run([sys.executable, "-m", "doit", "-n", "2"], cwd=everything,
                            env={**own_store, "LISPBUILD_WARNINGS": "all"},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    shown = re.findall(r"^/usr/share/common-lisp/source/cl-flexi-streams/\S+:\d+: "
                       r"(?:STYLE-)?WARNING.*", result.stdout, re.MULTILINE)
    assert len(shown) == int(summary.group(1)), result.stdout
    # Compiled file by file, flexi-streams calls functions its later files
    # define; at the library's end none of them is undefined.
    assert not [line for line in shown if "undefined" in line], shown


RUN_DODO = DODO.replace('entry="greeter:main")', 'entry="greeter:main")\n'
                        'project.run("greeter", binary="greeter")')


def test_a_programs_words_are_not_written_over(tmp_path, store_env):
    """A run task writes to the terminal itself, below its status line;
    its last line, even without a newline, stays, and the build ends with
    its final status."""
    project = write_project(tmp_path / "greeter", RUN_DODO, {
        **FILES, "main.lisp": '(in-package #:greeter)\n'
                              '(defun main () (princ "no newline at the end") 0)\n'})
    code, written = on_a_terminal(project, store_env, "-n", "2", "run:greeter")
    assert code == 0, written
    assert re.search(r"\[\d+/\d+\] [\d.]+ s run:greeter\r?\nno newline at the end\r?\n",
                     written), written
    assert STATUS.findall(written)[-1][3] == "done", written


WORDS_DODO = dodo_py("""\
project.library("words", ["early.lisp", "late.lisp"])
project.binary("words", libraries=["words"], entry="cl-user::late-main")
""")
WORDS = {"early.lisp": '(format t "early.lisp loads~%")\n(defun early () 0)\n',
         "late.lisp": '(eval-when (:compile-toplevel) (format t "late.lisp compiles~%"))\n'
                      "(defun late-main () (early))\n"}


@pytest.mark.parametrize("fresh", ["", "1"])
def test_a_compile_shows_its_own_words_not_those_of_the_files_it_loads(tmp_path, fresh):
    """What a project file's compile prints is shown; what the earlier
    files print as they are loaded before it is not (they said it when the
    program runs), in a fresh SBCL as in a worker's child. (Each with a
    store of its own: a compile restored from another prints nothing.)"""
    project = write_project(tmp_path / "words", WORDS_DODO, WORDS)
    own_store = {k: v for k, v in os.environ.items() if k != "LISPBUILD_STORE"}
    result = subprocess.run([sys.executable, "-m", "doit", "fasl"], cwd=project,
                            env={**own_store, "LISPBUILD_FRESH": fresh},
                            capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "fasl:words/late.lisp printed:\nlate.lisp compiles" in output, output
    assert "early.lisp loads" not in output, output
