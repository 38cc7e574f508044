"""The shapes of ASDF systems real applications use, with Debian's
libraries unchanged, built and run with real SBCL, ASDF and musl-gcc."""
import os
import subprocess

from conftest import built, run_in_empty_root, write_project

CXML_DODO = """
import lispbuild
project = lispbuild.Project()
project.asdf_system("app")
project.binary("app", libraries=["app"], entry="app:main", version="1.0",
               smoke_args=["<a x='2'/>"])
DOIT_CONFIG = lispbuild.doit_config(project)
def task_lispbuild():
    yield from lispbuild.tasks(project)
"""

CXML_FILES = {
    "app.asd": '(defsystem "app" :depends-on ("cxml") :components ((:file "app")))\n',
    "app.lisp": """(defpackage #:app (:use #:cl) (:export #:main))
(in-package #:app)
(defun main (&rest arguments)
  (let* ((doc (cxml:parse (first arguments) (cxml-dom:make-dom-builder)))
         (root (dom:document-element doc)))
    (format t "~A ~A~%" (dom:tag-name root) (dom:get-attribute root "x")))
  0)
""",
    ".gitignore": "build/\ndist/\n",
}


def _commit(project, message):
    for args in (["init", "-q"], ["add", "-A"],
                 ["-c", "user.name=t", "-c", "user.email=t@example.org",
                  "commit", "-q", "-m", message]):
        subprocess.run(["git", *args], cwd=project, check=True, capture_output=True)


def test_systems_defined_in_another_systems_asd_build_everywhere(tmp_path, store_env):
    """Debian's cxml.asd defines cxml-xml, cxml-dom, cxml-klacks, cxml-test
    and cxml, each depending on others: ASDF's search by name finds none but
    cxml. Workers, fresh SBCLs, a release dump and `doit verify` all load
    the definitions from cxml.asd."""
    project = write_project(tmp_path / "cxml-app", CXML_DODO, CXML_FILES)
    result = built(project, "-n", "2", env=store_env)
    assert "a worker could not start" not in result.output, result.output
    assert {"lib:cxml-xml", "lib:cxml-dom", "lib:cxml-klacks", "lib:cxml"} <= result.executed
    run = run_in_empty_root(project / "build/bin/app", tmp_path, "<doc x='1'><b/></doc>")
    assert (run.returncode, run.stdout) == (0, "doc 1\n"), run

    # The application's compile and dump, each in a fresh SBCL that defines
    # the systems itself.
    app = project / "app.lisp"
    app.write_text(app.read_text().replace('"~A ~A~%"', '"~A=~A~%"'))
    fresh = built(project, env={**store_env, "LISPBUILD_FRESH": "1"})
    assert {"fasl:app/app.lisp", "core:app"} <= fresh.executed, fresh.output
    assert subprocess.run([project / "build/bin/app", "<e x='3'/>"], capture_output=True,
                          text=True).stdout == "e=3\n"

    _commit(project, "cxml app")
    release = built(project, "release:app", env=store_env)
    assert "smoke run `app <a x='2'/>`: exit 0" in release.output, release.output
    verify = built(project, "verify", "dist/app-1.0-x86_64-linux.tar.gz", env=store_env)
    assert "identical: every stage, the executable and the archive" in verify.output
