"""Compilation modes in the graph (modes.py), without SBCL: the policy and
features of each FASL, the project's libraries planned again for a binary
of another mode, dependencies shared by every mode."""
from pathlib import Path

import pytest

from lispbuild.declare import Library, Project, Source
from lispbuild.errors import DeclarationError
from lispbuild.graph import plan
from lispbuild.modes import build_mode
from lispbuild.rules.lisp import fasl_action

# A library outside the project (as Debian's are): absolute directory.
DEPENDENCY = Library(name="dep", directory=Path("/usr/share/common-lisp/source/dep"),
                     sources=(Source("dep.lisp", ()),), depends_on=(), features=(),
                     policy=(), fail_on_warning=False)


def project(tmp_path) -> Project:
    p = Project(root=tmp_path, store=tmp_path / "store")
    p.library("util", ["util.lisp"], directory="util", depends_on=["dep"])
    p.library("app", ["main.lisp"], directory="app", depends_on=["util"],
              policy={"speed": 2}, features=["mine"])
    p.binary("app", libraries=["app"], entry="app:main")
    p.binary("app-opt", libraries=["app"], entry="app:main", mode="opt")
    return p


def params(graph, name: str) -> dict:
    return fasl_action(graph.fasls[name]).params


def test_the_build_mode_compiles_the_project_and_leaves_dependencies_alone(tmp_path):
    graph = plan(project(tmp_path), {"dep": DEPENDENCY}, "dbg")
    assert dict(map(tuple, params(graph, "util/util.lisp")["policy"])) == {
        "speed": 1, "debug": 3, "safety": 3}
    assert params(graph, "util/util.lisp")["features"] == ["DBG"]
    # The library's own policy wins for its qualities; its features stay.
    assert dict(map(tuple, params(graph, "app/main.lisp")["policy"])) == {
        "speed": 2, "debug": 3, "safety": 3}
    assert params(graph, "app/main.lisp")["features"] == ["MINE", "DBG"]
    assert params(graph, "dep/dep.lisp")["policy"] == [] and \
        params(graph, "dep/dep.lisp")["features"] == []
    assert graph.binaries["app"].mode == "dbg" and "DBG" in graph.binaries["app"].features


def test_a_binary_of_another_mode_gets_the_project_libraries_again(tmp_path):
    graph = plan(project(tmp_path), {"dep": DEPENDENCY}, "fastbuild")
    assert set(graph.fasls) == {"dep/dep.lisp", "util/util.lisp", "app/main.lisp",
                                "util@opt/util.lisp", "app@opt/main.lisp"}
    opt = graph.fasls["app@opt/main.lisp"]
    assert opt.fasl == "build/fasl/app@opt/main.fasl" and opt.source == "app/main.lisp"
    assert params(graph, "app@opt/main.lisp")["features"] == ["MINE", "OPT"]
    assert dict(map(tuple, params(graph, "util@opt/util.lisp")["policy"])) == {
        "speed": 3, "debug": 1, "safety": 1}
    assert "lib:util@opt" in opt.after
    # Each binary loads its own mode's FASLs, and the one dependency FASL.
    loads = {name: [s[1] for s in node.state.steps() if s[0] == "load"]
             for name, node in graph.binaries.items()}
    assert loads == {"app": ["build/fasl/dep/dep.fasl", "build/fasl/util/util.fasl",
                             "build/fasl/app/main.fasl"],
                     "app-opt": ["build/fasl/dep/dep.fasl", "build/fasl/util@opt/util.fasl",
                                 "build/fasl/app@opt/main.fasl"]}
    assert graph.binaries["app-opt"].after == ("lib:app@opt",)
    assert (graph.binaries["app"].mode, graph.binaries["app-opt"].mode) == ("fastbuild", "opt")


def test_a_binary_whose_mode_is_the_builds_adds_nothing(tmp_path):
    graph = plan(project(tmp_path), {"dep": DEPENDENCY}, "opt")
    assert set(graph.fasls) == {"dep/dep.lisp", "util/util.lisp", "app/main.lisp"}
    assert graph.binaries["app"].state.steps() == graph.binaries["app-opt"].state.steps()


def test_an_unknown_mode_is_refused_by_name(tmp_path):
    with pytest.raises(DeclarationError, match="binary x: mode 'fast' must be one of "
                                               "fastbuild, opt, dbg"):
        project(tmp_path).binary("x", libraries=["app"], entry="app:main", mode="fast")
    with pytest.raises(DeclarationError, match="^LISPBUILD_MODE=release: the mode must be "
                                               "one of fastbuild, opt, dbg$"):
        build_mode("release")
    assert build_mode(None) == build_mode("") == "fastbuild"


def test_coverage_instruments_the_suites_that_run_project_code(tmp_path):
    p = project(tmp_path)
    p.test("app-tests", libraries=["app"], function="app:test")
    p.test("dep-tests", libraries=["dep"], function="dep:test")
    graph = plan(p, {"dep": DEPENDENCY}, "opt", coverage=True)
    assert graph.coverage == ("app-tests@coverage",)   # dep-tests runs none of it
    node = graph.binaries["app-tests@coverage"]
    assert node.mode == "coverage" and node.after == ("lib:app@coverage",)
    policy = dict(map(tuple, params(graph, "util@coverage/util.lisp")["policy"]))
    assert policy == {"speed": 3, "debug": 1, "safety": 1, "sb-cover:store-coverage-data": 3}
    assert ["require", "sb-cover"] in [list(s) for s in graph.coverage_state.steps()]
    assert [s[1] for s in graph.coverage_state.steps() if s[0] == "load"] == [
        "build/fasl/dep/dep.fasl", "build/fasl/util@coverage/util.fasl",
        "build/fasl/app@coverage/main.fasl"]
    assert plan(p, {"dep": DEPENDENCY}, "opt").coverage == ()
