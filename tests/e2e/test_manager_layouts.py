"""Libraries where the managers put them, inside a project: qlot's
.qlot/dists/DIST/software/NAME-VERSION/ and ocicl's systems/NAME-VERSION/
(with its ocicl.csv) are in the project's registry tree, which ASDF
searches whole (issue 26 part 2, for the layouts inside a project)."""
import subprocess

from conftest import built, write_project
from dodo_text import dodo_py

FILES = {
    ".qlot/dists/quicklisp/software/shout-1.0/shout.asd":
        '(defsystem "shout" :components ((:file "shout")))\n',
    ".qlot/dists/quicklisp/software/shout-1.0/shout.lisp":
        "(defpackage #:shout (:use #:cl) (:export #:shout))\n(in-package #:shout)\n"
        "(defun shout (s) (string-upcase s))\n",
    "systems/whisper-0.1/whisper.asd":
        '(defsystem "whisper" :components ((:file "whisper")))\n',
    "systems/whisper-0.1/whisper.lisp":
        "(defpackage #:whisper (:use #:cl) (:export #:whisper))\n(in-package #:whisper)\n"
        "(defun whisper (s) (string-downcase s))\n",
    "ocicl.csv": "whisper, ghcr.io/ocicl/whisper@sha256:0, whisper-0.1\n",
    "app.asd": '(defsystem "app" :depends-on ("shout" "whisper" "alexandria")\n'
               '  :components ((:file "main"))\n'
               '  :build-operation "program-op" :entry-point "app:main")\n',
    "main.lisp": "(defpackage #:app (:use #:cl) (:export #:main))\n(in-package #:app)\n"
                 "(defun main ()\n"
                 '  (format t "~A ~A ~A~%" (shout:shout "a") (whisper:whisper "B")\n'
                 "          (alexandria:ensure-list 1))\n  t)\n",
}


def test_qlot_and_ocicl_layouts_in_the_project_build_static(tmp_path, store_env):
    project = write_project(tmp_path / "app", dodo_py('project.asdf_system("app")\n'), FILES)
    result = built(project, "-n", "2", env=store_env)
    assert "fasl:shout/shout.lisp" in result.executed, result.output
    assert "fasl:whisper/whisper.lisp" in result.executed, result.output
    run = subprocess.run([project / "build/bin/app"], capture_output=True, text=True)
    assert (run.returncode, run.stdout) == (0, "A b (1)\n"), run
