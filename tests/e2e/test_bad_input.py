"""Bad input fails its task with a message naming the file, line or symbol,
and leaves the earlier good artifacts under build/ and the store intact."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import built, doit, write_project
from dodo_text import dodo_py

DODO = dodo_py("""\
project.library("demo", {sources!r}, directory="src"{options})
project.binary("demo", libraries=["demo"], entry="demo:main",
               entry_arguments="command-line-arguments")
{extra}
""")

PACKAGE = "(defpackage #:demo (:use #:cl) (:export #:main))\n"
GOOD = """(in-package #:demo)

(defun twice (x)
  (* 2 x))

(defun main (args)
  (format t "~D~%" (twice (length args)))
  0)
"""


def dodo(sources=("package.lisp", "code.lisp"), options="", extra=""):
    return DODO.format(sources=list(sources), options=options, extra=extra)


def snapshot(project: Path, store: Path) -> dict:
    files = {}
    for top in (project / "build", store):
        for path in top.rglob("*"):
            if path.is_file() and ".lispbuild" not in path.parts:
                files[path] = path.read_bytes()
    return files


@pytest.fixture
def demo(tmp_path):
    """A small project, built once with its own store; the test breaks it."""
    project = write_project(tmp_path / "demo", dodo(),
                            {"src/package.lisp": PACKAGE, "src/code.lisp": GOOD})
    built(project)
    assert subprocess.run([project / "build/bin/demo", "a"], capture_output=True,
                          text=True).stdout == "2\n"
    return project


def fails_keeping_everything(project: Path, env=None, may_rebuild=()) -> str:
    """Run doit, which must fail; every file of build/ and the store must be
    as it was, but for the good outputs of tasks under `may_rebuild`
    (e.g. build/core) that ran before the failing one."""
    before = snapshot(project, project / "cache")
    result = doit(project, env=env)
    assert result.returncode != 0, result.output
    after = snapshot(project, project / "cache")
    for path, data in before.items():
        if not any(path.is_relative_to(project / d) for d in may_rebuild):
            assert after.get(path) == data, f"{path} changed"
    assert subprocess.run([project / "build/bin/demo", "a"], capture_output=True,
                          text=True).stdout == "2\n"
    return result.output


def test_reader_error_names_file_and_line(demo):
    (demo / "src/code.lisp").write_text(GOOD.replace("(* 2 x))", "(* 2 x)))"))
    output = fails_keeping_everything(demo)
    assert "TaskFailed - taskid:fasl:demo/code.lisp" in output
    assert "src/code.lisp:4: read error: unmatched close parenthesis" in output


def test_unclosed_form_names_the_line_it_starts_on(demo):
    (demo / "src/code.lisp").write_text(GOOD.replace("(* 2 x))", "(* 2 x)"))
    output = fails_keeping_everything(demo)
    assert "src/code.lisp:3: read error: end of file inside the form that starts on line 3" in output


def test_compile_error_names_file_line_and_condition(demo):
    (demo / "src/code.lisp").write_text(GOOD.replace("(* 2 x))", "(let ((y 1 2)) (* x y)))"))
    output = fails_keeping_everything(demo)
    assert "src/code.lisp:3: ERROR: The LET binding spec (Y 1 2) is malformed." in output


def test_error_at_compile_time_is_reported(demo):
    (demo / "src/code.lisp").write_text("(in-package #:nowhere)\n" + GOOD)
    output = fails_keeping_everything(demo)
    assert 'src/code.lisp: ERROR: The name "NOWHERE" does not designate any package.' in output


def test_full_warning_fails_by_default(demo):
    (demo / "src/code.lisp").write_text(GOOD.replace("(* 2 x))", "(* 2 x undefined-thing))"))
    # The file compiles (a later file might define the variable); the
    # library's check, with all of it loaded, fails: the executable stays.
    output = fails_keeping_everything(demo, may_rebuild=("build/fasl",))
    assert "TaskFailed - taskid:lib:demo" in output
    assert "src/code.lisp:3: WARNING: undefined variable: DEMO::UNDEFINED-THING" in output


def test_full_warning_passes_when_configured(demo):
    (demo / "src/code.lisp").write_text(GOOD.replace("(* 2 x))", "(* 2 x (car (foo))))")
                                        .replace("(defun twice", "(defun foo () (list 1))\n"
                                                 "(declaim (ftype (function () fixnum) foo))\n"
                                                 "(defun twice"))
    assert doit(demo).returncode != 0
    (demo / "dodo.py").write_text(dodo(options=", fail_on_warning=False"))
    result = built(demo)
    assert "WARNING" in result.output  # still shown
    assert "fasl:demo/code.lisp" in result.executed


def test_missing_source_file_is_named(demo):
    (demo / "dodo.py").write_text(dodo(sources=("package.lisp", "code.lisp", "gone.lisp")))
    output = fails_keeping_everything(demo)
    assert "fasl:demo/gone.lisp: input file src/gone.lisp does not exist" in output


def test_dependency_cycle_is_named(demo):
    (demo / "dodo.py").write_text(dodo(
        extra='project.library("a", [], depends_on=["b"])\n'
              'project.library("b", [], depends_on=["c"])\n'
              'project.library("c", [], depends_on=["a"])'))
    output = fails_keeping_everything(demo)
    assert "ERROR: libraries depend on each other in a cycle: a -> b -> c -> a" in output
    assert "Traceback" not in output


def test_entry_function_that_does_not_exist(demo):
    (demo / "dodo.py").write_text(dodo().replace('entry="demo:main"', 'entry="demo:mian"'))
    output = fails_keeping_everything(demo)
    assert "entry demo:mian: ERROR: there is no symbol MIAN in package DEMO" in output


def test_foreign_symbol_nothing_provides(demo):
    (demo / "src/code.lisp").write_text(GOOD.replace(
        "(* 2 x))", '(sb-alien:alien-funcall (sb-alien:extern-alien "no_such_function_xyz"'
                    ' (function sb-alien:int (sb-alien:unsigned 32))) x))'))
    output = fails_keeping_everything(demo, may_rebuild=("build/fasl", "build/core"))
    assert "TaskFailed - taskid:linkage:demo" in output
    assert "binary demo needs foreign symbols that nothing to be linked provides: " \
           "no_such_function_xyz" in output
    assert "searched, in link order: build/obj/lispbuild/compat.o" in output
    assert "musl/libc.a" in output


def test_a_failed_link_names_what_needs_the_undefined_symbols(demo, tmp_path):
    """An archive whose member (pulled in for what the image calls) needs
    symbols nothing defines: the message lists them by archive member, the
    in the linker's order, and names the file with the linker's whole output."""
    (tmp_path / "needy.c").write_text(
        "extern int lispbuild_test_missing_one(int), lispbuild_test_missing_two(int);\n"
        "int needy(int x) { return lispbuild_test_missing_one(x) + "
        "lispbuild_test_missing_two(x); }\n")
    subprocess.run(["gcc", "-O2", "-c", tmp_path / "needy.c", "-o", tmp_path / "needy.o"],
                   check=True)
    archive = tmp_path / "libneedy.a"
    subprocess.run(["ar", "rcs", archive, tmp_path / "needy.o"], check=True)
    (demo / "dodo.py").write_text(dodo().replace(
        'entry="demo:main"', f'entry="demo:main", archives=["{archive}"]'))
    (demo / "src/code.lisp").write_text(GOOD.replace(
        "(* 2 x))", '(sb-alien:alien-funcall (sb-alien:extern-alien "needy"'
                    ' (function sb-alien:int sb-alien:int)) x))'))
    output = fails_keeping_everything(demo, may_rebuild=("build/fasl", "build/core",
                                                         "build/linkage", "build/obj"))
    assert ("runtime:demo: the static link failed: 2 undefined symbols, by what needs them, "
            f"in the linker's order:\n  {archive}(needy.o): lispbuild_test_missing_one, "
            "lispbuild_test_missing_two\n"
            "the whole output: build/.lispbuild/output/runtime/demo.txt") in output, output
    kept = (demo / "build/.lispbuild/output/runtime/demo.txt").read_text()
    assert "undefined reference to `lispbuild_test_missing_one'" in kept


def test_missing_toolchain_names_the_debian_package(demo, tmp_path):
    bin_dir = tmp_path / "bin"  # sbcl and python, but no musl-gcc
    bin_dir.mkdir()
    os.symlink(shutil.which("sbcl"), bin_dir / "sbcl")
    (demo / "src/code.lisp").write_text(GOOD.replace("(* 2 x)", "(* 3 x)"))
    env = {**os.environ, "PATH": str(bin_dir)}
    output = fails_keeping_everything(demo, env=env, may_rebuild=("build/fasl", "build/core"))
    assert "musl-gcc is not on PATH: install the Debian package musl-tools" in output
