"""`lispbuild init` (commands/init.py), without SBCL: what it reads of .asd
files, the dodo.py it writes, and what it refuses."""
import os

import pytest

from lispbuild.asd_forms import defsystem_forms, suite_runner
from lispbuild.commands.init import InitRefused, describe, init, main

ASD = """\
;; (defsystem "commented-out")
(defsystem "app"
  :version "1.0"
  :depends-on ("alexandria")
  :components ((:file "main"))
  :build-operation "program-op"
  :build-pathname "bin/app-cli"
  :entry-point "app:main")

(asdf:defsystem #:app/test
  :depends-on ("app" "fiveam")
  :perform (test-op (o c) (symbol-call :fiveam '#:run! :app)))

(defsystem :app-image :entry-point "app:main" :build-operation "image-op")
"""


def test_every_defsystem_and_what_its_text_says():
    systems = dict(defsystem_forms(ASD))
    assert list(systems) == ["app", "app/test", "app-image"]
    assert describe("app", systems["app"]) == (
        ["app: a program: build/bin/app-cli runs app:main"], [])
    assert describe("app/test", systems["app/test"]) == ([
        "app/test: a library", "app/test: its test-op runs fiveam's runner: the suite "
        "build/bin/app--test, task test:app--test"], [])
    assert describe("app-image", systems["app-image"])[1] == [
        "app-image: :entry-point with :build-operation 'image-op', not program-op: "
        "no binary declared"]


def test_init_declares_each_system_and_never_overwrites(tmp_path, capsys):
    (tmp_path / "app.asd").write_text(ASD)
    (tmp_path / "build" / "x").mkdir(parents=True)
    (tmp_path / "build" / "x" / "old.asd").write_text('(defsystem "old")')  # not a source
    text, found, undecided = init(tmp_path)
    assert 'project.asdf_system("app")  # app.asd\n' in text
    assert 'project.asdf_system("app/test")  # app.asd\n' in text
    assert '"old"' not in text
    assert len(found) == 4 and len(undecided) == 1
    compile(text, "dodo.py", "exec")  # it is Python
    os.chdir(tmp_path)  # where the tests before left it may be gone (monkeypatch records it)
    assert main(["init"]) == 0
    assert (tmp_path / "dodo.py").read_text() == text
    assert "wrote dodo.py" in capsys.readouterr().out
    assert main(["init"]) == 1
    assert "dodo.py exists" in capsys.readouterr().err
    with pytest.raises(InitRefused, match="exists"):
        init(tmp_path)


def test_a_directory_without_asd_files_is_refused(tmp_path, capsys):
    with pytest.raises(InitRefused, match="no .asd file"):
        init(tmp_path)
    assert main(["nonsense"]) == 2 and "usage: lispbuild init" in capsys.readouterr().err


@pytest.mark.parametrize("perform, runner", [
    ("(symbol-call :fiveam '#:run! :app)", "fiveam"),
    ("(uiop:symbol-call :5am :run! 'app::suite)", "fiveam"),
    ("(symbol-call '#:rt '#:do-tests)", "rt"),
    ("(symbol-call :parachute :test :app-tests)", "parachute"),
    ("(symbol-call :lisp-unit2 :run-tests :package :app-tests)", "lisp-unit2"),
    ("(symbol-call :fiveam '#:run! :app) (print :done)", None),     # not its value
    ("(symbol-call :app-tests '#:run-all)", None),                 # not a known runner
    ("(funcall (intern \"RUN!\" :fiveam) :app)", None),
])
def test_a_test_op_whose_value_is_a_known_runners_verdict(perform, runner):
    form = f'"app/test" :depends-on ("app") :perform (test-op (o c) {perform}))'
    assert suite_runner(form) == runner


def test_a_test_op_that_first_loads_another_system_is_not_read():
    """cl+ssl's: its suite is in cl+ssl.test, which the image of cl+ssl
    would not hold; FiveAM, finding no test, would say it passed."""
    form = ('"cl+ssl" :in-order-to ((test-op (load-op :cl+ssl.test)))\n'
            "  :perform (test-op (op c) (symbol-call '#:5am '#:run! :cl+ssl)))")
    assert suite_runner(form) is None
