"""Development executables without a dump (issue 23 part 2): the image of
the dependencies (base:NAME) and the project's FASLs embedded beside it,
loaded when the program starts. An edit of the project's Lisp compiles,
checks and copies; it dumps nothing and links nothing, and the program
behaves as the whole image's dump would: it runs from an empty root, sees
the load-time values a dump would keep, runs ASDF's methods, calls a C
function its new code names. Loading that cannot be trusted to do at
start-up what it did at build time (a file read, an environment variable)
makes the build dump the whole image, saying why."""
import subprocess

from conftest import built, run_in_empty_root, write_project
from dodo_text import dodo_py

from lispbuild.rules.payload import MARKER

ASD = ('(defsystem "app" :depends-on ("alexandria")'
       ' :components ((:file "package") (:file "main")))\n'
       '(defmethod asdf:perform :after ((o asdf:load-op) (s (eql (asdf:find-system "app"))))\n'
       '  (pushnew :app-loaded *features*))\n')
MAIN = ("(in-package #:app)\n"
        "(defvar *loaded-from* (namestring *load-pathname*))\n"
        '(defun greeting () "hello")\n'
        "(defun main ()\n"
        '  (format t "~A ~A ~:[not-loaded~;loaded~] ~A~%" (greeting)\n'
        "          (alexandria:flatten '((1) 2)) (member :app-loaded *features*)\n"
        "          *loaded-from*)\n"
        "  0)\n")
FILES = {"app/app.asd": ASD,
         "app/package.lisp": "(defpackage #:app (:use #:cl) (:export #:main))\n",
         "app/main.lisp": MAIN}
DODO = dodo_py('''
project.asdf_system("app", registry=["app"])
project.binary("app", libraries=["app"], entry="app:main")
''')


def says(project, exe="build/bin/app") -> str:
    result = subprocess.run([project / exe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result
    return result.stdout


def test_an_edit_of_the_projects_lisp_dumps_nothing(tmp_path, store_env):
    project = write_project(tmp_path / "p", DODO, FILES)
    first = built(project, env=store_env)
    assert {"base:app", "core:app", "exe:app"} <= first.executed, first.output
    core = project / "build/core/app.core"
    assert core.read_bytes() == MARKER
    fasl = project / "build/fasl/app/main.fasl"
    assert fasl.is_file()
    # Loaded from the executable, under the name the build loaded it by.
    assert says(project) == f"hello (1 2) loaded {fasl}\n"

    main = project / "app/main.lisp"
    main.write_text(MAIN.replace('"hello"', '"hello again"'))
    edit = built(project, env=store_env)
    assert {"fasl:app/main.lisp", "core:app", "exe:app"} <= edit.executed, edit.output
    assert not {"base:app", "runtime:app"} & edit.executed, edit.output
    assert says(project) == f"hello again (1 2) loaded {fasl}\n"
    # One file: it needs neither the FASLs nor a libc.
    fasl.unlink()
    alone = run_in_empty_root(project / "build/bin/app", tmp_path)
    assert alone.returncode == 0 and alone.stdout.startswith("hello again (1 2) loaded"), alone
    built(project, env=store_env)

    # New code that calls a C function the image did not: the linkage
    # record is the whole image's, so the runtime is linked with it.
    main.write_text(MAIN.replace(
        '(greeting)\n', '(greeting)\n          (sb-alien:alien-funcall (sb-alien:extern-alien '
        '"strverscmp" (function sb-alien:int sb-alien:c-string sb-alien:c-string)) "a2" "a10")\n')
        .replace('"~A ~A', '"~A ~A ~A'))
    foreign = built(project, env=store_env)
    assert {"linkage:app", "runtime:app"} <= foreign.executed, foreign.output
    assert "base:app" not in foreign.executed, foreign.output
    assert "strverscmp" in (project / "build/core/app.linkage").read_text()
    assert says(project).startswith("hello -1 (1 2) loaded"), says(project)


def test_loading_that_start_up_could_not_repeat_dumps_the_whole_image(tmp_path, store_env):
    project = write_project(tmp_path / "p", DODO, {
        **FILES, "app/motd.txt": "welcome\n",
        "app/main.lisp": MAIN.replace(
            '(defun greeting () "hello")',
            '(defvar *motd* (uiop:read-file-string (asdf:system-relative-pathname "app" '
            '"motd.txt")))\n(defun greeting () (string-trim (list #\\Newline) *motd*))')})
    result = built(project, env=store_env)
    core = project / "build/core/app.core"
    assert core.read_bytes()[:8] != MARKER[:8]
    assert "the image is dumped whole, as loading the project's FASLs read " \
           f"{project / 'app/motd.txt'}" in result.output, result.output
    # As any dump: what it read is an input, and the text is in the image.
    assert says(project).startswith("welcome (1 2) loaded")
    (project / "app/motd.txt").write_text("changed\n")
    again = built(project, env=store_env)
    assert "core:app" in again.executed, again.output
    (project / "app/motd.txt").unlink()
    assert run_in_empty_root(project / "build/bin/app", tmp_path).stdout.startswith("changed")

    (project / "app/main.lisp").write_text(MAIN.replace(
        '(defun greeting () "hello")',
        '(defvar *who* (sb-ext:posix-getenv "LISPBUILD_PAYLOAD_TEST"))\n'
        '(defun greeting () (or *who* "nobody"))'))
    env = {**store_env, "LISPBUILD_PAYLOAD_TEST": "builder"}
    result = built(project, env=env)
    assert "asked for the environment variable LISPBUILD_PAYLOAD_TEST" in result.output, \
        result.output
    assert says(project).startswith("builder (1 2)")

    (project / "app/main.lisp").write_text(MAIN)
    result = built(project, env=store_env)
    assert "dumped whole" not in result.output and core.read_bytes() == MARKER
    assert says(project).startswith("hello (1 2) loaded")
