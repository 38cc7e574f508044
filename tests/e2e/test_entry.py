"""Entry points as Lisp programs write them: a main of no arguments that
reads uiop:command-line-arguments or sb-ext:*posix-argv* (ASDF's
program-op), one of &rest (Roswell's), one of one argument given
sb-ext:*posix-argv* (buildapp's) or the arguments alone, as the binary
says; entries that cannot be called, or whose arguments would be a guess,
fail when the image is dumped; and test programs that cannot pass by being
stopped."""
import os
import signal
import subprocess
import time

import pytest

from conftest import built, doit, write_project
from dodo_text import dodo_py

DODO = dodo_py("""\
project.asdf_system("entries")
for name in ("uiop", "posix", "optional", "rest", "macro", "two", "list", "unkept"):
    project.binary(name, libraries=["entries"], entry=f"entries:{name}-main")
project.binary("buildapp", libraries=["entries"], entry="entries:buildapp-main",
               entry_arguments="posix-argv")
project.binary("arguments", libraries=["entries"], entry="entries:list-main",
               entry_arguments="command-line-arguments")
project.binary("unkept-arguments", libraries=["entries"], entry="entries:unkept-main",
               entry_arguments="command-line-arguments")
project.binary("needless", libraries=["entries"], entry="entries:uiop-main",
               entry_arguments="posix-argv")
project.test("slow-suite", libraries=["entries"], function="entries:slow-suite")
project.test("needy-suite", libraries=["entries"], function="entries:list-main")
""")
FILES = {
    "entries.asd": '(defsystem "entries" :depends-on ("uiop") :components ((:file "entries")))\n',
    "entries.lisp": """(defpackage #:entries (:use #:cl))
(in-package #:entries)
(defun uiop-main ()
  ;; The variable is set by UIOP's image-restore hook, when the program starts.
  (format t "~{~A~^|~}~%~{~A~^|~}~%" (uiop:command-line-arguments)
          uiop:*command-line-arguments*)
  3)
(defun posix-main ()
  (format t "~{~A~^|~}~%" (rest sb-ext:*posix-argv*)))
(defun optional-main (&optional (arguments (uiop:command-line-arguments)))
  (format t "~{~A~^|~}~%" (reverse arguments)))
(defun rest-main (&rest arguments)
  (format t "~D: ~{~A~^|~}~%" (length arguments) arguments))
(defun buildapp-main (argv)
  ;; buildapp's convention: the program's name first.
  (format t "~A then ~{~A~^|~}~%" (file-namestring (first argv)) (rest argv)))
(defun list-main (arguments)
  (format t "~D arguments: ~{~A~^|~}~%" (length arguments) arguments))
(defun unkept-main (arguments)
  (declare (optimize (debug 0)))
  (format t "~D unkept~%" (length arguments)))
(defmacro macro-main () nil)
(defun two-main (a b) (list a b))
(defun slow-suite ()
  (format t "started~%")
  (finish-output)
  (sleep 600)
  t)
""",
}
GOOD = ["exe:uiop", "exe:posix", "exe:optional", "exe:rest", "exe:buildapp", "exe:arguments",
        "exe:unkept-arguments", "exe:slow-suite"]


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
    assert (uiop.stdout, uiop.returncode) == ("a|b c|--end\n" * 2, 3), uiop.stderr
    posix = run(entries, "posix", "x", "--help")
    assert (posix.stdout, posix.returncode) == ("x|--help\n", 0), posix.stderr
    optional = run(entries, "optional", "1", "2")
    assert (optional.stdout, optional.returncode) == ("2|1\n", 0), optional.stderr


def test_an_entry_of_rest_gets_the_arguments_spread(entries):
    spread = run(entries, "rest", "a", "--b")
    assert (spread.stdout, spread.returncode) == ("2: a|--b\n", 0), spread.stderr


def test_an_entry_of_one_argument_gets_the_list_the_binary_names(entries):
    buildapp = run(entries, "buildapp", "--dry-run", "file")
    assert buildapp.stdout == "buildapp then --dry-run|file\n", buildapp.stderr
    listed = run(entries, "arguments", "--dry-run", "file")
    assert listed.stdout == "2 arguments: --dry-run|file\n", listed.stderr
    unkept = run(entries, "unkept-arguments", "a", "b", "c")
    assert unkept.stdout == "3 unkept\n", unkept.stderr


ASK = ('say which list it is called with: entry_arguments="posix-argv" (the program\'s name '
       'first, as sb-ext:*posix-argv*) or entry_arguments="command-line-arguments" (without it, '
       'as uiop:command-line-arguments)')


@pytest.mark.parametrize("binary, message", [
    ("macro", "entry entries:macro-main: ERROR: ENTRIES::MACRO-MAIN is a macro, not a function"),
    ("two", "entry entries:two-main: ERROR: ENTRIES::TWO-MAIN requires 2 arguments; an entry"
            " takes none (it can read uiop:command-line-arguments), the arguments spread"),
    ("list", f"entry entries:list-main: ERROR: ENTRIES::LIST-MAIN takes one argument: {ASK}"),
    ("unkept", "entry entries:unkept-main: ERROR: SBCL kept no lambda list of "
               f"ENTRIES::UNKEPT-MAIN (compiled with (debug 0)): {ASK}"),
    ("needless", 'entry entries:uiop-main: ERROR: ENTRIES::UIOP-MAIN takes no argument, but '
                 'entry_arguments="posix-argv" was given'),
    ("needy-suite", "entry entries:list-main: ERROR: the test function ENTRIES::LIST-MAIN"
                    " requires 1 argument; it is called with none"),
])
def test_an_entry_that_cannot_be_called_fails_the_dump(entries, binary, message):
    good = (entries / "build/bin/uiop").read_bytes()
    failed = doit(entries, f"exe:{binary}")
    assert failed.returncode != 0
    assert message in " ".join(failed.output.split()), failed.output
    assert not (entries / "build/bin" / binary).exists()
    assert (entries / "build/bin/uiop").read_bytes() == good


def test_entry_arguments_are_checked_when_declared(tmp_path):
    from lispbuild.declare import Project
    from lispbuild.errors import DeclarationError
    with pytest.raises(DeclarationError, match="entry_arguments='argv' must be \"posix-argv\""):
        Project(root=tmp_path).binary("b", libraries=[], entry="a:main", entry_arguments="argv")


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
