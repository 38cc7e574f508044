"""Undefined functions, variables and types are reported at the library's
end, as ASDF's one compilation unit reports them: a function a later file
of the library defines is not reported; one nothing defines is, with its
file and line, also when the file that refers to it is not recompiled."""
import subprocess

from conftest import built, doit, write_project
from dodo_text import dodo_py

DODO = dodo_py("""\
project.library("g", ["package.lisp", "a.lisp", "b.lisp"]{options})
project.binary("g", libraries=["g"], entry="g:main")
""")
PACKAGE = "(defpackage #:g (:use #:cl) (:export #:main))\n"
A = """(in-package #:g)
(defun main ()
  (print (later 1))
  (print *later*)
  (print (typep 1 'later-type))
  (when (rest sb-ext:*posix-argv*) (never))
  0)
"""
B = """(in-package #:g)
(defun later (x) (1+ x))
(defvar *later* 3)
(deftype later-type () 'integer)
"""


def test_only_what_the_library_leaves_undefined_is_reported(tmp_path, store_env):
    project = write_project(tmp_path / "g", DODO.format(options=""),
                            {"package.lisp": PACKAGE, "a.lisp": A, "b.lisp": B})
    result = built(project, "-n", "2", env=store_env)
    assert "a.lisp:2: STYLE-WARNING: undefined function: G::NEVER" in result.output
    reported = [line for line in result.output.splitlines() if "undefined" in line]
    assert reported == ["a.lisp:2: STYLE-WARNING: undefined function: G::NEVER"], result.output
    run = subprocess.run([project / "build/bin/g"], capture_output=True, text=True)
    assert run.stdout.split() == ["2", "3", "T"], run

    # b.lisp no longer defines LATER: a.lisp, not recompiled, still refers to it.
    (project / "b.lisp").write_text(B.replace("(defun later (x) (1+ x))\n", ""))
    result = built(project, env=store_env)
    assert "fasl:g/a.lisp" not in result.executed and "lib:g" in result.executed
    assert "a.lisp:2: STYLE-WARNING: undefined function: G::LATER" in result.output
    assert "G::NEVER" in result.output

    # Back as it was: restored from the store, and nothing more to say.
    (project / "b.lisp").write_text(B)
    result = built(project, env=store_env)
    assert "undefined" not in result.output, result.output


def test_a_variable_still_undefined_fails_the_library(tmp_path, store_env):
    files = {"package.lisp": PACKAGE, "a.lisp": A, "b.lisp": B.replace("(defvar *later* 3)\n", "")}
    project = write_project(tmp_path / "g", DODO.format(options=""), files)
    result = doit(project, env=store_env)
    assert result.returncode != 0
    assert "TaskFailed - taskid:lib:g" in result.output
    assert "a.lisp:2: WARNING: undefined variable: G::*LATER*" in result.output
    assert not (project / "build/bin/g").exists()

    (project / "dodo.py").write_text(DODO.format(options=", fail_on_warning=False"))
    result = built(project, env=store_env)
    assert "a.lisp:2: WARNING: undefined variable: G::*LATER*" in result.output
