"""Hot reload's decisions (reload.py), without SBCL: what a running
program holds against what a build made."""
import json
import os
from pathlib import Path

from lispbuild import reload
from lispbuild.digest import hash_file

PLAN = reload.Plan(
    steps=[["require", "sb-bsd-sockets"], ["asdf", "dep", "/usr/share/dep/dep.asd"],
           ["load", "build/fasl/dep/dep.fasl", "dep", "/usr/share/dep/dep.lisp"],
           ["load", "build/fasl/app/a.fasl"], ["load", "build/fasl/app/b.fasl"],
           ["load", "build/fasl/app/c.fasl"]],
    reloadable=["build/fasl/app/a.fasl", "build/fasl/app/b.fasl", "build/fasl/app/c.fasl"],
    others=["build/obj/app/c.o", "/usr/lib/libz.a"], runtime="build/runtime/app")

DIGESTS = {f: f"digest of {f}" for f in PLAN.files()}


def held(digests=DIGESTS, steps=PLAN.steps):
    return {"pid": 1, "steps": steps, "digests": dict(digests), "runtime": "r"}


def test_the_files_are_those_of_the_steps_then_the_others():
    assert PLAN.files() == ["/usr/share/dep/dep.asd", "build/fasl/dep/dep.fasl",
                            "build/fasl/app/a.fasl", "build/fasl/app/b.fasl",
                            "build/fasl/app/c.fasl", "build/obj/app/c.o", "/usr/lib/libz.a"]


def test_nothing_changed_is_the_same_program():
    assert reload.decide(held(), PLAN, DIGESTS) == ("same", None)


def test_changed_project_fasls_are_reloaded_in_load_order():
    now = dict(DIGESTS, **{"build/fasl/app/c.fasl": "new c", "build/fasl/app/a.fasl": "new a"})
    assert reload.decide(held(), PLAN, now) == (
        "reload", ["build/fasl/app/a.fasl", "build/fasl/app/c.fasl"])


def test_a_dependency_a_definition_or_c_code_that_changed_means_a_restart():
    for changed in ("build/fasl/dep/dep.fasl", "/usr/share/dep/dep.asd", "build/obj/app/c.o",
                    "/usr/lib/libz.a"):
        now = dict(DIGESTS, **{changed: "new", "build/fasl/app/a.fasl": "new a"})
        assert reload.decide(held(), PLAN, now) == (
            "restart", f"{changed} changed, which a reload cannot load"), changed


def test_files_added_removed_or_reordered_mean_a_restart():
    for steps in (PLAN.steps[:-1], PLAN.steps + [["load", "build/fasl/app/d.fasl"]],
                  PLAN.steps[:3] + PLAN.steps[4:] + PLAN.steps[3:4]):
        assert reload.decide(held(steps=steps), PLAN, DIGESTS) == (
            "restart", "its files or their order changed")


def test_a_file_that_is_gone_counts_as_changed():
    now = dict(DIGESTS, **{"build/fasl/app/b.fasl": None})
    assert reload.decide(held(), PLAN, now) == ("reload", ["build/fasl/app/b.fasl"])


def _project(tmp_path: Path) -> Path:
    for f in PLAN.files() + [PLAN.runtime]:
        path = tmp_path / f.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"contents of {f}")
    return tmp_path


def _plan_in(root: Path) -> reload.Plan:
    """PLAN with its absolute files under `root` too."""
    def under(f):
        return str(root / f.lstrip("/")) if f.startswith("/") else f
    steps = [[under(p) if isinstance(p, str) and p.startswith("/") else p for p in s]
             for s in PLAN.steps]
    return reload.Plan(steps=steps, reloadable=PLAN.reloadable,
                       others=[under(f) for f in PLAN.others], runtime=PLAN.runtime)


def test_after_a_build_a_program_holding_its_code_goes_on(tmp_path):
    root = _project(tmp_path)
    plan = _plan_in(root)
    reload.started(root, "app", os.getpid(), plan, hash_file)
    assert reload.verdict(root, "app", plan, hash_file) is None
    # What a build changed and the program did not load: a restart, and why.
    (root / "build/fasl/app/b.fasl").write_text("new")
    assert reload.verdict(root, "app", plan, hash_file) == \
        "build/fasl/app/b.fasl changed and was not reloaded"
    held = json.loads(reload.state_path(root, "app").read_text())
    held["digests"]["build/fasl/app/b.fasl"] = hash_file(str(root / "build/fasl/app/b.fasl"))
    reload.remember(root, "app", held)  # as reload:app writes it after a reload
    assert reload.verdict(root, "app", plan, hash_file) is None


def test_after_a_build_a_new_runtime_or_a_failed_reload_means_a_restart(tmp_path):
    root = _project(tmp_path)
    plan = _plan_in(root)
    reload.started(root, "app", os.getpid(), plan, hash_file)
    (root / PLAN.runtime).write_text("linked anew")
    assert "runtime was linked anew" in reload.verdict(root, "app", plan, hash_file)
    reload.started(root, "app", os.getpid(), plan, hash_file)
    held = json.loads(reload.state_path(root, "app").read_text())
    reload.remember(root, "app", dict(held, restart="a.fasl failed to load: boom"))
    assert reload.verdict(root, "app", plan, hash_file) == "a.fasl failed to load: boom"


def test_a_program_that_ended_is_not_running(tmp_path):
    root = _project(tmp_path)
    plan = _plan_in(root)
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    reload.started(root, "app", dead, plan, hash_file)
    assert reload.recalled(root, "app") is None
    assert reload.verdict(root, "app", plan, hash_file) == "it is not running"
