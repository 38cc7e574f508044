"""The rebuilder's decisions, case by case, without SBCL: doit runs in this
process and a fake Lisp runner (fakelisp.py) does the jobs. Each test says
what the build must do (nothing, restore, run which jobs) and checks what
it did."""
import json
import os

import pytest

from fakelisp import FakeLisp, doit_here, http_store, write
from lispbuild.commands.why import explain
from lispbuild.digest import DigestCache
from lispbuild.store import Store
from dodo_text import dodo_py

DODO = dodo_py("""\
project.library("util", ["a.lisp", "b.lisp"], directory="util")
project.library("app", ["main.lisp"], directory="app", depends_on=["util"])
""")
SOURCES = {"util/a.lisp": "(defun a () 1)\n", "util/b.lisp": "(defun b () (a))\n",
           "app/main.lisp": "(defun main () (b))\n"}
# lib:NAME starts SBCL only when a FASL refers to something undefined.
EVERY_JOB = ["fasl:util/a.lisp", "fasl:util/b.lisp", "fasl:app/main.lisp"]
FASLS = ["build/fasl/util/a.fasl", "build/fasl/util/b.fasl", "build/fasl/app/main.fasl"]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.delenv("LISPBUILD_STORE", raising=False)
    monkeypatch.delenv("LISPBUILD_REMOTE", raising=False)
    root = tmp_path / "project"
    write(root / "dodo.py", DODO)
    for name, text in SOURCES.items():
        write(root / name, text)
    return root


def build(root, *tasks: str, fake=None) -> FakeLisp:
    """A build of `tasks` (every library by default), which must succeed:
    the fake runner, whose `ran` lists the jobs it did, and `said`, what
    doit's reporter wrote."""
    fake = fake or FakeLisp(root)
    code, fake.said = doit_here(root, fake, *(tasks or ("lib",)))
    assert code == 0, fake.said
    return fake


def fasls(root) -> dict[str, bytes]:
    return {f: (root / f).read_bytes() for f in FASLS}


def test_a_cold_build_runs_every_job_once(project):
    assert sorted(build(project).ran) == sorted(EVERY_JOB)
    assert all(b.startswith(b"fake fasl ") for b in fasls(project).values())


def test_a_record_says_which_runner_made_its_outputs(project):
    build(project)
    records = [json.loads(p.read_text()) for p in (project / "cache").rglob("*.json")
               if p.parent.parent.name == "actions"]
    fasl_records = [r for r in records if "fasl" in r["outputs"]]
    # Each compile's, under its full key, its base key and its trace key (reuse.py).
    assert len(fasl_records) == 3 * 3 and all(r["made_by"] == "fake" for r in fasl_records)


def test_a_first_build_asks_for_an_image_only_for_the_top_librarys_zygote(project):
    """app, which no library depends on, is the one a user edits most: its
    zygote is worth an image on the first build; util's is not until an
    edit recompiles it."""
    hints = build(project).hints
    assert {task: h["save_image"] for task, h in hints.items()} == {
        "fasl:util/a.lisp": False, "fasl:util/b.lisp": False, "fasl:app/main.lisp": True}
    write(project / "util/b.lisp", "(defun b () (a) 2)\n")
    assert build(project).hints["fasl:util/b.lisp"]["save_image"]


def test_a_build_with_nothing_changed_runs_no_job(project):
    build(project)
    assert build(project).ran == []


def test_an_emptied_build_directory_is_restored_from_the_store(project):
    build(project)
    before = fasls(project)
    os.system(f"rm -rf {project / 'build'}")
    assert build(project).ran == []
    assert fasls(project) == before


def why(root, task: str) -> str:
    """What `doit why TASK` says."""
    return "\n".join(explain(DigestCache(root / "build/.lispbuild/digests.sqlite3"), task))


def test_an_edit_reruns_the_file_not_what_only_calls_its_functions(project):
    build(project)
    write(project / "util/b.lisp", "(defun b () (+ (a) 1))\n")
    assert build(project).ran == ["fasl:util/b.lisp"]


def test_an_edit_of_a_macro_reruns_the_files_that_use_it(project):
    write(project / "util/b.lisp", "(defmacro twice (x) (list 'progn x x))\n")
    write(project / "app/main.lisp", "(defun main () (twice (b)))\n")
    build(project)
    write(project / "util/b.lisp", "(defmacro twice (x) (list 'list x x))\n")
    assert build(project).ran == ["fasl:util/b.lisp", "fasl:app/main.lisp"]
    # Reused, the FASL is the one a compile in its new load state makes.
    reused = fasls(project)["build/fasl/app/main.fasl"]
    write(project / "util/a.lisp", "(defun a () 7)\n")
    assert build(project).ran == ["fasl:util/a.lisp"]
    assert fasls(project)["build/fasl/app/main.fasl"] == reused


def test_a_file_whose_trace_is_incomplete_keeps_its_full_key(project):
    write(project / "app/main.lisp", "(defun main () #.(b))\n")
    build(project)
    write(project / "util/b.lisp", "(defun b () 3)\n")
    assert build(project).ran == ["fasl:util/b.lisp", "fasl:app/main.lisp"]
    said = why(project, "fasl:app/main.lisp")
    assert "it keeps its full key, as its trace cannot be complete: it uses #." in said


def test_doit_why_names_what_a_recompiled_file_consulted(project):
    write(project / "util/b.lisp", "(defmacro twice (x) (list 'progn x x))\n")
    write(project / "app/main.lisp", "(defun main () (twice (a)))\n")
    build(project)
    write(project / "util/b.lisp", "(defmacro twice (x) (list 'list x x))\n")
    build(project)
    said = why(project, "fasl:app/main.lisp")
    assert "it consults FAKE::twice (expander), which build/fasl/util/b.fasl defines, " \
           "changed" in said


def test_check_reuse_compiles_what_a_trace_reuses_and_fails_if_it_differs(project,
                                                                         monkeypatch):
    build(project)
    write(project / "util/a.lisp", "(defun a () 2)\n")
    monkeypatch.setenv("LISPBUILD_CHECK_REUSE", "1")
    fake = build(project)  # the fake's compiles consult only what they trace
    assert fake.ran == EVERY_JOB
    write(project / "util/a.lisp", "(defun a () 3)\n")
    fake = FakeLisp(project)
    fake.consult_all = True  # a compiler that reads what its trace does not say
    code, said = doit_here(project, fake, "lib")
    assert code != 0
    assert "fasl:util/b.lisp: LISPBUILD_CHECK_REUSE: its trace reused outputs that " \
           "differ from a fresh compile's (fasl)" in said


def test_an_edit_undone_is_restored_not_rebuilt(project):
    build(project)
    before = fasls(project)
    write(project / "util/a.lisp", "(defun a () 2)\n")
    assert "fasl:util/a.lisp" in build(project).ran
    write(project / "util/a.lisp", SOURCES["util/a.lisp"])
    assert build(project).ran == []
    assert fasls(project) == before


def test_an_output_edited_by_hand_is_put_back(project):
    build(project)
    before = fasls(project)
    write(project / FASLS[1], "edited\n")
    assert build(project).ran == []
    assert fasls(project) == before


def test_a_deleted_output_is_put_back(project):
    build(project)
    before = fasls(project)
    (project / FASLS[2]).unlink()
    assert build(project).ran == []
    assert fasls(project) == before


def test_only_the_tasks_asked_for_run(project):
    assert build(project, "fasl:util/a.lisp").ran == ["fasl:util/a.lisp"]
    assert not (project / FASLS[1]).exists()


def store_objects(root):
    return [p for p in (root / "cache" / "objects").rglob("*") if p.is_file()]


def test_a_corrupt_object_in_the_store_is_rebuilt_not_restored(project):
    build(project)
    before = fasls(project)
    for path in store_objects(project):
        if path.read_bytes() == before[FASLS[0]]:
            path.chmod(0o644)
            path.write_bytes(b"fake fasl rotten\n")
    os.system(f"rm -rf {project / 'build'}")
    fake = build(project)
    assert fake.ran == ["fasl:util/a.lisp"]
    assert fasls(project) == before
    assert "fasl:util/a.lisp: the store's object " in fake.said
    assert "did not match its digest and was removed; building it" in fake.said


def test_a_corrupt_action_record_is_rebuilt(project):
    build(project)
    before = fasls(project)
    records = [p for p in (project / "cache").rglob("*") if p.is_file()
               and p.parent.parent.name == "actions"]
    assert records, sorted(str(p) for p in (project / "cache").rglob("*"))[:20]
    for path in records:
        path.chmod(0o644)
        path.write_text(path.read_text()[:-7])
    os.system(f"rm -rf {project / 'build'}")
    assert sorted(build(project).ran) == sorted(EVERY_JOB)
    assert fasls(project) == before


def test_an_input_edited_while_its_job_ran_is_not_kept_as_its_result(project):
    fake = FakeLisp(project)
    fake.during["fasl:util/a.lisp"] = lambda: write(project / "util/a.lisp", "(defun a () 3)\n")
    build(project, "fasl:util/a.lisp", fake=fake)
    # The FASL was compiled from one text and the file now holds another:
    # no key names that result, and the next build compiles again.
    assert build(project, "fasl:util/a.lisp").ran == ["fasl:util/a.lisp"]
    assert build(project, "fasl:util/a.lisp").ran == []


def test_a_failed_job_leaves_the_last_good_outputs_and_store(project):
    build(project)
    before = fasls(project)
    objects = sorted(store_objects(project))
    write(project / "util/b.lisp", "(defun b (\n")
    fake = FakeLisp(project)
    fake.failing["fasl:util/b.lisp"] = "b.lisp:1: read error: end of file"
    code, said = doit_here(project, fake, "lib")
    assert code != 0
    assert "fasl:util/b.lisp: b.lisp:1: read error: end of file" in said
    assert fake.ran == ["fasl:util/b.lisp"]
    assert fasls(project) == before
    assert sorted(store_objects(project)) == objects
    # Fixed, it builds, and what calls it keeps its FASL (it consulted no macro of b's).
    write(project / "util/b.lisp", "(defun b () 5)\n")
    assert build(project).ran == ["fasl:util/b.lisp"]


def test_a_file_read_undeclared_decides_as_an_input(project, tmp_path):
    data = tmp_path / "table.txt"
    write(data, "one\n")
    fake = FakeLisp(project)
    fake.reads["fasl:util/a.lisp"] = [data]
    build(project, fake=fake)
    fake.ran.clear()
    assert build(project, fake=fake).ran == []
    write(data, "two\n")
    assert build(project, fake=fake).ran[0] == "fasl:util/a.lisp"
    fake.ran.clear()
    write(data, "one\n")  # as it was: the first result, from the store
    assert build(project, fake=fake).ran == []


def test_a_second_checkout_restores_from_the_remote_store(project, tmp_path, monkeypatch):
    with http_store(tmp_path / "server") as url:
        monkeypatch.setenv("LISPBUILD_REMOTE", url)
        monkeypatch.setenv("LISPBUILD_REMOTE_UPLOAD", "1")
        build(project)
        before = fasls(project)
        assert list((tmp_path / "server").rglob("*"))
        second = tmp_path / "second"
        write(second / "dodo.py", DODO)
        for name, text in SOURCES.items():
            write(second / name, text)
        monkeypatch.delenv("LISPBUILD_REMOTE_UPLOAD")
        assert build(second).ran == []
        assert fasls(second) == before
        assert Store(second / "cache").check(lambda line: None)["removed"] == 0


def test_a_remote_store_that_is_down_costs_a_build_not_a_failure(project, monkeypatch):
    monkeypatch.setenv("LISPBUILD_REMOTE", "http://127.0.0.1:9/store")
    assert sorted(build(project).ran) == sorted(EVERY_JOB)


def test_the_jobs_of_a_build_are_the_same_bytes_as_before(project, tmp_path):
    """Two checkouts with stores of their own build the same FASLs: the
    keys name what decides the bytes, not where the project is."""
    build(project)
    other = tmp_path / "elsewhere" / "checkout"
    write(other / "dodo.py", DODO)
    for name, text in SOURCES.items():
        write(other / name, text)
    build(other)
    assert fasls(other) == fasls(project)
    keys = {}
    for root in (project, other):
        records = json.loads(json.dumps(sorted(
            p.name for p in (root / "cache").rglob("*") if p.parent.parent.name == "actions")))
        keys[root] = records
    assert keys[project] == keys[other]


def test_a_fault_in_lispbuild_fails_its_task_and_logs_the_traceback(project):
    fake = FakeLisp(project)

    def fault():
        raise RuntimeError("an invariant broke")
    fake.during["fasl:util/a.lisp"] = fault
    code, said = doit_here(project, fake, "lib")
    assert code != 0
    assert ("fasl:util/a.lisp: RuntimeError: an invariant broke (a fault in lispbuild: "
            "build/.lispbuild/log has its traceback)") in said
    log = (project / "build/.lispbuild/log").read_text()
    assert "fasl:util/a.lisp\nTraceback (most recent call last):" in log
    assert 'in fault\n    raise RuntimeError("an invariant broke")' in log


def test_every_task_of_a_binary_and_its_release_is_declared(project):
    """doit list of a project with a binary: its tasks, and those of its
    release, made without running anything."""
    write(project / "dodo.py", DODO.replace(
        'project.library("app"', 'project.binary("app", libraries=["app"], entry="app:main", version="1.0")\n'
        'project.library("app"'))
    code, said = doit_here(project, FakeLisp(project), "list", "--all")
    assert code == 0, said
    listed = {line.split()[0] for line in said.splitlines() if line.strip()}
    assert {"core:app", "linkage:app", "runtime:app", "exe:app", "release-core:app",
            "release-exe:app", "release:app", "fasl:app/main.lisp", "lib:util"} <= listed, said


def test_objects_the_remote_store_lost_are_sent_again(project, tmp_path, monkeypatch):
    server = tmp_path / "server"
    with http_store(server) as url:
        monkeypatch.setenv("LISPBUILD_REMOTE", url)
        monkeypatch.setenv("LISPBUILD_REMOTE_UPLOAD", "1")
        build(project)
        objects = sorted((server / "store" / "cas").iterdir())
        for path in objects:
            path.unlink()
        # Another checkout, its store empty: the records are there, not
        # their objects; it builds, and sends what the server lost.
        second = tmp_path / "second"
        write(second / "dodo.py", DODO)
        for name, text in SOURCES.items():
            write(second / name, text)
        assert sorted(build(second).ran) == sorted(EVERY_JOB)
        assert sorted((server / "store" / "cas").iterdir()) == objects
