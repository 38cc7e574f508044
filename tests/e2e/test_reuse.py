"""Recompiling only what an edit can affect (reuse.py, trace.lisp), with
real SBCL: scripted edits of each kind of definition a later file may
consult, each checked twice: which files a build recompiles, and, with
LISPBUILD_CHECK_REUSE=1 on an edit of the same kind, that every FASL the
traces reuse is the same bytes as a fresh compile's."""
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, built, doit, write_project
from dodo_text import dodo_py

# One definition a file, each used by the file after it; main.lisp uses all.
FILES = {
    "package.lisp": "(defpackage :rt (:use :cl) (:export #:main))\n",
    "plain.lisp": "(in-package :rt)\n(defun plain (x) (* x 2))\n",
    "use-plain.lisp": "(in-package :rt)\n(defun use-plain () (plain 5))\n",
    "macro.lisp": "(in-package :rt)\n(defmacro pair (form) `(list ,form ,form))\n",
    "use-macro.lisp": "(in-package :rt)\n(defun use-macro () (pair 1))\n",
    "inline.lisp": "(in-package :rt)\n(declaim (inline bump))\n(defun bump (x) (+ x 1))\n",
    "use-inline.lisp": "(in-package :rt)\n(defun use-inline () (bump 1))\n",
    "constant.lisp": "(in-package :rt)\n(defconstant +limit+ 10)\n",
    "use-constant.lisp": "(in-package :rt)\n(defun use-constant () +limit+)\n",
    "type.lisp": "(in-package :rt)\n(deftype small () '(integer 0 100))\n",
    "use-type.lisp": "(in-package :rt)\n(defun use-type (x) (typep x 'small))\n",
    "struct.lisp": "(in-package :rt)\n(defstruct point (x 0) (y 0))\n",
    "use-struct.lisp": "(in-package :rt)\n(defun use-struct () (point-y (make-point :x 3 :y 4)))\n",
    "class.lisp": "(in-package :rt)\n(defclass shape () ((sides :initarg :sides :reader sides)))\n",
    "use-class.lisp": "(in-package :rt)\n"
                      "(defun use-class () (sides (make-instance 'shape :sides 4)))\n",
    "features.lisp": "(in-package :rt)\n(pushnew :rt-one *features*)\n",
    "use-features.lisp": "(in-package :rt)\n(defun use-features () #+rt-one 1 #-rt-one 2)\n",
    "main.lisp": "(in-package :rt)\n(defun main ()\n  (format t \"~S~%\" (list (use-plain) "
                 "(use-macro) (use-inline) (use-constant) (use-type 60) (use-struct) "
                 "(use-class))))\n",
}
ORDER = list(FILES)
# A file that changes the readtable, and one read with it.
READER = {
    "reader.lisp": "(in-package :rt)\n(eval-when (:compile-toplevel :load-toplevel :execute)\n"
                   "  (set-dispatch-macro-character #\\# #\\! (lambda (s c n) (declare (ignore c n))"
                   " (list 'quote (list :bang (read s t nil t))))))\n",
    "use-reader.lisp": "(in-package :rt)\n(defun use-reader () #!x)\n",
}
FASL = "fasl:rt/lib/{}"


def dodo(files) -> str:
    return dodo_py(f"""\
project.library("rt", {[f"lib/{name}" for name in files]!r}, directory=".")
project.binary("rt", libraries=["rt"], entry="rt:main")
""")


def built_project(root, files: dict, env):
    write_project(root, dodo(files), {f"lib/{name}": text for name, text in files.items()})
    built(root, "-n", "2", "lib", env=env)
    return root


@pytest.fixture
def project(tmp_path, store_env):
    return built_project(tmp_path / "project", FILES, store_env)


def edit(root, name, old, new):
    path = root / "lib" / name
    text = path.read_text()
    assert old in text, (name, old)
    path.write_text(text.replace(old, new))


def compiled(result) -> set[str]:
    return {task.removeprefix("fasl:rt/lib/") for task in result.executed
            if task.startswith("fasl:")}


# Each: the file, two edits of one kind (the first's recompiled files are
# checked, the second's reused FASLs compared with fresh ones), and the
# files each edit must recompile.
EDITS = [
    ("plain.lisp", [("(* x 2)", "(* x 3)"), ("(* x 3)", "(* x 4)")], {"plain.lisp"}),
    ("macro.lisp", [("`(list ,form ,form)", "`(list ,form ,form ,form)"),
                    ("`(list ,form ,form ,form)", "`(list ,form)")],
     {"macro.lisp", "use-macro.lisp"}),
    ("inline.lisp", [("(+ x 1)", "(+ x 2)"), ("(+ x 2)", "(+ x 3)")],
     {"inline.lisp", "use-inline.lisp"}),
    ("constant.lisp", [("+limit+ 10", "+limit+ 20"), ("+limit+ 20", "+limit+ 30")],
     {"constant.lisp", "use-constant.lisp"}),
    ("type.lisp", [("(integer 0 100)", "(integer 0 50)"), ("(integer 0 50)", "(integer 0 70)")],
     {"type.lisp", "use-type.lisp"}),
    ("struct.lisp", [("(y 0))", "(y 0) (z 0))"), ("(z 0))", "(z 1) (w 0))")],
     {"struct.lisp", "use-struct.lisp"}),
    ("class.lisp", [("(sides :initarg :sides :reader sides)",
                     "(sides :initarg :sides :reader sides) (color :initform 1)"),
                    ("(color :initform 1)", "(color :initform 2)")],
     {"class.lisp", "use-class.lisp"}),
    # A file that pushes a feature, edited elsewhere: what every later
    # compile sees is as it was.
    ("features.lisp", [("*features*)\n", "*features*)\n(defun unused-1 () 1)\n"),
                       ("(defun unused-1 () 1)", "(defun unused-2 () 2)")],
     {"features.lisp"}),
]


@pytest.mark.parametrize("name,edits,recompiled", EDITS, ids=[e[0] for e in EDITS])
def test_an_edit_recompiles_what_consulted_it_and_reuses_the_rest(project, store_env, name,
                                                                   edits, recompiled):
    edit(project, name, *edits[0])
    assert compiled(built(project, "-n", "2", "lib", env=store_env)) == recompiled
    edit(project, name, *edits[1])
    checked = built(project, "-n", "2", "lib",
                    env={**store_env, "LISPBUILD_CHECK_REUSE": "1"})
    # Every file after the edited one compiled, and compared with what reuse would give.
    assert compiled(checked) == set(ORDER[ORDER.index(name):])


def test_another_feature_recompiles_every_later_file(project, store_env):
    edit(project, "features.lisp", ":rt-one", ":rt-two")
    assert compiled(built(project, "-n", "2", "lib", env=store_env)) == \
        set(ORDER[ORDER.index("features.lisp"):])


def test_a_new_export_recompiles_every_file_of_the_package(project, store_env):
    edit(project, "package.lisp", "(:export #:main)", "(:export #:main #:plain)")
    assert compiled(built(project, "-n", "2", "lib", env=store_env)) == set(ORDER)


def test_a_changed_readtable_keeps_full_keys_and_says_so(tmp_path, store_env):
    """What reader.lisp puts in the readtable no trace can see: the files
    read after it keep their full keys."""
    files = {"package.lisp": FILES["package.lisp"], "plain.lisp": FILES["plain.lisp"],
             "use-plain.lisp": FILES["use-plain.lisp"], **READER}
    project = built_project(tmp_path / "project", files, store_env)
    edit(project, "plain.lisp", "(* x 2)", "(* x 5)")
    assert compiled(built(project, "-n", "2", "lib", env=store_env)) == {
        "plain.lisp", "use-reader.lisp"}
    why = doit(project, "why", FASL.format("use-reader.lisp")).output
    assert "its trace cannot be complete: it is read with a changed readtable" in why


def test_the_program_behaves_as_its_sources_say_after_reuse(project, store_env, tmp_path):
    for name, edits, _ in EDITS:
        edit(project, name, *edits[0])
        built(project, "-n", "2", "lib", env=store_env)
    built(project, "-n", "2", "exe:rt", env=store_env)
    out = subprocess.run([str(project / "build/bin/rt")], capture_output=True, text=True,
                         timeout=60).stdout
    assert out == "(15 (1 1 1) 3 20 NIL 4 4)\n"


DEBIAN = Path("/usr/share/common-lisp/source")
WEBSERVER_DODO = dodo_py("""\
project.asdf_system("webserver", registry=["."])
project.binary("webserver", libraries=["webserver"], entry="webserver:main",
               entry_arguments="command-line-arguments",
               foreign_libraries={"libssl": ["/usr/lib/x86_64-linux-gnu/libssl.a"],
                                  "libcrypto": ["/usr/lib/x86_64-linux-gnu/libcrypto.a"]})
""")
# Edits of libraries that others use, in the project's own copies, each
# of a kind: (file, old, new). The second of a file is of the same kind
# as the first.
LIBRARY_EDITS = [
    # a docstring of a function, and a string of its body
    ("alexandria/alexandria-1/lists.lisp", "Returns true if OBJECT is a circular list",
     "Returns T if OBJECT is a circular list"),
    ("alexandria/alexandria-1/definitions.lisp", "Retain the current value.",
     "Retain the value it has."),
    # an inline function's docstring; a macro's expansion
    ("cl-ppcre/util.lisp", "Returns a subsequence by pointing to location",
     "Returns a subsequence that points to a location"),
    ("cl-ppcre/util.lisp", "(simple-string-p ,=string=)", "(typep ,=string= 'simple-string)"),
    # a function's body
    ("hunchentoot/util.lisp", "(dotimes (i n)", "(dotimes (j n)"),
    ("webserver/webserver.lisp", "hello from a static hunchentoot",
     "hello again from a static hunchentoot"),
]


def test_edits_of_real_libraries_reuse_only_what_a_fresh_compile_gives(tmp_path, store_env):
    """alexandria, cl-ppcre and hunchentoot, as the webserver sample uses
    them: each edit built with LISPBUILD_CHECK_REUSE=1, which compiles
    every FASL its trace would reuse and fails if the bytes differ. The
    cold build too: a serial library's files compile in one process
    (rules/lisp.py, chain.lisp), and each is compiled alone as well and
    must be the same bytes (flexi-streams, cffi and cl+ssl each once
    differed: a generic function's dispatch computed, the types and
    specials the compiler noted)."""
    project = tmp_path / "project"
    shutil.copytree(REPO / "samples/webserver", project / "webserver")
    for library in ("alexandria", "cl-ppcre", "hunchentoot"):
        shutil.copytree(DEBIAN / library, project / library)
    (project / "dodo.py").write_text(WEBSERVER_DODO)
    # A store of its own: the tests before may have stored these libraries,
    # whose files would then be restored, not compiled one after the other.
    store_env = {**store_env, "LISPBUILD_STORE": str(tmp_path / "store")}
    check = {**store_env, "LISPBUILD_CHECK_REUSE": "1"}
    cold = built(project, "-n", "2", "lib", env=check)
    every = {t for t in cold.executed if t.startswith("fasl:")}
    followed = [line.split()[0] for line in doit(project, "why", *sorted(every)).output.splitlines()
                if "compiled in the process of the file before it" in line]
    assert {"fasl:cl-ppcre/util.lisp", "fasl:flexi-streams/stream.lisp",
            "fasl:cl+ssl/src/bio.lisp"} <= set(followed) and len(followed) > 100, followed
    # A function's body: only its file compiles again.
    path = project / "hunchentoot/util.lisp"
    path.write_text(path.read_text().replace('(format s "~VR" base', '(format s "~vR" base'))
    assert {t for t in built(project, "-n", "2", "lib", env=store_env).executed
            if t.startswith("fasl:")} == {"fasl:hunchentoot/util.lisp"}
    for name, old, new in LIBRARY_EDITS:
        path = project / name
        assert old in path.read_text(), (name, old)
        path.write_text(path.read_text().replace(old, new, 1))
        result = built(project, "-n", "2", "lib", env=check)
        assert f"fasl:{name.split('/')[0]}" in " ".join(result.executed), result.output
    assert len(every) > 150
