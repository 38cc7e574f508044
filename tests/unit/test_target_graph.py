"""Targets in the graph (targets.py), without SBCL or qemu: a binary
planned again for another machine with every library it needs, the
states that name that machine's SBCL, its paths and task names, the
runner its jobs go to, and how its toolchain files are named in keys."""
import os
from pathlib import Path

import pytest

from lispbuild import keys, layout, sysroot, targets, toolchain
from lispbuild.action import Context
from lispbuild.declare import Library, Project, Source
from lispbuild.errors import DeclarationError, MissingToolchain
from lispbuild.graph import plan
from lispbuild.jobs import LispJob
from lispbuild.rules.binary import binary_actions, c_action
from lispbuild.rules.lisp import fasl_action
from lispbuild.sbcl.runners import Runners

ARM = "aarch64-linux"
DEPENDENCY = Library(name="dep", directory=Path("/usr/share/common-lisp/source/dep"),
                     sources=(Source("dep.lisp", ()),), depends_on=(), features=(),
                     policy=(), fail_on_warning=False)


def project(tmp_path, **binary) -> Project:
    p = Project(root=tmp_path, store=tmp_path / "store")
    p.library("app", ["package.lisp", "main.lisp"], directory="app", depends_on=["dep"])
    p.binary("app", libraries=["app"], entry="app:main", version="1.0",
             archives=["/usr/lib/x86_64-linux-gnu/libz.a"],
             **{"targets": ["x86_64-linux", ARM], **binary})
    p.run("app", binary="app", args=["x"])
    return p


def test_another_machine_gets_the_binary_and_every_library_it_needs_again(tmp_path):
    graph = plan(project(tmp_path), {"dep": DEPENDENCY})
    assert set(graph.binaries) == {"app", f"app@{ARM}"}
    assert set(graph.fasls) == {"dep/dep.lisp", "app/package.lisp", "app/main.lisp",
                                f"dep@{ARM}/dep.lisp", f"app@{ARM}/package.lisp",
                                f"app@{ARM}/main.lisp"}
    arm = graph.fasls[f"app@{ARM}/main.lisp"]
    assert arm.source == "app/main.lisp" and arm.fasl == f"build/fasl/app@{ARM}/main.fasl"
    assert f"lib:dep@{ARM}" in arm.after
    # Every state of the target's starts with its step; the host's never has it.
    assert arm.state.steps()[0] == ("target", ARM)
    assert targets.state_target(arm.state) == ARM
    assert targets.state_target(graph.binaries[f"app@{ARM}"].state) == ARM
    assert [s[1] for s in graph.binaries[f"app@{ARM}"].state.steps() if s[0] == "load"] == [
        f"build/fasl/dep@{ARM}/dep.fasl", f"build/fasl/app@{ARM}/package.fasl",
        f"build/fasl/app@{ARM}/main.fasl"]
    for name in ("app/main.lisp", "dep/dep.lisp"):
        assert targets.state_target(graph.fasls[name].state) == ""
        assert all(step[0] != "target" for step in graph.fasls[name].state.steps())
    # The target's SBCL is the toolchain of its FASL's key.
    find = fasl_action(arm).toolchain[0]
    assert find.__qualname__ == f"sbcl_files@{ARM}"
    assert fasl_action(graph.fasls["app/main.lisp"]).toolchain == (toolchain.sbcl_files,)


def test_a_target_binarys_stages_are_under_build_target(tmp_path):
    graph = plan(project(tmp_path), {"dep": DEPENDENCY})
    core, table, runtime, exe = binary_actions(graph.binaries[f"app@{ARM}"])
    assert [a.task for a in (core, table, runtime, exe)] == [
        f"core:app@{ARM}", f"linkage:app@{ARM}", f"runtime:app@{ARM}", f"exe:app@{ARM}"]
    assert exe.outputs["exe"] == Path(f"build/{ARM}/bin/app")
    assert runtime.outputs["runtime"] == Path(f"build/{ARM}/runtime/app")
    assert f"build/{ARM}/obj/lispbuild/compat.o" in runtime.params["objects"]
    # Its archives are named by their host paths, and are files of its
    # toolchain (the sysroot's), not inputs.
    assert runtime.params["archives"] == ["/usr/lib/x86_64-linux-gnu/libz.a"]
    assert not any("libz" in str(i) for i in runtime.inputs)
    assert runtime.params["target"] == ARM and "target" not in binary_actions(
        graph.binaries["app"])[2].params
    assert c_action("lispbuild/compat.c", target=ARM).task == f"c:lispbuild/compat.c@{ARM}"
    # Released: dist/app-1.0-aarch64-linux.tar.gz, from build/aarch64-linux/release/app/.
    release_core, *_, release_exe = binary_actions(graph.binaries[f"app@{ARM}"], True)
    assert release_exe.outputs["exe"] == Path(f"build/{ARM}/release/app/app")


def test_the_payload_of_a_development_executable_is_the_hosts_alone(tmp_path):
    graph = plan(project(tmp_path), {"dep": DEPENDENCY})
    own = frozenset(n.fasl for n in graph.fasls.values() if not os.path.isabs(n.source))
    host = [a.task for a in binary_actions(graph.binaries["app"], own=own)]
    arm = [a.task for a in binary_actions(graph.binaries[f"app@{ARM}"], own=own)]
    assert host[0] == "base:app" and not any(t.startswith("base:") for t in arm)


def test_a_target_must_be_known_and_a_library_with_c_is_the_hosts_alone(tmp_path):
    with pytest.raises(DeclarationError, match=r"binary app: targets=\['riscv64-linux'\]"):
        project(tmp_path, targets=["riscv64-linux"])
    with pytest.raises(DeclarationError, match="each target must be one of"):
        project(tmp_path, targets=[])
    p = project(tmp_path)
    c = Library(name="cwrap", directory=Path("cwrap"), sources=(Source("wrap.lisp", ()),),
                depends_on=(), features=(), policy=(), fail_on_warning=True,
                c_sources=("wrap.c",))
    p.binary("c", libraries=["cwrap"], entry="cwrap:main", targets=[ARM])
    with pytest.raises(DeclarationError, match=f"library cwrap for {ARM}: its C files"):
        plan(p, {"dep": DEPENDENCY, "cwrap": c})


def test_the_host_alone_is_planned_once(tmp_path):
    graph = plan(project(tmp_path, targets=["x86_64-linux"]), {"dep": DEPENDENCY})
    assert set(graph.binaries) == {"app"}
    assert not any("@" in name for name in graph.fasls)


def test_a_target_job_runs_in_a_fresh_sbcl_of_its_own(tmp_path):
    graph = plan(project(tmp_path), {"dep": DEPENDENCY})
    chosen = Runners(Context(root=tmp_path, store_root=tmp_path / "s", owner=os.getpid()),
                     fresh_only=False, factories={n: lambda ctx: None
                                                  for n in ("fresh", "workers", "canonical")})

    def job(name, **hints):
        return LispJob(task="t", command="compile", state=graph.fasls[name].state,
                       arguments={}, product=Path("x"), hints=hints)
    assert chosen.candidates(job("app/main.lisp")) == ["workers", "fresh"]
    assert chosen.candidates(job(f"app@{ARM}/main.lisp")) == ["fresh"]


def test_a_sysroots_files_are_named_alike_in_every_users_cache():
    root = f"{os.sep}home{os.sep}u{os.sep}.cache{os.sep}lispbuild{os.sep}sysroots{os.sep}"
    path = f"{root}{ARM}-0123456789abcdef/usr/lib/sbcl/sbcl.core"
    assert keys.named_inputs([path], "/project") == [
        (f"sysroot:{ARM}/usr/lib/sbcl/sbcl.core", path)]
    assert keys.in_sysroot("/usr/lib/sbcl/sbcl.core") == "/usr/lib/sbcl/sbcl.core"


def test_a_host_archive_is_found_in_the_targets_multiarch_directory():
    assert sysroot.target_path(ARM, "/usr/lib/x86_64-linux-gnu/libssl.a") == \
        "/usr/lib/aarch64-linux-gnu/libssl.a"
    assert toolchain.archive_path("", "/usr/lib/x86_64-linux-gnu/libz.a") == \
        Path("/usr/lib/x86_64-linux-gnu/libz.a")
    assert toolchain.for_target(toolchain.musl_files, ARM) is \
        toolchain.for_target(toolchain.musl_files, ARM)
    assert toolchain.for_target(toolchain.musl_files, "") is toolchain.musl_files


def test_runs_and_tests_of_a_target_binary_run_under_qemu(tmp_path):
    from lispbuild.tasks import _Tasks
    p = project(tmp_path)
    graph = plan(p, {"dep": DEPENDENCY})
    made = _Tasks(Context(root=tmp_path, store_root=tmp_path / "s"), p, graph)
    runs = {t["name"]: t for t in made.runs() if t["basename"] == "run"}
    assert set(runs) == {"app", f"app@{ARM}"}
    action, args = runs[f"app@{ARM}"]["actions"][0]
    assert args[0] == tmp_path / layout.executable("app", ARM) and args[-1] == ARM
    assert runs[f"app@{ARM}"]["task_dep"] == [f"exe:app@{ARM}"]


def test_a_binary_for_another_machine_alone_has_no_task_of_this_ones(tmp_path):
    from lispbuild.tasks import _Tasks
    p = project(tmp_path, targets=[ARM])
    graph = plan(p, {"dep": DEPENDENCY})
    assert set(graph.binaries) == {f"app@{ARM}"}
    made = _Tasks(Context(root=tmp_path, store_root=tmp_path / "s"), p, graph)
    assert [(t["basename"], t["name"]) for t in made.runs()] == [("run", f"app@{ARM}")]


def test_a_sysroot_is_made_once_per_set_of_packages_and_apts_lists(tmp_path, monkeypatch):
    asked, made = [], []
    monkeypatch.setattr(sysroot, "sysroots", lambda: tmp_path)
    monkeypatch.setattr(sysroot, "APT_LISTS", tmp_path / "lists")
    (tmp_path / "lists").mkdir()
    monkeypatch.setattr(sysroot, "dev_package", lambda archive: Path(archive).stem + "-dev")
    monkeypatch.setattr(sysroot, "_resolve", lambda target, request: asked.append(request) or [
        {"Package": p, "SHA256": f"sha-{p}", "Version": "1"} for p in request])
    monkeypatch.setattr(sysroot, "_make", lambda target, debs, root: made.append(root)
                        or root.mkdir())
    monkeypatch.setattr(sysroot, "_wanted", {})

    def root_for(*archives):
        sysroot.sysroot.cache_clear()
        sysroot._wanted[ARM] = set(archives)
        return sysroot.sysroot(ARM)
    first = root_for()
    assert first.name.startswith(f"{ARM}-") and asked == [sorted(sysroot.BASE_PACKAGES)]
    assert root_for() == first and len(asked) == 1  # remembered: apt is not asked
    with_ssl = root_for("/usr/lib/x86_64-linux-gnu/libssl.a")
    assert with_ssl != first and "libssl-dev" in asked[-1] and len(made) == 2
    assert root_for() == first and len(asked) == 2  # both remembered
    os.utime(tmp_path / "lists", (1, 1))  # apt-get update: asked again, same debs
    assert root_for() == first and len(asked) == 3 and len(made) == 2


def test_a_package_apt_does_not_know_fails_naming_it_and_what_may_be_missing():
    with pytest.raises(MissingToolchain) as failed:
        sysroot._resolve(ARM, ["no-such-package-of-lispbuild"])
    assert "no-such-package-of-lispbuild" in str(failed.value)
    assert "dpkg --add-architecture arm64" in str(failed.value)


def test_an_archive_no_debian_package_holds_cannot_be_found_for_another_machine(tmp_path):
    own = tmp_path / "libmine.a"
    own.write_bytes(b"!<arch>\n")
    with pytest.raises(MissingToolchain, match="libmine.a: no installed Debian package holds it"):
        sysroot.dev_package(str(own))
    assert sysroot.dev_package("/usr/lib/x86_64-linux-gnu/libz.a") == "zlib1g-dev"
