"""A cold build compiles a serial library's files in one job, as ASDF
compiles a system (rules/lisp.py, compile.lisp): each file still its own
FASL, key, record and `doit why` entry, the same bytes as a compile alone.
Without SBCL: the fake runner (fakelisp.py) compiles followers as
compile.lisp does."""
import pytest

from fakelisp import FakeLisp, doit_here, write
from lispbuild.commands.why import explain
from lispbuild.digest import DigestCache
from dodo_text import dodo_py

DODO = dodo_py("""\
project.library("util", ["a.lisp", "b.lisp", "c.lisp"], directory="util")
project.library("side", {"x.lisp": [], "y.lisp": ["x.lisp"], "z.lisp": ["x.lisp"]},
                directory="side")
project.library("app", ["main.lisp"], directory="app", depends_on=["util", "side"])
""")
SOURCES = {"util/a.lisp": "(defmacro twice (x) (list x x))\n",
           "util/b.lisp": "(defun b () (twice 1))\n",
           "util/c.lisp": "(defun c () (b))\n",
           "side/x.lisp": "(defun x () 1)\n", "side/y.lisp": "(defun y () (x))\n",
           "side/z.lisp": "(defun z () (x))\n",
           "app/main.lisp": "(defun main () (c) (y) (z))\n"}
FASLS = ["util/a", "util/b", "util/c", "side/x", "side/y", "side/z", "app/main"]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.delenv("LISPBUILD_STORE", raising=False)
    monkeypatch.delenv("LISPBUILD_REMOTE", raising=False)
    monkeypatch.delenv("LISPBUILD_CHECK_REUSE", raising=False)
    return make_project(tmp_path / "project")


def make_project(root):
    write(root / "dodo.py", DODO)
    for name, text in SOURCES.items():
        write(root / name, text)
    return root


def chained(root) -> FakeLisp:
    fake = FakeLisp(root)
    fake.chain = True
    return fake


def build(root, fake, *tasks) -> FakeLisp:
    code, fake.said = doit_here(root, fake, *(tasks or ("lib",)))
    assert code == 0, fake.said
    return fake


def outputs(root) -> dict[str, bytes]:
    return {f"{name}.{kind}": (root / f"build/fasl/{name}.{kind}").read_bytes()
            for name in FASLS for kind in ("fasl", "trace", "undefined", "reads")}


def test_a_cold_build_compiles_a_serial_librarys_files_in_the_first_ones_job(project):
    fake = build(project, chained(project))
    assert fake.followed == ["util/b.lisp", "util/c.lisp", "side/y.lisp"]
    # y's sibling z needs x only: it compiles in a job of its own, beside y.
    assert sorted(fake.ran) == ["fasl:app/main.lisp", "fasl:side/x.lisp", "fasl:side/z.lisp",
                                "fasl:util/a.lisp"]
    # doit shows each follower's task as run (its outputs are this build's), not up to date.
    for task in ("fasl:util/b.lisp", "fasl:util/c.lisp", "fasl:side/y.lisp"):
        assert f".  {task}" in fake.said.splitlines() and f"-- {task}" not in fake.said, fake.said


def test_followers_are_the_same_bytes_as_files_compiled_alone(project, tmp_path):
    build(project, chained(project))
    alone = make_project(tmp_path / "alone")
    build(alone, FakeLisp(alone))
    assert outputs(project) == outputs(alone)


def test_doit_why_says_a_follower_was_compiled_after_the_file_before_it(project):
    build(project, chained(project))
    said = explain(DigestCache(project / "build/.lispbuild/digests.sqlite3"), "fasl:util/b.lisp")
    assert "compiled in the process of the file before it" in said[0]


def test_the_build_after_a_chained_one_runs_nothing(project):
    build(project, chained(project))
    fake = build(project, chained(project))
    assert fake.ran == [] and fake.followed == []


def test_an_edit_compiles_alone_where_the_files_after_it_were_built(project):
    build(project, chained(project))
    write(project / "util/a.lisp", "(defmacro twice (x) (list x x x))\n")
    fake = build(project, chained(project))
    assert fake.followed == []
    # b uses the macro (its own task compiles it again); c does not (its trace reuses it).
    assert fake.ran == ["fasl:util/a.lisp", "fasl:util/b.lisp"]


def test_a_follower_edited_while_the_chain_ran_is_compiled_by_its_own_task(project):
    fake = chained(project)
    fake.during["fasl:util/a.lisp"] = lambda: write(project / "util/b.lisp",
                                                    "(defun b () (twice 2))\n")
    build(project, fake)
    assert "fasl:util/b.lisp" in fake.ran
    alone = FakeLisp(project)
    assert build(project, alone).ran == []  # what its own task recorded is its source's


def test_a_follower_that_does_not_compile_fails_in_its_own_task(project):
    fake = chained(project)
    fake.failing_followers.add("util/b.lisp")
    fake.failing["fasl:util/b.lisp"] = "util/b.lisp:1: ERROR: no such macro"
    code, said = doit_here(project, fake, "lib")
    assert code != 0
    assert "util/b.lisp:1: ERROR: no such macro" in said
    assert (project / "build/fasl/util/a.fasl").exists()
    assert not (project / "build/fasl/util/c.fasl").exists()


def test_check_reuse_compiles_each_follower_alone_too(project, monkeypatch):
    monkeypatch.setenv("LISPBUILD_CHECK_REUSE", "1")
    fake = build(project, chained(project))
    assert fake.ran.count("fasl:util/b.lisp") == 1 and fake.ran.count("fasl:util/c.lisp") == 1


def test_check_reuse_fails_when_a_follower_differs_from_a_compile_alone(project, monkeypatch):
    monkeypatch.setenv("LISPBUILD_CHECK_REUSE", "1")
    fake = chained(project)
    fake.chain_differs = True
    code, said = doit_here(project, fake, "lib")
    assert code != 0
    assert ("fasl:util/b.lisp: LISPBUILD_CHECK_REUSE: compiled after fasl:util/a.lisp in its "
            "process, its outputs differ from a compile alone (fasl)") in said
