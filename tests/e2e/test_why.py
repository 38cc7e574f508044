"""`doit why TASK`: what differed, from the records the build kept."""
import subprocess
import sys

from conftest import built, write_project
from dodo_text import dodo_py

DODO = dodo_py("""\
project.library("greeter", ["package.lisp", "main.lisp"]{features})
project.binary("greeter", libraries=["greeter"], entry="greeter:main")
""")
FILES = {
    "dodo.py": DODO.format(features=""),
    "package.lisp": "(defpackage #:greeter (:use #:cl) (:export #:main))\n",
    "main.lisp": "(in-package #:greeter)\n(defun main () 7)\n",
}


def why(project, *tasks) -> str:
    result = subprocess.run([sys.executable, "-m", "doit", "why", *tasks], cwd=project,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_why_names_what_differed(tmp_path, store_env):
    project = write_project(tmp_path / "greeter", FILES.pop("dodo.py"), FILES)
    # A store of its own: nothing restored, main.lisp compiled after package.lisp.
    store_env = {**store_env, "LISPBUILD_STORE": str(tmp_path / "store")}
    built(project, "-n", "2", env=store_env)
    assert why(project, "fasl:greeter/main.lisp", "no:such") == (
        "fasl:greeter/main.lisp ran in the last build (compiled in the process of the file"
        " before it, as ASDF compiles a system): nothing earlier is recorded"
        " (a new task, or a new build directory)\n"
        "no:such has not run in this build directory\n")

    (project / "main.lisp").write_text("(in-package #:greeter)\n(defun main () 8)\n")
    second = built(project, "-n", "2", env=store_env)
    assert "left by a stopped build" not in second.output  # warm workers tidied up
    said = why(project, "fasl:greeter/main.lisp", "core:greeter", "exe:greeter",
               "runtime:greeter")
    assert "fasl:greeter/main.lisp ran in the last build, because:\n  input main.lisp changed (" \
        in said, said
    assert "core:greeter ran in the last build, because:\n" \
           "  loaded build/fasl/greeter/main.fasl changed (" in said, said
    # Its new FASL is in the executable (the image before it, base:greeter,
    # is the same).
    assert "exe:greeter ran in the last build, because:\n" \
           "  input build/fasl/greeter/main.fasl changed (" in said, said
    assert "runtime:greeter ran in an earlier build (in the last one it was up to date" in said

    (project / "dodo.py").write_text(DODO.format(features=', features=["extra"]'))
    built(project, "-n", "2", env=store_env)
    said = why(project, "fasl:greeter/package.lisp")
    assert said == ('fasl:greeter/package.lisp ran in the last build, because:\n'
                    '  parameter features: [] -> ["EXTRA"]\n'), said
