"""Entry points as Lisp programs write them: a main of no arguments that
reads uiop:command-line-arguments or sb-ext:*posix-argv*, one of one
argument, entries that cannot be called checked when the image is dumped;
and test programs that cannot pass by being stopped."""
import os
import signal
import subprocess
import time

import pytest

from conftest import built, doit, write_project

DODO = """
import lispbuild
project = lispbuild.Project()
project.asdf_system("entries")
for name in ("uiop", "posix", "list", "optional", "macro", "two"):
    project.binary(name, libraries=["entries"], entry=f"entries:{name}-main")
project.test("slow-suite", libraries=["entries"], function="entries:slow-suite")
project.test("needy-suite", libraries=["entries"], function="entries:list-main")
DOIT_CONFIG = lispbuild.doit_config(project)
def task_lispbuild():
    yield from lispbuild.tasks(project)
"""
FILES = {
    "entries.asd": '(defsystem "entries" :depends-on ("uiop") :components ((:file "entries")))\n',
    "entries.lisp": """(defpackage #:entries (:use #:cl))
(in-package #:entries)
(defun uiop-main ()
  (format t "~{~A~^|~}~%" (uiop:command-line-arguments))
  3)
(defun posix-main ()
  (format t "~{~A~^|~}~%" (rest sb-ext:*posix-argv*)))
(defun list-main (arguments)
  (format t "~D arguments~%" (length arguments)))
(defun optional-main (&optional (arguments (uiop:command-line-arguments)))
  (format t "~{~A~^|~}~%" (reverse arguments)))
(defmacro macro-main () nil)
(defun two-main (a b) (list a b))
(defun slow-suite ()
  (format t "started~%")
  (finish-output)
  (sleep 600)
  t)
""",
}
GOOD = ["exe:uiop", "exe:posix", "exe:list", "exe:optional", "exe:slow-suite"]


@pytest.fixture(scope="module")
def entries(tmp_path_factory) -> os.PathLike:
    project = write_project(tmp_path_factory.mktemp("entries") / "entries", DODO, FILES)
    built(project, "-n", "2", *GOOD)
    return project


def run(project, name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([project / "build/bin" / name, *args],
                          capture_output=True, text=True, timeout=60)


def test_an_entry_of_no_arguments_reads_them_itself(entries):
    uiop = run(entries, "uiop", "a", "b c", "--end")
    assert (uiop.stdout, uiop.returncode) == ("a|b c|--end\n", 3), uiop.stderr
    posix = run(entries, "posix", "x", "--help")
    assert (posix.stdout, posix.returncode) == ("x|--help\n", 0), posix.stderr
    optional = run(entries, "optional", "1", "2")
    assert (optional.stdout, optional.returncode) == ("2|1\n", 0), optional.stderr


def test_an_entry_of_one_argument_gets_the_argument_list(entries):
    listed = run(entries, "list", "a", "b")
    assert (listed.stdout, listed.returncode) == ("2 arguments\n", 0), listed.stderr


@pytest.mark.parametrize("binary, message", [
    ("macro", "entry entries:macro-main: ERROR: ENTRIES::MACRO-MAIN is a macro, not a function"),
    ("two", "entry entries:two-main: ERROR: ENTRIES::TWO-MAIN requires 2 arguments; an entry"
            " takes none (it can read uiop:command-line-arguments) or one"),
    ("needy-suite", "entry entries:list-main: ERROR: the test function ENTRIES::LIST-MAIN"
                    " requires 1 argument; it is called with none"),
])
def test_an_entry_that_cannot_be_called_fails_the_dump(entries, binary, message):
    good = (entries / "build/bin/uiop").read_bytes()
    failed = doit(entries, f"exe:{binary}")
    assert failed.returncode != 0
    assert message in failed.output, failed.output
    assert not (entries / "build/bin" / binary).exists()
    assert (entries / "build/bin/uiop").read_bytes() == good


def test_a_stopped_program_exits_with_128_plus_the_signal(entries):
    # SBCL's own handler exited 0, and hung in about 1 of 13 tries: try often.
    for _ in range(10):
        program = subprocess.Popen([entries / "build/bin/slow-suite"], stdout=subprocess.PIPE,
                                   text=True)
        assert program.stdout.readline() == "started\n"
        program.send_signal(signal.SIGTERM)
        try:
            assert program.wait(timeout=10) == 128 + signal.SIGTERM
        finally:
            program.kill()
            program.wait()


def test_a_test_that_takes_too_long_is_stopped_and_fails(entries):
    env = {**os.environ, "LISPBUILD_TIME_LIMIT": "3"}
    start = time.monotonic()
    failed = doit(entries, "test:slow-suite", env=env)
    assert failed.returncode != 0
    assert "slow-suite was stopped after 3 s (the time limit; set LISPBUILD_TIME_LIMIT" \
        in failed.output, failed.output
    assert time.monotonic() - start < 60
