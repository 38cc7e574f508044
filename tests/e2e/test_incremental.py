"""What a change rebuilds: each test edits a copy of the samples that
shares one store with the others, so only the change itself is built."""
import os
import subprocess

import pytest

from conftest import built, copy_samples, doit, write_project
from dodo_text import dodo_py

HELLO = "exe:hello"


@pytest.fixture
def hello(tmp_path, store_env):
    project = copy_samples(tmp_path / "project")
    built(project, HELLO, env=store_env)
    return project


def output_of(project, *args):
    return subprocess.run([str(project / "build/bin/hello"), *args],
                          capture_output=True, text=True).stdout


def test_editing_one_file_recompiles_it_alone_when_the_others_only_call_it(hello, store_env):
    text = hello / "samples/hello/util/text.lisp"
    text.write_text(text.read_text().replace('"~D: ~A~%"', '"~D) ~A~%"'))
    result = built(hello, HELLO, env=store_env)
    # hello's files consulted no macro, type or constant of text.lisp: their
    # FASLs are reused (reuse.py); the libraries' checks load the new one.
    assert result.executed == {"fasl:hello-util/text.lisp", "lib:hello-util", "lib:hello",
                               "core:hello", "exe:hello"}
    # Same foreign symbols: the runtime is neither relinked nor re-resolved.
    assert "runtime:hello" not in result.executed
    assert "linkage:hello" not in result.executed
    assert output_of(hello, "a") == "hello from a static SBCL: 1 argument\n1) a\n"


def test_a_file_nothing_depends_on_recompiles_alone(hello, store_env):
    main = hello / "samples/hello/app/main.lisp"
    main.write_text(main.read_text().replace("argument~:P", "arg~:P"))
    result = built(hello, HELLO, env=store_env)
    assert result.executed == {"fasl:hello/main.lisp", "lib:hello", "core:hello", "exe:hello"}
    assert output_of(hello, "a").startswith("hello from a static SBCL: 1 arg\n")


def test_a_trailing_comment_does_not_redump_the_core(hello, store_env):
    text = hello / "samples/hello/util/text.lisp"
    text.write_text(text.read_text() + ";; a comment at the end\n")
    result = built(hello, HELLO, env=store_env)
    # The file is recompiled, its FASL is byte-identical, nothing else runs.
    assert result.executed == {"fasl:hello-util/text.lisp"}


def test_touching_a_file_changes_nothing(hello, store_env):
    text = hello / "samples/hello/util/text.lisp"
    text.write_text(text.read_text())
    assert built(hello, HELLO, env=store_env).executed == set()


def test_changing_features_recompiles_what_they_affect(hello, store_env):
    dodo = hello / "dodo.py"
    dodo.write_text(dodo.read_text().replace(
        'depends_on=["hello-util"])', 'depends_on=["hello-util"], features=["hello-shout"])'))
    result = built(hello, HELLO, env=store_env)
    # The image's *features* hold them too: base:hello dumps it again.
    assert result.executed == {"fasl:hello/package.lisp", "fasl:hello/main.lisp",
                               "lib:hello", "base:hello", "core:hello", "exe:hello"}
    assert output_of(hello).startswith("HELLO FROM A STATIC SBCL: 0 arguments")


def test_changing_the_policy_recompiles_that_library(hello, store_env):
    dodo = hello / "dodo.py"
    dodo.write_text(dodo.read_text().replace(
        'directory="samples/hello/util")',
        'directory="samples/hello/util", policy={"debug": 3})'))
    result = built(hello, HELLO, env=store_env)
    assert {"fasl:hello-util/package.lisp", "fasl:hello-util/text.lisp"} <= result.executed
    assert "runtime:hello" not in result.executed


POLICY_DODO = dodo_py("""\
project.library("careful", ["careful.lisp"], directory="src",
                policy={"safety": 0, "debug": 3, "speed": 1})
project.binary("careful", libraries=["careful"], entry="careful:main")
""")
# The qualities the compiler has while it reads the file.
POLICY_SEEN = """\
(defpackage #:careful (:use #:cl) (:export #:main))
(in-package #:careful)
(defun main ()
  (format t "~S~%" '#.(mapcar (lambda (q) (sb-c::policy-quality sb-c::*policy* q))
                              '(safety debug speed)))
  0)
"""


def test_a_librarys_policy_reaches_the_compiler(tmp_path, store_env):
    project = write_project(tmp_path / "policy", POLICY_DODO, {"src/careful.lisp": POLICY_SEEN})
    result = built(project, env=store_env)
    assert "Ignoring bad optimization value" not in result.output, result.output
    run = subprocess.run([project / "build/bin/careful"], capture_output=True, text=True)
    assert run.stdout == "(0 3 1)\n", run.stdout + run.stderr


def test_changing_compression_redumps_the_core(hello, store_env):
    dodo = hello / "dodo.py"
    text = dodo.read_text()
    assert 'entry="hello:main",' in text
    dodo.write_text(text.replace('entry="hello:main",', 'entry="hello:main", compression=True,'))
    size = (hello / "build/bin/hello").stat().st_size
    result = built(hello, HELLO, env=store_env)
    assert {"core:hello", "exe:hello"} <= result.executed
    assert not any(t.startswith("fasl:") for t in result.executed)
    assert (hello / "build/bin/hello").stat().st_size < size / 2
    assert output_of(hello, "z") == "hello from a static SBCL: 1 argument\n1: z\n"


def test_a_new_foreign_symbol_relinks_the_runtime(hello, store_env):
    main = hello / "samples/hello/app/main.lisp"
    main.write_text(main.read_text().replace(
        "(or (requested-exit-code args) 0)",
        '(format t "parent ~D~%" (sb-alien:alien-funcall'
        ' (sb-alien:extern-alien "getppid" (function sb-alien:int))))'
        " (or (requested-exit-code args) 0)"))
    result = built(hello, HELLO, env=store_env)
    assert {"linkage:hello", "runtime:hello"} <= result.executed
    assert "function getppid" in (hello / "build/core/hello.linkage").read_text().splitlines()
    assert output_of(hello).endswith(f"parent {os.getpid()}\n")


def test_parallel_build_compiles_independent_files_together(tmp_path, store_env):
    project = copy_samples(tmp_path / "parallel")
    # This machine's (the aarch64 ones: test_aarch64.py).
    result = doit(project, "-n", "2", "exe:hello", "exe:ffi", "exe:primes",
                  env={**store_env, "LISPBUILD_STORE": str(tmp_path / "s")})
    assert result.returncode == 0, result.output
    assert {"exe:hello", "exe:ffi", "exe:primes"} <= result.executed
