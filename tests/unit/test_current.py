"""The no-op fast path (current.py): a task found current is found so again
from the stats of what its check read, and anything that could change its
key or outputs makes the check a full one. Without SBCL (fakelisp.py)."""
import os

import pytest

from fakelisp import FakeLisp, write
from lispbuild import current, rebuild
from lispbuild.digest import DigestCache
from test_rebuilder import DODO, EVERY_JOB, FASLS, build, fasls, project  # noqa: F401 (a fixture)


@pytest.fixture
def full_checks(monkeypatch) -> list[str]:
    """The tasks whose check was a full one (rebuild._outputs_current)."""
    checked = []
    full = rebuild._outputs_current

    def counting(action, ctx):
        checked.append(action.task)
        return full(action, ctx)
    monkeypatch.setattr(rebuild, "_outputs_current", counting)
    return checked


def chained(root):
    """Each file uses a macro of the file before it, so that an edit of one
    changes the FASLs of the files after it (reuse.py)."""
    write(root / "util/a.lisp", "(defmacro a () 1)\n")
    write(root / "util/b.lisp", "(defmacro b () (a))\n")
    write(root / "app/main.lisp", "(defun main () (b))\n")


def settled(root, full_checks, fake=None) -> dict:
    """Built, checked in full once with nothing to do (which remembers),
    then checked by stat alone: the FASLs then."""
    chained(root)
    build(root, fake=fake)
    if fake:
        fake.ran.clear()
    assert build(root, fake=fake).ran == []
    assert set(EVERY_JOB) <= set(full_checks)
    full_checks.clear()
    assert build(root, fake=fake).ran == []
    assert full_checks == []
    full_checks.clear()
    return fasls(root)


def test_a_build_with_nothing_to_do_checks_no_key(project, full_checks):
    settled(project, full_checks)
    assert build(project).ran == []
    assert full_checks == []


def test_an_edit_is_seen(project, full_checks):
    settled(project, full_checks)
    write(project / "util/b.lisp", "(defun b () (+ (a) 1))\n")
    assert build(project).ran == ["fasl:util/b.lisp", "fasl:app/main.lisp"]


def test_an_edit_that_keeps_the_size_and_time_is_seen(project, full_checks):
    settled(project, full_checks)
    path = project / "util/a.lisp"
    st = path.stat()
    path.write_text("(defmacro a () 7)\n")  # as long as "(defmacro a () 1)"
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size
    assert build(project).ran == EVERY_JOB


def test_an_output_edited_by_hand_is_put_back(project, full_checks):
    before = settled(project, full_checks)
    write(project / FASLS[1], "edited\n")
    assert build(project).ran == []
    assert "fasl:util/b.lisp" in full_checks
    assert fasls(project) == before


def test_a_deleted_output_is_put_back(project, full_checks):
    before = settled(project, full_checks)
    (project / FASLS[0]).unlink()
    assert build(project).ran == []
    assert fasls(project) == before


def test_a_file_read_undeclared_is_looked_at(project, full_checks, tmp_path):
    data = tmp_path / "table.txt"
    write(data, "one\n")
    fake = FakeLisp(project)
    fake.reads["fasl:util/a.lisp"] = [data]
    settled(project, full_checks, fake=fake)
    write(data, "two\n")
    assert build(project, fake=fake).ran[0] == "fasl:util/a.lisp"


def test_another_graph_checks_every_task_in_full(project, full_checks):
    settled(project, full_checks)
    write(project / "dodo.py", DODO.replace('["a.lisp", "b.lisp"]',
                                            '["a.lisp", "b.lisp", "c.lisp"]'))
    write(project / "util/c.lisp", "(defun c () 3)\n")
    # main.lisp is checked in full, and reused: it consults nothing c.lisp defines.
    assert build(project).ran == ["fasl:util/c.lisp"]
    assert {"fasl:util/a.lisp", "fasl:util/b.lisp", "fasl:app/main.lisp"} <= set(full_checks)


def test_another_lispbuild_checks_every_task_in_full(project, full_checks, monkeypatch):
    settled(project, full_checks)
    monkeypatch.setattr(current, "package_digest", lambda: "another lispbuild")
    assert build(project).ran == []
    assert sorted(t for t in full_checks if t.startswith("fasl:")) == sorted(EVERY_JOB)


def test_a_task_that_ran_is_checked_in_full_next_time(project, full_checks):
    settled(project, full_checks)
    write(project / "app/main.lisp", "(defun main () (list (b)))\n")
    assert build(project).ran == ["fasl:app/main.lisp"]
    full_checks.clear()
    assert build(project).ran == []
    assert [t for t in full_checks if t.startswith("fasl:")] == ["fasl:app/main.lisp"]


@pytest.fixture
def rows_read(monkeypatch) -> list[str]:
    """The tasks whose own record a check read."""
    read = []
    row = DigestCache.current_row

    def counting(self, task):
        read.append(task)
        return row(self, task)
    monkeypatch.setattr(DigestCache, "current_row", counting)
    return read


def test_the_snapshot_answers_alone_when_nothing_changed(project, full_checks, rows_read):
    settled(project, full_checks)
    rows_read.clear()
    assert build(project).ran == []
    assert full_checks == [] and rows_read == []


def test_the_snapshot_is_not_taken_once_a_file_changed(project, full_checks, rows_read):
    settled(project, full_checks)
    rows_read.clear()
    write(project / "app/main.lisp", "(defun main () (list (b)))\n")
    assert build(project).ran == ["fasl:app/main.lisp"]
    assert "fasl:util/a.lisp" in rows_read


def test_a_file_built_alone_is_seen_by_every_state_that_loads_it(project, full_checks):
    # main.lisp's own record names b.fasl, the last file its state loads,
    # not a.fasl: its state's digest, or the snapshot, must see a.fasl.
    settled(project, full_checks)
    write(project / "util/a.lisp", "(defun a () 2)\n")
    assert build(project, "fasl:util/a.lisp").ran == ["fasl:util/a.lisp"]
    assert build(project).ran == ["fasl:util/b.lisp", "fasl:app/main.lisp"]
    full_checks.clear()
    assert build(project).ran == []  # checks in full what ran, and so the whole graph
    assert {"fasl:util/b.lisp", "fasl:app/main.lisp"} <= set(full_checks)
    full_checks.clear()
    assert build(project).ran == []
    assert full_checks == []


def test_the_snapshot_grows_with_the_tasks_a_build_finds_current(project, full_checks,
                                                                 rows_read):
    build(project, "fasl:util/a.lisp")
    assert build(project, "fasl:util/a.lisp").ran == []  # the snapshot: a.lisp
    assert build(project).ran == ["fasl:util/b.lisp", "fasl:app/main.lisp"]
    assert build(project).ran == []  # a.lisp from the snapshot; the others checked
    rows_read.clear()
    full_checks.clear()
    assert build(project).ran == []
    assert rows_read == [] and full_checks == []
