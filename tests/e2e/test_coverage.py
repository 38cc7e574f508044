"""`doit coverage`: the project's libraries instrumented, every suite run,
the runs merged (a form covered by any run is covered), sb-cover's HTML
report, lcov.info and the terminal's table, for a library whose coverage
is known."""
import re

from conftest import doit, write_project
from dodo_text import dodo_py

DODO = dodo_py("""\
project.library("sign", ["sign.lisp"], directory="src")
project.library("sign-tests", ["tests.lisp"], directory="src", depends_on=["sign"])
project.test("positive", libraries=["sign-tests"], function="sign-tests:positive")
project.test("negative", libraries=["sign-tests"], function="sign-tests:negative")
""")
FILES = {
    # One branch point; each suite takes one way of it; UNUSED never runs.
    "src/sign.lisp": """\
(defpackage #:sign (:use #:cl) (:export #:sign #:unused))
(in-package #:sign)

(defun sign (x)
  (if (plusp x)
      :positive
      :other))

(defun unused ()
  (print "never called"))
""",
    "src/tests.lisp": """\
(defpackage #:sign-tests (:use #:cl) (:export #:positive #:negative))
(in-package #:sign-tests)
(defun positive () (eq (sign:sign 1) :positive))
(defun negative () (eq (sign:sign -1) :other))
""",
}


def test_coverage_of_two_suites_merged(tmp_path, store_env):
    project = write_project(tmp_path / "cov", DODO, FILES)
    result = doit(project, "coverage", env=store_env)
    assert result.returncode == 0, result.output
    # The terminal's table: every form of sign.lisp but UNUSED's body ran;
    # both ways of the IF, one in each suite.
    assert re.search(r"^src/sign\.lisp\s+75\.0%\s+6/8\s+100\.0%\s+2/2\s*$", result.output,
                     re.M), result.output
    assert re.search(r"^src/tests\.lisp\s+100\.0%\s+12/12\s+-\s+0/0\s*$", result.output,
                     re.M), result.output
    runs = project / "build/coverage/runs"
    positive, negative = (runs / "positive.sexp").read_text(), (runs / "negative.sexp").read_text()
    assert "((:THEN 1 3 2) . T)" in positive and "((:ELSE 1 3 2) . T)" not in positive
    assert "((:ELSE 1 3 2) . T)" in negative and "((:THEN 1 3 2) . T)" not in negative
    # lcov: DEFPACKAGE's and DEFUN's lines ran when the image was built and
    # count as covered; UNUSED's body (line 10) is the one line missed.
    lcov = (project / "build/coverage/lcov.info").read_text()
    record = lcov[lcov.index("SF:src/sign.lisp"):]
    record = record[:record.index("end_of_record")]
    assert "DA:1,1" in record and "DA:9,1" in record and "DA:10,0" in record
    assert [line for line in record.splitlines() if line.endswith(",0")] == ["DA:10,0"]
    assert "BRDA:5,0,0,1\nBRDA:5,0,1,1" in record and "LH:7" in record and "LF:8" in record
    index = (project / "build/coverage/index.html").read_text()
    assert "sign.lisp" in index and "tests.lisp" in index


def test_a_suite_that_fails_still_counts_and_fails_the_command(tmp_path, store_env):
    files = dict(FILES)
    files["src/tests.lisp"] = files["src/tests.lisp"].replace(":other))", ":positive))")
    project = write_project(tmp_path / "cov", DODO, files)
    result = doit(project, "coverage", env=store_env)
    assert result.returncode != 0, result.output
    assert "test suites that did not pass: negative (1)" in result.output, result.output
    assert re.search(r"^src/sign\.lisp\s+75\.0%\s+6/8\s+100\.0%\s+2/2", result.output, re.M), \
        result.output
