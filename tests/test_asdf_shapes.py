"""The shapes of ASDF systems real applications use, with Debian's
libraries unchanged, built and run with real SBCL, ASDF and musl-gcc."""
import subprocess
import sys
from pathlib import Path

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


VERSION_DODO = """
import lispbuild
project = lispbuild.Project()
project.asdf_system("app")
project.binary("app", libraries=["app"], entry="app:main")
DOIT_CONFIG = lispbuild.doit_config(project)
def task_lispbuild():
    yield from lispbuild.tasks(project)
"""

VERSION_FILES = {
    "app.asd": '(defsystem "app" :depends-on ("uiop" "alexandria") :components ((:file "app")))\n',
    "app.lisp": "(defpackage #:app (:use #:cl) (:export #:main))\n(in-package #:app)\n"
                "(defun main () (write-line (asdf:asdf-version)) 0)\n",
}


def test_the_build_uses_debians_newer_asdf_compiled_once_per_machine(tmp_path, store_env):
    """Debian's cl-asdf is newer than SBCL's ASDF, and ASDF would upgrade
    itself to it in every process, compiling it in every build directory.
    lispbuild makes the same choice once: the program has Debian's ASDF,
    and a second project, with the same per-user tool store, reads no
    asdf.lisp."""
    debian = Path("/usr/share/common-lisp/source/cl-asdf")
    assert (debian / "build/asdf.lisp").exists(), "setup.sh installs cl-asdf"
    newer = (debian / "version.lisp-expr").read_text().strip().strip('"')
    env = {**store_env, "XDG_CACHE_HOME": str(tmp_path / "user-cache")}
    traces = []
    for name in ("first", "second"):
        project = write_project(tmp_path / name, VERSION_DODO, VERSION_FILES)
        trace = tmp_path / f"{name}.trace"
        proc = subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve,open,openat",
                               "-o", str(trace),
                               sys.executable, "-m", "doit", "-n", "2"], cwd=project,
                              capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        run = subprocess.run([project / "build/bin/app"], capture_output=True, text=True)
        assert (run.returncode, run.stdout) == (0, f"{newer}\n"), run
        assert not list((project / "build").rglob("asdf-cache/**/asdf.fasl"))
        traces.append(trace.read_text())
    read_asdf = [programs_reading(t, "cl-asdf/build/asdf.lisp") for t in traces]
    assert read_asdf[0] == {"sbcl"} and read_asdf[1] == set(), read_asdf


def programs_reading(trace: str, name: str) -> set[str]:
    """The programs other than Python (which hashes the toolchain) that
    opened a file whose path ends with `name`, in an strace -f log."""
    program, readers = {}, set()
    for line in trace.splitlines():
        pid, _, call = line.partition(" ")
        call = call.strip()
        if call.startswith("execve(") and call.endswith("= 0"):
            program[pid] = Path(call.split('"')[1]).name
        elif call.startswith(("open(", "openat(")) and f'{name}"' in call \
                and not program.get(pid, "python").startswith("python"):
            readers.add(program[pid])
    return readers
