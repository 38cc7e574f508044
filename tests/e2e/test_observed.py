"""Inputs observed, not assumed: files that a system's .asd or its code
reads while ASDF plans, a file compiles or an image is dumped are part of
what decides a rebuild, and of a release's manifest. Real SBCL, ASDF and
musl-gcc."""
import json
import subprocess
import tarfile

from conftest import asdf_dodo, built, write_project


FILES = {
    # The version is read from a file when ASDF loads app.asd.
    "app.asd": '(defsystem "app" :version (:read-file-form "version.sexp")\n'
               '  :depends-on ("lib") :components ((:file "app")))\n',
    "version.sexp": '"1.0"\n',
    # lib.asd only loads the file that defines lib.
    "lib/lib.asd": '(load (merge-pathnames "defs/lib.system" *load-truename*))\n',
    "lib/defs/lib.system": '(defsystem "lib" :components ((:file "lib")))\n',
    # Read when lib's FASL is loaded: the dumped image holds the text.
    "lib/defs/lib.lisp": """(defpackage #:lib (:use #:cl) (:export #:greeting))
(in-package #:lib)
(defparameter *greeting*
  (string-trim '(#\\Newline) (uiop:read-file-string (asdf:system-relative-pathname "lib" "greeting.txt"))))
(defun greeting () *greeting*)
""",
    "lib/defs/greeting.txt": "hello\n",
    "app.lisp": """(defpackage #:app (:use #:cl) (:export #:main))
(in-package #:app)
(defun main ()
  (format t "~A ~A~%" (lib:greeting) #.(asdf:component-version (asdf:find-system "app")))
  0)
""",
    ".gitignore": "build/\ndist/\n",
}


def program_says(project) -> str:
    return subprocess.run([project / "build/bin/app"], capture_output=True, text=True,
                          check=True).stdout


def test_files_read_while_planning_compiling_and_dumping_are_inputs(tmp_path, store_env):
    project = write_project(tmp_path / "observed", asdf_dodo("app", options=', version="1.0"'), FILES)
    built(project, "-n", "2", env=store_env)
    assert program_says(project) == "hello 1.0\n"
    reads = (project / "build/core/app.reads").read_text()
    assert "lib/defs/greeting.txt\t" in reads, reads

    # A data file that loading lib read: every image that loaded lib again.
    (project / "lib/defs/greeting.txt").write_text("bonjour\n")
    result = built(project, env=store_env)
    assert "core:app" in result.executed and "fasl:lib/lib.lisp" not in result.executed
    assert program_says(project) == "bonjour 1.0\n"
    assert built(project, env=store_env).executed == set()

    # A file that app.asd reads: ASDF is asked again, and the file that
    # read the version when it compiled is compiled again.
    (project / "version.sexp").write_text('"2.0"\n')
    result = built(project, env=store_env)
    assert "fasl:app/app.lisp" in result.executed, result.output
    assert program_says(project) == "bonjour 2.0\n"

    # Back as it was: the store's first records serve again, unchanged.
    (project / "lib/defs/greeting.txt").write_text("hello\n")
    (project / "version.sexp").write_text('"1.0"\n')
    result = built(project, env=store_env)
    assert {"fasl:app/app.lisp", "core:app"} <= result.executed
    why = built(project, "why", "fasl:app/app.lisp", "core:app").output
    assert why.count("ran in the last build (restored from a store)") == 2, why
    assert program_says(project) == "hello 1.0\n"

    # The release's manifest names all three; verify rebuilds from them.
    for args in (["init", "-q"], ["add", "-A"],
                 ["-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q",
                  "-m", "observed"]):
        subprocess.run(["git", *args], cwd=project, check=True, capture_output=True)
    built(project, "release:app", env=store_env)
    archive = project / "dist/app-1.0-x86_64-linux.tar.gz"
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile(next(m for m in tar.getmembers()
                                                  if m.name.endswith("manifest.json"))))
    sources = {s["path"] for s in manifest["sources"]}
    assert {"lib/lib.asd", "lib/defs/greeting.txt", "version.sexp",
            "lib/defs/lib.system"} <= sources, sources
    verify = built(project, "verify", str(archive.relative_to(project)), env=store_env)
    assert "identical: every stage, the executable and the archive" in verify.output
