"""Compilation modes, end to end: LISPBUILD_MODE and a binary's mode= set
the policy and features the project's files are compiled with; switching
back restores from the store; a release records its mode."""
import json
import os
import subprocess
import tarfile

from conftest import built, write_project
from dodo_text import dodo_py

DODO = dodo_py("""\
project.library("report", ["report.lisp"], directory="report")
project.binary("report", libraries=["report"], entry="report:main", version="1.0.0")
project.binary("report-dbg", libraries=["report"], entry="report:main", mode="dbg")
""")
# What the file was compiled with, read at compile time.
REPORT = """\
(defpackage #:report (:use #:cl) (:export #:main))
(in-package #:report)
(defparameter *mode* #+opt "opt" #+dbg "dbg" #-(or opt dbg) "fastbuild")
(defparameter *policy*
  #.(with-output-to-string (*standard-output*) (sb-ext:describe-compiler-policy)))
(defun main () (format t "~A~%~A" *mode* *policy*) 0)
"""


def compiled_with(exe) -> tuple[str, dict]:
    lines = subprocess.run([exe], capture_output=True, text=True, check=True,
                           timeout=60).stdout.splitlines()
    qualities = dict(line.split(" = ") for line in lines if line in (
        f"{q} = {n}" for q in ("SPEED", "DEBUG", "SAFETY") for n in range(4)))
    return lines[0], {q: int(n) for q, n in qualities.items()}


def test_modes_set_the_policy_and_features_and_switching_back_compiles_nothing(
        tmp_path, store_env):
    project = write_project(tmp_path / "modes", DODO, {"report/report.lisp": REPORT})
    report, report_dbg = project / "build/bin/report", project / "build/bin/report-dbg"
    built(project, "-n", "2", env=store_env)
    assert compiled_with(report) == ("fastbuild", {"SPEED": 1, "DEBUG": 2, "SAFETY": 3})
    assert compiled_with(report_dbg) == ("dbg", {"SPEED": 1, "DEBUG": 3, "SAFETY": 3})

    opt = built(project, "-n", "2", env={**store_env, "LISPBUILD_MODE": "opt"})
    assert compiled_with(report) == ("opt", {"SPEED": 3, "DEBUG": 1, "SAFETY": 1})
    assert compiled_with(report_dbg)[0] == "dbg"
    assert "fasl:report/report.lisp" in opt.executed
    assert not any(task.startswith(("fasl:report@dbg", "core:report-dbg"))
                   for task in opt.executed), opt.output

    back = built(project, "-n", "2", env=store_env)
    assert compiled_with(report)[0] == "fastbuild"
    made = [task for task in back.executed if task.startswith(("fasl:", "core:"))]
    assert made, back.output
    for task in made:  # `doit why` says how each ran
        why = built(project, "why", task, env=store_env).output
        assert "(restored from a store)" in why, why


def test_a_release_records_its_mode(tmp_path, store_env):
    project = write_project(tmp_path / "modes", DODO, {"report/report.lisp": REPORT})
    env = {**store_env, "LISPBUILD_MODE": "opt", "LISPBUILD_ALLOW_DIRTY": "1"}
    built(project, "-n", "2", "release:report", env=env)
    with tarfile.open(project / "dist/report-1.0.0-x86_64-linux.tar.gz") as archive:
        manifest = json.load(archive.extractfile("report-1.0.0/manifest.json"))
    assert manifest["mode"] == "opt" and manifest["format"] == 3
    assert compiled_with(project / "build/release/report/report")[0] == "opt"
