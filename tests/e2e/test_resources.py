"""Files a program reads at run time (issue 26 part 5): a dump names each
variable that keeps a path of the build machine; resources= embeds files
in the executable, which the program opens by name wherever it runs,
development and release executables alike."""
import json
import shutil
import subprocess
import tarfile

from conftest import built, run_in_empty_root, write_project
from dodo_text import dodo_py

FILES = {
    "wordlib/wordlib.asd": '(defsystem "wordlib" :components ((:file "wordlib")))\n',
    "wordlib/wordlib.lisp":
        "(defpackage #:wordlib (:use #:cl) (:export #:words-file))\n(in-package #:wordlib)\n"
        ";; Where the build found it: not where a copy of the executable runs.\n"
        '(defvar *words-file* (asdf:system-relative-pathname "wordlib" "words.txt"))\n'
        "(defun words-file () *words-file*)\n",
    "wordlib/words.txt": "static\nlisp\n",
    "wordlib/data/greeting.txt": "hello",
    "wordlib/data/nested/farewell.txt": "bye",
    "app/app.asd": '(defsystem "app" :version "1.0" :depends-on ("wordlib" "tables")'
                   ' :components ((:file "main")))\n',
    "app/main.lisp":
        "(defpackage #:app (:use #:cl) (:export #:main))\n(in-package #:app)\n"
        "(defun main (arguments)\n"
        '  (if (equal arguments (list "missing"))\n'
        '      (handler-case (lispbuild/resources:resource-octets "nope.txt")\n'
        '        (error (e) (format t "~A~%" e) 3))\n'
        '      (progn (format t "~{~A~^ ~}|~A|~A|~{~A~^,~}~%"\n'
        '                     (uiop:split-string (string-right-trim \'(#\\Newline)\n'
        '                      (lispbuild/resources:resource-string "words.txt"))\n'
        '                      :separator (list #\\Newline))\n'
        '                     (lispbuild/resources:resource-string "data/greeting.txt")\n'
        '                     (length (lispbuild/resources:resource-octets'
        ' "data/nested/farewell.txt"))\n'
        "                     (lispbuild/resources:resource-names))\n"
        "             0)))\n",
}
DODO = dodo_py('''
project.asdf_system("app", registry=["."])
project.binary("app", libraries=["app"], entry="app:main",
               entry_arguments="command-line-arguments",
               resources={"words.txt": "wordlib/words.txt", "data": "wordlib/data"})
''')
SAYS = "static lisp|hello|3|data/greeting.txt,data/nested/farewell.txt,words.txt\n"


# A library outside the project (found through CL_SOURCE_REGISTRY) that
# reads its data as it loads, and keeps the path.
TABLES = {"tables.asd": '(defsystem "tables" :components ((:file "tables")))\n',
          "tables.lisp": "(defpackage #:tables (:use #:cl))\n(in-package #:tables)\n"
                         '(defvar *table-file* (asdf:system-relative-pathname "tables" "t.txt"))\n'
                         "(defvar *table* (uiop:read-file-lines *table-file*))\n",
          "t.txt": "one\n"}


def test_resources_are_opened_by_name_wherever_the_executable_runs(tmp_path, store_env):
    project = write_project(tmp_path / "p", DODO, FILES)
    outside = tmp_path / "outside"
    outside.mkdir()
    for name, text in TABLES.items():
        (outside / name).write_text(text)
    store_env = {**store_env, "CL_SOURCE_REGISTRY": f"(:source-registry (:tree \"{outside}/\") "
                                                    f":inherit-configuration)"}
    first = built(project, "-n", "2", "exe:app", env=store_env)
    assert ("dump: warning: WORDLIB::*WORDS-FILE* holds "
            f'"{project}/wordlib/words.txt", a path of the machine it was built on') \
        in first.output, first.output
    assert ("dump: note: 1 variable of libraries holds paths of this machine, which a copy "
            "of the executable elsewhere lacks if the program opens them when it runs "
            "(resources= embeds files): TABLES::*TABLE-FILE*") in first.output, first.output
    exe = project / "build/bin/app"
    # In a root that holds nothing but the executable.
    run = run_in_empty_root(exe, tmp_path)
    assert (run.returncode, run.stdout) == (0, SAYS), run
    (tmp_path / "again").mkdir()
    missing = run_in_empty_root(exe, tmp_path / "again", "missing")
    assert missing.returncode == 3, missing
    assert ('no resource "nope.txt" in this executable; it has "data/greeting.txt", '
            '"data/nested/farewell.txt", "words.txt"') in missing.stdout

    # A resource read as a file (resource-pathname: a file in memory, named
    # under /proc/self/fd/), with the project gone.
    pathname = (project / "app/main.lisp")
    pathname.write_text(pathname.read_text().replace(
        '(lispbuild/resources:resource-string "data/greeting.txt")',
        '(uiop:read-file-string (lispbuild/resources:resource-pathname "data/greeting.txt"))'))
    edited = built(project, "exe:app", env=store_env)
    assert "fasl:app/main.lisp" in edited.executed
    moved = tmp_path / "moved"
    project.rename(moved)
    try:
        run = subprocess.run([moved / "build/bin/app"], capture_output=True, text=True,
                             cwd=tmp_path)
    finally:
        moved.rename(project)
    assert (run.returncode, run.stdout) == (0, SAYS), run

    # An edited resource makes a new executable, without a new dump.
    (project / "wordlib/words.txt").write_text("static\nlisp\nagain\n")
    again = built(project, "exe:app", env=store_env)
    assert "exe:app" in again.executed and "core:app" not in again.executed, again.output
    assert subprocess.run([exe], capture_output=True, text=True).stdout.startswith(
        "static lisp again|")

    # The release executable behaves the same, and its manifest names them.
    (tmp_path / "hidden").mkdir()
    env = {**store_env, "LISPBUILD_RELEASE_DIR": str(tmp_path / "hidden" / "release")}
    built(project, "release:app", env=env)
    shutil.copy(project / "build/release/app/app", tmp_path / "app-release")
    run = subprocess.run([tmp_path / "app-release"], capture_output=True, text=True,
                         cwd=tmp_path)
    assert (run.returncode, run.stdout) == (0, "static lisp again" + SAYS[len("static lisp"):]), \
        run
    archive = tarfile.open(project / "dist/app-1.0-x86_64-linux.tar.gz")
    manifest = json.loads(archive.extractfile("app-1.0/manifest.json").read())
    assert {"wordlib/words.txt", "wordlib/data/greeting.txt",
            "wordlib/data/nested/farewell.txt"} <= {s["path"] for s in manifest["sources"]}
