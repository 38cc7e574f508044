"""ASDF systems, Debian's Common Lisp libraries, CFFI and test suites, built
from the repository's dodo.py with real SBCL, ASDF and musl-gcc."""
import contextlib
import os
import runpy
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import (REPO, asdf_dodo, built, doit, empty_root_command, run_in_empty_root,
                      write_project)
from dodo_text import dodo_py
from lispbuild.asdf import asdf_libraries
from lispbuild.sbcl.driver import FreshSbcl
from lispbuild.graph import plan
from lispbuild.action import Context
from lispbuild.buildlock import release_build_lock
from lispbuild.rules.lisp import grovel_action


def test_ppcre_grep_runs_from_an_empty_root(samples, tmp_path):
    text = tmp_path / "poem.txt"
    text.write_text("The Lisp\nis static\nnow, LISP forever\n")
    run = run_in_empty_root(samples / "build/bin/ppcre-grep", tmp_path, "-i", "li?sp",
                            "/poem.txt", files=[text])
    assert run.returncode == 0, run.stderr
    assert run.stdout == ("1:The Lisp\n3:now, LISP forever\n"
                          "2 matching lines, longest 17 characters\n")


def test_ppcre_grep_reports_bad_patterns_and_no_match(samples, tmp_path):
    exe = samples / "build/bin/ppcre-grep"
    none = subprocess.run([exe, "zzz", str(samples / "dodo.py")], capture_output=True, text=True)
    assert none.returncode == 1 and none.stdout.startswith("0 matching lines")
    bad = subprocess.run([exe, "(", str(samples / "dodo.py")], capture_output=True, text=True)
    assert bad.returncode == 2 and "bad pattern" in bad.stderr


def test_cl_ppcre_own_test_suite_passes_in_a_static_executable(samples):
    exe = samples / "build/bin/cl-ppcre-tests"
    ldd = subprocess.run(["ldd", exe], capture_output=True, text=True)
    assert "not a dynamic executable" in ldd.stdout + ldd.stderr
    run = subprocess.run([exe], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "Test: Running tests in file \"perltestdata\"" in run.stdout
    assert run.stdout.rstrip().endswith("All tests passed.")


def test_test_task_shows_results_and_passes(samples):
    result = built(samples, "test:ppcre-grep-tests")
    assert "Did 4 checks." in result.output
    assert "Pass: 4 (100%)" in result.output


def test_a_failing_test_fails_the_test_task(samples):
    test_file = samples / "samples/ppcre-grep/test.lisp"
    original = test_file.read_text()
    try:
        test_file.write_text(original.replace('(is (null (lines-matching "^hello" "Hello")))',
                                              '(is (lines-matching "^hello" "Hello"))'))
        result = doit(samples, "test:ppcre-grep-tests")
        assert result.returncode != 0
        assert "Fail: 1" in result.output
        assert "build/bin/ppcre-grep-tests exited with 1, expected 0" in result.output
    finally:
        test_file.write_text(original)
    built(samples, "exe:ppcre-grep-tests")


def get(url: str, deadline: float):
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_webserver_answers_from_an_empty_root(samples, tmp_path):
    exe = samples / "build/bin/webserver"
    with open(exe, "rb") as f:
        from elftools.elf.elffile import ELFFile
        assert "PT_INTERP" not in {s.header.p_type for s in ELFFile(f).iter_segments()}
    port = free_port()
    server = subprocess.Popen(empty_root_command(exe, tmp_path, str(port)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        status, body = get(f"http://127.0.0.1:{port}/", time.monotonic() + 60)
        assert status == 200
        assert body.startswith("hello from a static hunchentoot\nOpenSSL #x3")
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_openssl_1_names_cl_ssl_declares_are_reported_not_fatal(samples):
    output = (samples / "build-output.txt").read_text()
    line = next(l for l in output.splitlines() if l.startswith("webserver: not linked"))
    assert "SSLv3_method" in line and "SSL_library_init" in line
    assert "SSL_new" not in line


def test_a_loaded_foreign_library_without_archives_is_an_error(samples):
    dodo = samples / "dodo.py"
    original = dodo.read_text()
    try:
        dodo.write_text(original.replace('"libssl": ["/usr/lib/x86_64-linux-gnu/libssl.a"],', ""))
        result = doit(samples, "exe:webserver")
        assert result.returncode != 0
        assert "TaskFailed - taskid:linkage:webserver" in result.output
        assert "binary webserver: the image loads" in result.output
        assert "libssl.so" in result.output
        assert "'libssl': ['/usr/lib/x86_64-linux-gnu/libssl.a']" in result.output
    finally:
        dodo.write_text(original)
    # The core's record of the C names its strings hold depends on the
    # archives (rules/binary.py): it is restored, the runtime is not relinked.
    assert built(samples, "exe:webserver").executed <= {"core:webserver", "linkage:webserver"}


def test_no_op_build_of_asdf_systems_starts_no_sbcl(samples, tmp_path):
    trace = tmp_path / "exec.log"
    env = {k: v for k, v in os.environ.items() if k != "LISPBUILD_STORE"}
    proc = subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace),
                           sys.executable, "-m", "doit"], cwd=samples,
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "\n. " not in "\n" + proc.stdout
    programs = {os.path.basename(line.split('"')[1]) for line in trace.read_text().splitlines()
                if "execve(" in line and "= 0" in line}
    assert "sbcl" not in programs, programs


@pytest.fixture
def grep_project(tmp_path, store_env):
    """ppcre-grep with its own copy of cl-ppcre, found first in the registry."""
    project = tmp_path / "grep"
    shutil.copytree(REPO / "samples/ppcre-grep", project)
    shutil.copytree("/usr/share/common-lisp/source/cl-ppcre", project / "cl-ppcre")
    (project / "dodo.py").write_text(asdf_dodo("ppcre-grep", "ppcre-grep", "ppcre-grep",
                                              ', entry_arguments="command-line-arguments"'))
    first = built(project, "-n", "2", env=store_env)
    assert "fasl:cl-ppcre/api.lisp" in first.executed or "-- fasl:cl-ppcre/api.lisp" in first.output
    return project


def test_a_change_in_a_dependency_recompiles_only_what_consulted_it(grep_project, store_env):
    api = grep_project / "cl-ppcre/api.lisp"
    api.write_text(api.read_text() + "\n(defun lispbuild-was-here () t)\n")
    result = built(grep_project, env=store_env)
    fasls = {t for t in result.executed if t.startswith("fasl:")}
    # api.lisp is cl-ppcre's last file. grep.lisp calls CL-PPCRE:SCAN, whose
    # compiler macro api.lisp defines: it compiles again; package.lisp
    # consulted nothing api.lisp defines, and keeps its FASL (reuse.py).
    assert fasls == {"fasl:cl-ppcre/api.lisp", "fasl:ppcre-grep/grep.lisp"}
    assert {"core:ppcre-grep", "exe:ppcre-grep"} <= result.executed
    assert "runtime:ppcre-grep" not in result.executed


def test_an_edited_asd_file_rederives_the_graph(grep_project, store_env):
    (grep_project / "extra.lisp").write_text("(in-package #:ppcre-grep)\n(defun extra () 1)\n")
    asd = grep_project / "ppcre-grep.asd"
    asd.write_text(asd.read_text().replace('(:file "grep")))', '(:file "grep")\n'
                                                               '               (:file "extra")))', 1))
    result = built(grep_project, env=store_env)
    assert "fasl:ppcre-grep/extra.lisp" in result.executed


SHADOWED_DODO = dodo_py("""\
project.asdf_system("app", registry=["app", "vendor"])
project.binary("app", libraries=["app"], entry="app:main")
""")


def lib_files(where: str, says: str) -> dict:
    return {f"{where}/lib.asd": '(defsystem "lib" :components ((:file "lib")))\n',
            f"{where}/lib.lisp": "(defpackage #:lib (:use #:cl) (:export #:which))\n"
                                 f'(in-package #:lib)\n(defun which () "{says}")\n'}


def test_a_new_asd_file_in_a_registry_tree_is_seen(tmp_path, store_env):
    """ASDF's answer is kept; an .asd file that appears in a registry tree
    (here one that ASDF finds before the vendored copy) asks it again."""
    project = write_project(tmp_path / "shadow", SHADOWED_DODO, {
        "app/app.asd": '(defsystem "app" :depends-on ("lib") :components ((:file "main")))\n',
        "app/main.lisp": "(defpackage #:app (:use #:cl) (:export #:main))\n(in-package #:app)\n"
                         '(defun main () (write-line (lib:which)) 0)\n',
        **lib_files("vendor/lib", "vendored")})
    built(project, env=store_env)
    run = lambda: subprocess.run([project / "build/bin/app"], capture_output=True,
                                 text=True).stdout
    assert run() == "vendored\n"
    assert not built(project, env=store_env).executed  # the kept answer, unchanged trees
    (project / "app/notes.txt").write_text("a directory of the tree changes, no .asd\n")
    assert not built(project, env=store_env).executed
    for name, text in lib_files("app/lib", "local").items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    result = built(project, env=store_env)
    assert "fasl:lib/lib.lisp" in result.executed, result.output
    assert run() == "local\n"


APP = ("(defpackage #:app (:use #:cl) (:export #:main))\n(in-package #:app)\n"
       "(defun main () (length (rest sb-ext:*posix-argv*)))\n")


def asdf_failure(tmp_path, asd: str, system="app") -> str:
    """What `doit` says of a binary that needs a system ASDF cannot give;
    the tasks are still there to list."""
    project = write_project(tmp_path / "bad", asdf_dodo(system, library=system),
                            {"app.asd": asd, "app.lisp": APP})
    listed = doit(project, "list", "--all")
    assert listed.returncode == 0 and "exe:app" in listed.output, listed.output
    result = doit(project)
    assert result.returncode != 0
    assert "Traceback" not in result.output
    return result.output


def cannot_give(system: str) -> str:
    return f"binary app needs ASDF system {system}, which ASDF cannot give:\nasdf: ERROR: "


TWO_SYSTEMS_DODO = dodo_py("""\
project.asdf_system("app")
project.asdf_system("broken")
project.binary("app", libraries=["app"], entry="app:main")
project.binary("other", libraries=["broken"], entry="app:main")
""")


def test_a_system_asdf_cannot_give_spoils_only_what_needs_it(tmp_path):
    project = write_project(tmp_path / "two", TWO_SYSTEMS_DODO, {
        "app.asd": '(defsystem "app" :components ((:file "app")))',
        "broken.asd": '(defsystem "broken" :depends-on ("no-such-system"))',
        "app.lisp": APP})
    result = doit(project, "-c", "-n", "2")
    assert result.returncode != 0
    assert ("binary other needs ASDF system broken, which ASDF cannot give:\n"
            "asdf: ERROR: system broken depends on no-such-system, which ASDF cannot find"
            in result.output), result.output
    run = subprocess.run([project / "build/bin/app", "x"], capture_output=True)
    assert run.returncode == 1 and not (project / "build/bin/other").exists()
    # Fixed: the next build asks ASDF again and builds it.
    (project / "broken.asd").write_text('(defsystem "broken" :depends-on ("app"))')
    built(project, "-n", "2")
    assert subprocess.run([project / "build/bin/other", "x", "y"]).returncode == 2


SUITE_DODO = dodo_py("""\
project.asdf_system("{system}")
project.test("{name}", libraries=["{system}"], function="{function}")
""")


def debian_suite(tmp_path, store_env, system: str, name: str, function: str):
    """A project of nothing but a Debian library's test system, its tests
    built and run; the project's path and doit's run."""
    project = write_project(tmp_path / name, SUITE_DODO.format(
        system=system, name=name, function=function), {})
    return project, built(project, "-n", "2", "test", env=store_env)


def test_a_test_system_defined_in_another_systems_asd(tmp_path, store_env):
    """Debian's flexi-streams-test is defined in flexi-streams.asd: ASDF
    alone finds it only once flexi-streams was looked up, and loads that
    .asd again while it plans."""
    project, result = debian_suite(tmp_path, store_env, "flexi-streams-test", "flexi",
                                   "flexi-streams-test:run-all-tests")
    assert "All tests passed." in result.output, result.output[-3000:]
    run = subprocess.run([project / "build/bin/flexi"], capture_output=True, text=True)
    assert run.returncode == 0 and "All tests passed." in run.stdout


def test_system_asdf_cannot_find_is_named_with_where_it_looked(tmp_path):
    output = asdf_failure(tmp_path, '(defsystem "app" :components ((:file "app")))', "nowhere")
    assert cannot_give("nowhere") + "ASDF cannot find system nowhere" in output
    assert "searched: " in output and "/usr/share/common-lisp/source/" in output


def test_missing_dependency_is_named(tmp_path):
    output = asdf_failure(tmp_path, '(defsystem "app" :depends-on ("no-such-system")'
                                    ' :components ((:file "app")))')
    assert cannot_give("app") + "system app depends on no-such-system, which ASDF cannot find" \
        in output


def test_circular_depends_on_is_named(tmp_path):
    output = asdf_failure(tmp_path, '(defsystem "app" :depends-on ("app-b") :components'
                                    ' ((:file "app")))\n(defsystem "app-b" :depends-on ("app"))')
    assert cannot_give("app") + "circular dependency: app -> app-b -> app" in output


def test_asd_that_fails_to_load_shows_the_condition(tmp_path):
    output = asdf_failure(tmp_path, '(defsystem "app" :componentz ((:file "app")))')
    assert cannot_give("app") in output and "app.asd" in output and ":COMPONENTZ" in output


def test_missing_component_file_is_named(tmp_path):
    output = asdf_failure(tmp_path, '(defsystem "app" :components ((:file "app")'
                                    ' (:file "gone")))')
    assert "fasl:app/gone.lisp: input file gone.lisp does not exist" in output


def test_asdf_component_features_and_contribs(tmp_path, store_env):
    """:defsystem-depends-on, :pathname, :if-feature, :serial, nested modules,
    component :depends-on and an SBCL contrib, in one system."""
    project = write_project(tmp_path / "features", asdf_dodo("dsd-app", "dsd-app"), {
        "helper/dsd-helper.asd": '(defsystem "dsd-helper" :components ((:file "helper")))',
        "helper/helper.lisp": "(defpackage #:dsd-helper (:use #:cl) (:export #:shout))\n"
                              "(in-package #:dsd-helper)\n"
                              "(defmacro shout (s) (string-upcase s))\n",
        "dsd-app.asd": '(defsystem "dsd-app" :defsystem-depends-on ("dsd-helper")'
                       ' :depends-on ("sb-posix") :pathname "src/"\n'
                       '  :components ((:file "package")\n'
                       '   (:file "sbcl-only" :if-feature :sbcl :depends-on ("package"))\n'
                       '   (:file "never" :if-feature (:not :sbcl) :depends-on ("package"))\n'
                       '   (:module "words" :pathname "lexicon/" :serial t :depends-on ("package")\n'
                       '    :components ((:file "first") (:module "deeper" :components'
                       ' ((:file "second")))))\n'
                       '   (:file "main" :depends-on ("package" "sbcl-only" "words"))))',
        "src/package.lisp": "(defpackage #:app (:use #:cl) (:export #:main))",
        "src/sbcl-only.lisp": '(in-package #:app)\n(defun where () "sbcl")',
        "src/never.lisp": "(this file is not compiled on sbcl",
        "src/lexicon/first.lisp": '(in-package #:app)\n(defmacro word () "static")',
        # Compiles only if first.lisp was loaded before it (:serial).
        "src/lexicon/deeper/second.lisp": '(in-package #:app)\n(defun pid-word ()\n'
                                          '  (format nil "~A ~:[no-pid~;pid~]" (word)'
                                          ' (plusp (sb-posix:getpid))))',
        "src/main.lisp": '(in-package #:app)\n'
                         '(defun main ()\n'
                         '  (format t "~A ~A ~A~%" (dsd-helper:shout "static") (where)'
                         ' (pid-word)) 0)\n'})
    result = built(project, env=store_env)
    assert "fasl:dsd-app/never.lisp" not in result.output
    assert {"fasl:dsd-helper/helper.lisp", "fasl:dsd-app/lexicon/first.lisp",
            "fasl:dsd-app/lexicon/deeper/second.lisp"} <= result.executed
    run = subprocess.run([project / "build/bin/app"], capture_output=True, text=True)
    assert run.stdout == "STATIC sbcl static pid\n", run.stderr
    # A pure-Lisp edit to the nested module recompiles it alone: main.lisp,
    # which only calls it, keeps its FASL (reuse.py).
    second = project / "src/lexicon/deeper/second.lisp"
    second.write_text(second.read_text().replace('"~A ~:', '"~A, ~:'))
    again = built(project, env=store_env)
    assert {t for t in again.executed if t.startswith("fasl:")} == {
        "fasl:dsd-app/lexicon/deeper/second.lisp"}
    assert "runtime:app" not in again.executed
    run = subprocess.run([project / "build/bin/app"], capture_output=True, text=True)
    assert run.stdout == "STATIC sbcl static, pid\n", run.stderr


GROVEL_FILES = {
    "app.asd": '(defsystem "app" :defsystem-depends-on ("cffi-grovel") :depends-on ("cffi")\n'
               '  :serial t :components ((:file "package") (:cffi-grovel-file "constants")'
               ' (:file "main")))\n',
    "package.lisp": "(defpackage #:app (:use #:cl) (:export #:main))\n",
    "constants.lisp": '(in-package #:app)\n(include "errno.h" "sys/utsname.h")\n'
                      '(constant (+eagain+ "EAGAIN"))\n'
                      '(cstruct utsname "struct utsname" (machine "machine" :type :char))\n',
    "main.lisp": '(in-package #:app)\n(defun main () (format t "~D ~D~%" +eagain+'
                 " (cffi:foreign-type-size '(:struct utsname))) 0)\n",
}


def same_as_fresh(project: Path, node: str, role: str, tmp_path: Path) -> bool:
    """Whether a fresh SBCL, run on what build/ holds, writes the `role`
    output of the grovel task of `node` (LIB/FILE) as the build did."""
    with contextlib.chdir(project):
        dodo = runpy.run_path("dodo.py")["project"]
        ctx = Context(root=project, store_root=project / "cache")
        ctx.lisp = FreshSbcl(ctx)
        action = grovel_action(plan(dodo, asdf_libraries(dodo, ctx)).fasls[node])
        outputs = {r: tmp_path / f"fresh-{Path(p).name}" for r, p in action.outputs.items()}
        try:
            action.run(action, ctx, outputs)
        finally:
            release_build_lock()  # taken to compile lispbuild's Lisp, if it had to
    return outputs[role].read_bytes() == (project / action.outputs[role]).read_bytes()


def test_a_grovel_file_is_groveled_with_musl_then_compiled(tmp_path, store_env):
    project = write_project(tmp_path / "grovel", asdf_dodo("app"), GROVEL_FILES)
    result = built(project, "-n", "2", env=store_env)
    assert "grovel:app/constants.lisp" in result.executed
    assert "(cl:defconstant +eagain+ 11)" in \
        (project / "build/grovel/app/constants.lisp").read_text()
    run = run_in_empty_root(project / "build/bin/app", tmp_path)
    assert run.returncode == 0 and run.stdout == "11 390\n", run
    # A worker grovelled it; a fresh SBCL writes the same bytes
    # (runners.SAME_BYTES).
    assert same_as_fresh(project, "app/constants.lisp", "lisp", tmp_path)

    # A C program that does not build: the file, the compiler's words; the
    # executable stays.
    constants = project / "constants.lisp"
    constants.write_text(GROVEL_FILES["constants.lisp"].replace("errno.h", "no-such-header.h"))
    result = doit(project, env=store_env)
    assert result.returncode != 0
    assert "TaskFailed - taskid:grovel:app/constants.lisp" in result.output
    assert "constants.lisp: ERROR: the grovel file's C program failed to build or run" \
        in result.output
    assert "no-such-header.h: No such file or directory" in result.output
    assert subprocess.run([project / "build/bin/app"], capture_output=True,
                          text=True).stdout == "11 390\n"


def test_trivial_features_test_suite_with_its_grovel_file_passes_static(tmp_path, store_env):
    project, result = debian_suite(tmp_path, store_env, "trivial-features-tests",
                                   "trivial-features", "regression-test:do-tests")
    assert "grovel:trivial-features-tests/tests/utsname.lisp" in result.executed
    assert "No tests failed." in result.output, result.output[-3000:]
    run = run_in_empty_root(project / "build/bin/trivial-features", tmp_path)
    assert run.returncode == 0 and "No tests failed." in run.stdout, run


def test_a_source_file_of_another_language_is_reported_by_name(tmp_path):
    output = asdf_failure(tmp_path, '(defsystem "app"'
                                    ' :components ((:file "app") (:java-source-file "Wrap")))')
    assert cannot_give("app") + "component Wrap of system app is a java-source-file; " \
        "lispbuild compiles Lisp source files, CFFI grovel and wrapper files and C source " \
        "files only" in output, output
