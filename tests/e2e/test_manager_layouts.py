"""Libraries where the managers put them, inside a project: qlot's
.qlot/dists/DIST/software/NAME-VERSION/ and ocicl's systems/NAME-VERSION/
(with its ocicl.csv) are in the project's registry tree, which ASDF
searches whole; and those outside it, where the user's own Lisp finds
them: Quicklisp's ~/quicklisp/ and ASDF's configuration (issue 26 parts 1
and 2)."""
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

from conftest import built, doit, write_project
from dodo_text import dodo_py

DEBIAN = Path("/usr/share/common-lisp/source")

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
    "ocicl.csv": "whisper, ghcr.io/ocicl/whisper@sha256:0, whisper-0.1\n"
                 "parse-number, ghcr.io/ocicl/parse-number@sha256:0, parse-number-1.7\n",
    "app.asd": '(defsystem "app" :depends-on ("shout" "whisper" "cl-base64" "parse-number")\n'
               '  :components ((:file "main"))\n'
               '  :build-operation "program-op" :entry-point "app:main")\n',
    "main.lisp": "(defpackage #:app (:use #:cl) (:export #:main))\n(in-package #:app)\n"
                 "(defun main ()\n"
                 '  (format t "~A ~A ~A ~A~%" (shout:shout "a") (whisper:whisper "B")\n'
                 '          (cl-base64:string-to-base64-string "lisp")\n'
                 '          (parse-number:parse-number "1.5"))\n  t)\n',
}
# Filled from Debian's sources, as the managers would have installed them.
MANAGED = {"cl-base64": ".qlot/dists/quicklisp/software/cl-base64-20201016-git",
           "parse-number": "systems/parse-number-1.7"}


def test_qlot_and_ocicl_layouts_in_the_project_build_static(tmp_path, store_env):
    """Libraries qlot and ocicl installed in the project (two of them copies
    of Debian's, which the project's tree shadows, saying so)."""
    project = write_project(tmp_path / "app", dodo_py('project.asdf_system("app")\n'), FILES)
    for debian, there in MANAGED.items():
        shutil.copytree(DEBIAN / debian, project / there)
    result = built(project, "-n", "2", env=store_env)
    assert "fasl:shout/shout.lisp" in result.executed, result.output
    assert "fasl:whisper/whisper.lisp" in result.executed, result.output
    assert (f"asdf: system cl-base64: using {project}/{MANAGED['cl-base64']}/cl-base64.asd "
            f"(the project's registry); also found: {DEBIAN}/cl-base64/cl-base64.asd "
            f"(Debian's packages)") in result.output, result.output
    run = subprocess.run([project / "build/bin/app"], capture_output=True, text=True)
    assert (run.returncode, run.stdout) == (0, "A b bGlzcA== 1.5\n"), run


def _system(name: str, text: str) -> dict[str, str]:
    return {f"{name}.asd": f'(defsystem "{name}" :components ((:file "{name}")))\n',
            f"{name}.lisp": f"(defpackage #:{name} (:use #:cl) (:export #:{name}))\n"
                            f"(in-package #:{name})\n(defun {name} () {text!r})\n".replace("'", '"')}


def _quicklisp_home(home: Path) -> Path:
    """A home laid out as Quicklisp and ASDF's configuration lay it out:
    ~/quicklisp/ with the dist quicklisp holding greet 1.0 and Debian's
    split-sequence (its installed/systems/ index naming each .asd),
    local-projects/ holding another greet, and a source-registry.conf.d
    file naming ~/lisp/, which holds whisper."""
    ql = home / "quicklisp"
    software = ql / "dists/quicklisp/software"
    files = {"quicklisp/setup.lisp": ";; Quicklisp's, not loaded by lispbuild\n",
             "quicklisp/dists/quicklisp/distinfo.txt": "name: quicklisp\nversion: 2023-10-21\n",
             "quicklisp/dists/quicklisp/enabled.txt": "1\n",
             ".config/common-lisp/source-registry.conf.d/50-mine.conf":
                 f'(:tree "{home}/lisp/")\n'}
    for name, release in (("greet", "greet-1.0"), ("split-sequence", "split-sequence-20211209-git")):
        asd = f"dists/quicklisp/software/{release}/{name}.asd"
        files[f"quicklisp/dists/quicklisp/installed/systems/{name}.txt"] = f"{asd}\n"
        files[f"quicklisp/dists/quicklisp/installed/releases/{name}.txt"] = \
            f"dists/quicklisp/software/{release}/\n"
    files.update({f"quicklisp/dists/quicklisp/software/greet-1.0/{p}": t
                  for p, t in _system("greet", "greet from the dist").items()})
    files.update({f"quicklisp/local-projects/greet/{p}": t
                  for p, t in _system("greet", "greet from local-projects").items()})
    files.update({f"lisp/whisper/{p}": t for p, t in _system("whisper", "whisper").items()})
    for path, text in files.items():
        (home / path).parent.mkdir(parents=True, exist_ok=True)
        (home / path).write_text(text)
    shutil.copytree(DEBIAN / "cl-split-sequence", software / "split-sequence-20211209-git")
    return home


APP = {"app.asd": '(defsystem "app" :version "1.0" :depends-on ("greet" "whisper" "split-sequence")\n'
                  '  :components ((:file "main"))\n'
                  '  :build-operation "program-op" :entry-point "app:main")\n',
       "main.lisp": "(defpackage #:app (:use #:cl) (:export #:main))\n(in-package #:app)\n"
                    "(defun main ()\n"
                    '  (format t "~A, ~A, ~S~%" (greet:greet) (whisper:whisper)\n'
                    '          (split-sequence:split-sequence #\\, "a,b"))\n  t)\n'}


def _program_output(project: Path) -> str:
    run = subprocess.run([project / "build/bin/app"], capture_output=True, text=True)
    assert run.returncode == 0, run
    return run.stdout


def test_the_users_quicklisp_and_asdf_configuration(tmp_path, store_env):
    """Systems are found where the user's own SBCL would find them: the
    source registry ASDF configures (a .conf.d file, CL_SOURCE_REGISTRY,
    Debian's sources), then Quicklisp's local-projects and dists; which of
    two places was used is said; a library that moves rebuilds; a
    hermetic build finds none of it (issue 26 parts 1 and 2)."""
    home = _quicklisp_home(tmp_path / "home")
    project = write_project(tmp_path / "app", dodo_py('project.asdf_system("app")\n'), APP)
    # A user whose ASDF sees no Debian package: split-sequence is the dist's.
    env = {**store_env, "HOME": str(home), "XDG_DATA_DIRS": str(tmp_path / "no-data")}
    first = built(project, "-n", "2", env=env)
    assert _program_output(project) == 'greet from local-projects, whisper, ("a" "b")\n'
    assert (f"asdf: system greet: using {home}/quicklisp/local-projects/greet/greet.asd "
            f"(Quicklisp's local-projects); also found: {home}/quicklisp/dists/quicklisp/"
            f"software/greet-1.0/greet.asd (Quicklisp's dist quicklisp)") in first.output
    assert built(project, env=env).executed == set(), "a no-op"

    # The dist's split-sequence is the one compiled: an edit of it rebuilds it.
    api = home / "quicklisp/dists/quicklisp/software/split-sequence-20211209-git/api.lisp"
    api.write_text(api.read_text() + "\n(defun split-sequence-edited () t)\n")
    assert "fasl:split-sequence/api.lisp" in built(project, env=env).executed

    # With Debian's sources in ASDF's registry (its default), they come
    # before Quicklisp: the library moved, and rebuilds from there.
    env = {**store_env, "HOME": str(home)}
    moved = built(project, "-n", "2", env=env)
    assert "fasl:split-sequence/api.lisp" in moved.executed, moved.output
    assert (f"asdf: system split-sequence: using {DEBIAN}/cl-split-sequence/split-sequence.asd "
            f"(Debian's packages); also found: {api.parent}/split-sequence.asd "
            f"(Quicklisp's dist quicklisp)") in moved.output

    # CL_SOURCE_REGISTRY comes before the configuration files.
    louder = tmp_path / "louder"
    for path, text in _system("whisper", "WHISPER").items():
        (louder / "whisper" / path).parent.mkdir(parents=True, exist_ok=True)
        (louder / "whisper" / path).write_text(text)
    env["CL_SOURCE_REGISTRY"] = f'(:source-registry (:tree "{louder}/") :inherit-configuration)'
    built(project, "-n", "2", env=env)
    assert _program_output(project) == 'greet from local-projects, WHISPER, ("a" "b")\n'

    # Hermetic: the project's tree and Debian's sources only.
    env["LISPBUILD_HERMETIC"] = "1"
    hermetic = doit(project, env=env)
    assert hermetic.returncode != 0
    assert "system app depends on greet, which ASDF cannot find" in hermetic.output, \
        hermetic.output

    # The release's manifest says where each library was found, and
    # `doit verify` where a library is missing names it.
    del env["LISPBUILD_HERMETIC"]
    # The release dump hides the directory above its own, here not /tmp.
    (tmp_path / "hidden").mkdir()
    env["LISPBUILD_RELEASE_DIR"] = str(tmp_path / "hidden" / "release")
    built(project, "release:app", env=env)
    archive = project / "dist/app-1.0-x86_64-linux.tar.gz"
    manifest = json.loads(tarfile.open(archive).extractfile("app-1.0/manifest.json").read())
    assert {lib["library"]: lib["found_in"] for lib in manifest["libraries"]} == {
        "app": "the project's registry", "greet": "Quicklisp's local-projects",
        "whisper": "the ASDF source registry", "split-sequence": "Debian's packages"}
    (home / "quicklisp").rename(tmp_path / "quicklisp-elsewhere")
    verify = doit(project, "verify", str(archive), env=env)
    assert verify.returncode == 1, verify.output
    assert (f"library greet (ASDF system greet, found in Quicklisp's local-projects at "
            f"{home}/quicklisp/local-projects/greet): missing here") in verify.output
