"""A project as a Lisp programmer has it: an .asd whose system is a
program (ASDF's program-op), `lispbuild init`, then `doit -n 2`: the
binary the .asd declares, run as UIOP's image runs its entry."""
import subprocess
import sys
from pathlib import Path

from conftest import built, doit

ASD = """\
(defsystem "greet"
  :version "0.3.0"
  :depends-on ("alexandria")
  :components ((:file "main"))
  :build-operation "program-op"
  :build-pathname "bin/greeter"
  :entry-point "greet:main")
"""
MAIN = """\
(defpackage #:greet (:use #:cl) (:export #:main))
(in-package #:greet)
(defun main ()
  (let ((args (uiop:command-line-arguments)))
    (format t "hello ~{~A~^ ~}~%" (alexandria:ensure-list args))
    (not (member "fail" args :test #'string=))))
"""


def test_lispbuild_init_then_doit_builds_the_program_the_asd_declares(tmp_path, store_env):
    project = tmp_path / "greet"
    project.mkdir()
    (project / "greet.asd").write_text(ASD)
    (project / "main.lisp").write_text(MAIN)
    lispbuild = Path(sys.executable).with_name("lispbuild")
    init = subprocess.run([lispbuild, "init"], cwd=project, capture_output=True, text=True)
    assert init.returncode == 0, init
    assert "found: greet: a program: build/bin/greeter runs greet:main" in init.stdout
    assert 'project.asdf_system("greet")' in (project / "dodo.py").read_text()
    built(project, "-n", "2", env=store_env)
    exe = project / "build/bin/greeter"
    # UIOP's entry convention: no arguments; true exits 0, false 1.
    ok = subprocess.run([exe, "static", "lisp"], capture_output=True, text=True)
    assert (ok.returncode, ok.stdout) == (0, "hello static lisp\n"), ok
    failed = subprocess.run([exe, "fail"], capture_output=True, text=True)
    assert (failed.returncode, failed.stdout) == (1, "hello fail\n"), failed
    again = subprocess.run([lispbuild, "init"], cwd=project, capture_output=True, text=True)
    assert again.returncode == 1 and "does not overwrite" in again.stderr


TEST_ASD = ASD + """
(defsystem "greet/test"
  :depends-on ("greet" "fiveam")
  :components ((:file "test"))
  :perform (test-op (o c) (symbol-call :fiveam '#:run! (find-symbol* '#:greet :greet-test))))
"""
TEST = """\
(defpackage #:greet-test (:use #:cl #:fiveam))
(in-package #:greet-test)
(def-suite greet)
(in-suite greet)
(test greets
  (is (string= (format nil "hello ~%")
               (with-output-to-string (*standard-output*) (greet:main))))
  (is (= 2 (+ 1 1))))
"""


def test_a_test_op_that_runs_fiveam_is_a_suite_whose_verdict_counts(tmp_path, store_env):
    project = tmp_path / "greet"
    project.mkdir()
    (project / "greet.asd").write_text(TEST_ASD)
    (project / "main.lisp").write_text(MAIN)
    (project / "test.lisp").write_text(TEST)
    lispbuild = Path(sys.executable).with_name("lispbuild")
    init = subprocess.run([lispbuild, "init"], cwd=project, capture_output=True, text=True)
    assert "greet/test: its test-op runs fiveam's runner: the suite build/bin/greet--test, " \
           "task test:greet--test" in init.stdout, init
    passed = built(project, "-n", "2", "test:greet--test", env=store_env)
    assert "Did 2 checks." in passed.output and "Pass: 2 (100%)" in passed.output
    assert "just-done stamp" not in passed.output, passed.output  # ASDF's bookkeeping
    (project / "test.lisp").write_text(TEST.replace("(= 2 (+ 1 1))", "(= 3 (+ 1 1))"))
    failed = doit(project, "-n", "2", "test:greet--test", env=store_env)
    assert failed.returncode != 0 and "build/bin/greet--test exited with 1, expected 0" \
        in failed.output, failed.output
