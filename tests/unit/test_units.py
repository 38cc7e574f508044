"""Pure parts, on small inputs: the graph, symbol resolution, the embedded
core layout, the store and the digest cache. The ELF and archive readers
run on objects compiled here by the real gcc and ar."""
import os
import struct
import subprocess
import sys

import pytest

from lispbuild.declare import Project
from lispbuild.digest import DigestCache, hash_file
from lispbuild.embed import CORE_MAGIC, check_static, embed_core
from lispbuild.errors import (CorruptObject, DeclarationError, DependencyCycle, NotStatic,
                              UnresolvedSymbols)
from lispbuild.graph import plan
from lispbuild.steps import EMPTY, StateDigests, step_files
from lispbuild.records import Output
from lispbuild.sbcl.worker import worth_an_image
from lispbuild.errors import UndeclaredForeignLibrary
from lispbuild.linkage import (Entry, archive_members, check_foreign_libraries,
                               defined_symbols, keep_named, named_symbols, read_linkage,
                               resolve_symbols, symbol_table_source)
from lispbuild.scratch import sweep
from lispbuild.store import Store


def project(tmp_path) -> Project:
    return Project(root=tmp_path, store=tmp_path / "store")


def loaded(state) -> list[str]:
    return [step[1].removeprefix("build/fasl/") for step in state.steps() if step[0] == "load"]


def test_serial_library_loads_earlier_files_and_dependencies(tmp_path):
    p = project(tmp_path)
    p.library("base", ["a.lisp", "b.lisp"])
    p.library("top", ["c.lisp", "d.lisp"], directory="top", depends_on=["base"])
    p.binary("app", libraries=["top"], entry="top:main")
    graph = plan(p, {})
    assert loaded(graph.fasls["base/a.lisp"].state) == []
    assert loaded(graph.fasls["base/b.lisp"].state) == ["base/a.fasl"]
    assert loaded(graph.fasls["top/d.lisp"].state) == ["base/a.fasl", "base/b.fasl", "top/c.fasl"]
    assert graph.fasls["top/c.lisp"].source == "top/c.lisp"
    assert graph.fasls["top/c.lisp"].fasl == "build/fasl/top/c.fasl"
    assert loaded(graph.binaries["app"].state) == ["base/a.fasl", "base/b.fasl",
                                                   "top/c.fasl", "top/d.fasl"]
    # Each file waits for the one before it and for its dependencies as a
    # whole, not for every FASL it loads: the graph stays linear.
    assert graph.fasls["top/d.lisp"].after == ("lib:base", "fasl:top/c.lisp")
    assert graph.fasls["base/b.lisp"].after == ("fasl:base/a.lisp",)


def test_dict_sources_let_independent_files_compile_apart(tmp_path):
    p = project(tmp_path)
    p.library("lib", {"package.lisp": [], "x.lisp": ["package.lisp"],
                      "y.lisp": ["package.lisp"], "main.lisp": ["x.lisp", "y.lisp"]})
    graph = plan(p, {})
    assert loaded(graph.fasls["lib/x.lisp"].state) == ["lib/package.fasl"]
    assert loaded(graph.fasls["lib/y.lisp"].state) == ["lib/package.fasl"]
    assert loaded(graph.fasls["lib/main.lisp"].state) == ["lib/package.fasl", "lib/x.fasl",
                                                          "lib/y.fasl"]
    assert graph.fasls["lib/main.lisp"].after == ("fasl:lib/x.lisp", "fasl:lib/y.lisp")


def test_the_biggest_dependency_loads_first_so_states_share_a_prefix(tmp_path):
    p = project(tmp_path)
    p.library("small", ["s.lisp"])
    p.library("big", ["b1.lisp", "b2.lisp", "b3.lisp"])
    p.library("top", ["t.lisp"], depends_on=["small", "big"])
    graph = plan(p, {})
    top = graph.fasls["top/t.lisp"].state
    assert loaded(top) == ["big/b1.fasl", "big/b2.fasl", "big/b3.fasl", "small/s.fasl"]
    # A worker that has loaded all of big holds the start of top's state.
    big_complete = top.parent
    assert big_complete.steps() == graph.fasls["big/b3.lisp"].state.steps() + [
        ("load", "build/fasl/big/b3.fasl")]


def test_a_state_digest_depends_on_steps_and_contents_not_on_chunks(tmp_path):
    contents = {"a.fasl": "1", "b.fasl": "2"}
    states = StateDigests("root", lambda path: contents[path])
    whole = EMPTY.extend([("load", "a.fasl"), ("load", "b.fasl")])
    chained = EMPTY.extend([("load", "a.fasl")]).extend([("load", "b.fasl")])
    assert states.digest(whole) == states.digest(chained)
    assert states.prefixes(whole)[1] == states.digest(chained.parent)
    contents["a.fasl"] = "changed"
    assert StateDigests("root", lambda path: contents[path]).digest(whole) != states.digest(whole)


def test_what_a_state_loads_is_answered_from_its_parents_answer_alike():
    """Answers extended from a parent's are those of the whole chain, and a
    sibling's answer does not leak into another's."""
    contents = {"a.fasl": "1", "b.fasl": "2", "c.fasl": "3", "/abs/x.asd": "4"}
    states = StateDigests("root", lambda path: contents[path], name=lambda p: f"n:{p}")
    base = EMPTY.extend([("asdf", "x", "/abs/x.asd"), ("require", "asdf")])
    left = base.extend([("load", "a.fasl")]).extend([("load", "b.fasl")])
    right = base.extend([("load", "c.fasl")])
    for state in (left, right, base):  # parents answered before and after
        fresh = StateDigests("root", lambda path: contents[path], name=lambda p: f"n:{p}")
        flat = EMPTY.extend(state.steps())
        assert states.prefixes(state) == fresh.prefixes(flat)
        assert states.prefixes(state)[-1] == states.digest(state)
        files = [f for step in state.steps() for f in step_files(step)]
        assert states.loads(state) == [[f"n:{f}", contents[f]] for f in files]
        assert states.paths(state) == frozenset(files)
    assert "c.fasl" not in states.paths(left) and len(states.prefixes(right)) == 4


def test_a_worker_image_only_where_loading_costs_more_than_starting_from_it():
    hunchentoot_deps = [("asdf", "x", "x.asd")] * 20 + [("load", "f.fasl")] * 146
    assert worth_an_image(hunchentoot_deps)
    assert not worth_an_image([("load", "f.fasl")] * 10)


def test_a_file_may_only_need_files_listed_before_it(tmp_path):
    with pytest.raises(DeclarationError, match="library lib: a.lisp needs b.lisp"):
        project(tmp_path).library("lib", {"a.lisp": ["b.lisp"], "b.lisp": []})


def test_cycle_is_reported_with_its_path(tmp_path):
    p = project(tmp_path)
    p.library("a", [], depends_on=["b"])
    p.library("b", [], depends_on=["a"])
    with pytest.raises(DependencyCycle, match="a -> b -> a"):
        plan(p, {})


def test_unknown_library_and_binary_are_named(tmp_path):
    p = project(tmp_path)
    p.library("a", [], depends_on=["nope"])
    with pytest.raises(DeclarationError, match="library a depends on library nope"):
        plan(p, {})
    p = project(tmp_path)
    p.library("a", [])
    p.run("demo", binary="ghost")
    with pytest.raises(DeclarationError, match="run demo names binary ghost"):
        plan(p, {})


def test_policy_and_names_are_checked(tmp_path):
    p = project(tmp_path)
    with pytest.raises(DeclarationError, match="unknown policy quality 'sped'"):
        p.library("a", [], policy={"sped": 1})
    with pytest.raises(DeclarationError, match="policy speed must be 0 to 3"):
        p.library("a", [], policy={"speed": 5})
    p.library("a", [])
    with pytest.raises(DeclarationError, match="library a is declared twice"):
        p.library("a", [])
    with pytest.raises(DeclarationError, match="must be package:function"):
        p.binary("b", libraries=["a"], entry="main")


def test_resolution_takes_the_first_provider_in_link_order():
    entries = [Entry("f", False), Entry("v", True)]
    providers = [("own.o", {"f"}), ("libc.a", {"f", "v"})]
    assert resolve_symbols("app", entries, providers) == ({"f": "own.o", "v": "libc.a"}, [])


def test_a_symbol_the_dynamic_image_lacked_too_is_tolerated():
    entries = [Entry("SSLv3_method", False, undefined=True), Entry("SSL_new", False)]
    assert resolve_symbols("app", entries, [("libssl.a", {"SSL_new"})]) == \
        ({"SSL_new": "libssl.a"}, ["SSLv3_method"])


def test_unresolved_symbols_are_all_named_with_what_was_searched():
    with pytest.raises(UnresolvedSymbols) as error:
        resolve_symbols("app", [Entry("x", False), Entry("y", True), Entry("f", False)],
                        [("libc.a", {"f"}), ("libz.a", set())])
    assert "binary app needs" in str(error.value)
    assert "x, y" in str(error.value)
    assert "searched, in link order: libc.a, libz.a" in str(error.value)


def test_linkage_record_is_parsed_and_bad_lines_named(tmp_path):
    record = tmp_path / "app.linkage"
    record.write_text("data environ\nfunction malloc\nfunction SSLv2_method undefined\n"
                      "named sprintf\nnamed ffi_type_double\n")
    assert read_linkage(record) == ([Entry("environ", True), Entry("malloc", False),
                                     Entry("SSLv2_method", False, True)],
                                    ["sprintf", "ffi_type_double"])
    record.write_text("function malloc\nbogus\n")
    with pytest.raises(Exception, match="app.linkage:2"):
        read_linkage(record)


def test_symbol_table_is_sorted_and_aliased():
    source = symbol_table_source(["zeta", "exp", "environ"])
    assert source.index('"environ"') < source.index('"exp"') < source.index('"zeta"')
    assert 'extern char lispbuild_symbol_1[] __asm__("exp");' in source
    assert "lispbuild_symbol_count = 3;" in source
    libraries = symbol_table_source(["exp"], ["libssl", "libcrypto"])
    assert 'lispbuild_libraries[] = {"libcrypto", "libssl", 0};' in libraries
    assert "lispbuild_library_count = 2;" in libraries


def test_a_record_keeps_the_named_strings_that_name_a_symbol(tmp_path):
    record = tmp_path / "app.linkage"
    record.write_text("function malloc\nnamed sprintf\nnamed zygote\nnamed a5dbd8e8\n")
    keep_named(record, {"sprintf", "malloc", "free"})
    assert record.read_text() == "function malloc\nnamed sprintf\n"


def test_named_strings_are_exported_only_where_the_link_stays_whole():
    providers = [("compat.o", {"dlopen"}), ("libfirst.a", {"first_needs_later"}),
                 ("libffi.a", {"ffi_type_double", "ffi_call", "needs_missing",
                               "needs_first"}),
                 ("libc.a", {"sprintf", "malloc"})]
    members = {"libffi.a": [(["ffi_type_double"], []), (["ffi_call"], ["malloc"]),
                            (["needs_missing"], ["nowhere"]),
                            (["needs_first"], ["first_needs_later"])],
               "libfirst.a": [(["first_needs_later"], ["ffi_call"])]}
    named = ["sprintf", "ffi_type_double", "ffi_call", "needs_missing", "needs_first",
             "first_needs_later", "dlopen", "not_defined_anywhere"]
    assert named_symbols(named, providers, members.get) == [
        # libc and objects are linked whole; a member whose needs are met
        # later in the line is safe; one needing an earlier archive is not.
        "sprintf", "ffi_type_double", "ffi_call", "first_needs_later", "dlopen"]


def test_symbols_are_read_from_objects_and_archives(tmp_path):
    (tmp_path / "a.c").write_text("int visible(void) { return 1; }\n"
                                  "static int hidden(void) { return 2; }\n"
                                  "int data_item = 3; extern int elsewhere(void);\n"
                                  "int caller(void) { return hidden() + elsewhere(); }\n")
    (tmp_path / "b.c").write_text("__attribute__((weak)) int weakling(void) { return 4; }\n")
    for name in ("a", "b"):
        subprocess.run(["gcc", "-c", f"{name}.c"], cwd=tmp_path, check=True)
    subprocess.run(["ar", "rcs", "libab.a", "a.o", "b.o"], cwd=tmp_path, check=True)
    assert defined_symbols(tmp_path / "a.o") == ["caller", "data_item", "visible"]
    assert defined_symbols(tmp_path / "libab.a") == ["caller", "data_item", "visible",
                                                      "weakling"]
    assert archive_members(tmp_path / "libab.a") == [
        (["caller", "data_item", "visible"], ["elsewhere"]), (["weakling"], [])]
    # An archive without a symbol index is read member by member.
    subprocess.run(["ar", "rcS", "noindex.a", "a.o", "b.o"], cwd=tmp_path, check=True)
    assert defined_symbols(tmp_path / "noindex.a") == defined_symbols(tmp_path / "libab.a")


def test_embedded_core_layout(tmp_path):
    runtime, core, out = tmp_path / "rt", tmp_path / "core", tmp_path / "exe"
    runtime.write_bytes(b"R" * 1000)
    core.write_bytes(struct.pack("<Q", CORE_MAGIC) + b"core bytes")
    embed_core(runtime, core, out)
    data = out.read_bytes()
    assert data[:1000] == b"R" * 1000 and data[1000:32768] == bytes(32768 - 1000)
    assert data[32768:32768 + 18] == core.read_bytes()
    assert struct.unpack("<QQ", data[-16:]) == (32768, CORE_MAGIC)


def test_embedding_refuses_what_is_not_a_core(tmp_path):
    (tmp_path / "rt").write_bytes(b"R")
    (tmp_path / "core").write_bytes(b"not a core at all")
    with pytest.raises(NotStatic, match="is not an SBCL core"):
        embed_core(tmp_path / "rt", tmp_path / "core", tmp_path / "exe")


def test_a_dynamic_executable_is_refused():
    with pytest.raises(NotStatic, match="PT_INTERP"):
        check_static(os.path.realpath(sys.executable))


def test_store_round_trip_and_missing_objects(tmp_path):
    store = Store(tmp_path / "store")
    (tmp_path / "f").write_bytes(b"content")
    sha = store.put_file(tmp_path / "f")
    store.put_action(KEY, {"out": Output(sha, False)})
    assert store.get_action(KEY) == {"out": Output(sha, False)}
    assert store.object_path(sha).read_bytes() == b"content"
    assert not list(store.root.rglob(".tmp-*"))
    os.chmod(store.object_path(sha), 0o644)
    os.unlink(store.object_path(sha))
    assert store.get_action(KEY) is None  # an action whose output is gone is no hit


KEY = "ab" * 32


@pytest.mark.parametrize("record", [
    "[]", "{}", '{"version": 1, "outputs": null}', '{"version": 1, "outputs": {}}',
    "not json", "",
    '{"version": 1, "outputs": {"other": {"sha256": "%s", "executable": false}}}',  # a role
    '{"version": 1, "outputs": {"out": {"sha256": "/bin/ls", "executable": false}}}',
    '{"version": 1, "outputs": {"out": {"sha256": "../../x/secret.txt", "executable": false}}}',
    '{"version": 1, "outputs": {"out": {"sha256": "%s", "executable": "yes"}}}',
    '{"version": 1, "outputs": {"out": {"sha256": "%s"}}}',
    # Sound, but of another version (or none: an older lispbuild's).
    '{"version": 2, "outputs": {"out": {"sha256": "%s", "executable": false}}}',
    '{"outputs": {"out": {"sha256": "%s", "executable": false}}}',
])
def test_a_record_of_the_wrong_shape_is_no_record(tmp_path, record):
    store = Store(tmp_path / "store")
    (tmp_path / "f").write_bytes(b"content")
    sha = store.put_file(tmp_path / "f")
    path = store.root / "actions" / KEY[:2] / f"{KEY}.json"
    path.parent.mkdir(parents=True)
    path.write_text(record.replace("%s", sha))
    assert store.get_action(KEY, ["out"]) is None
    path.write_text('{"version": 1, "outputs": {"out": {"sha256": "%s", "executable": false}}}'
                    % sha)
    assert store.get_action(KEY, ["out"]) == {"out": Output(sha, False)}  # the sound one is


def test_put_file_replaces_an_object_whose_bytes_do_not_match(tmp_path):
    store = Store(tmp_path / "store")
    (tmp_path / "f").write_bytes(b"content")
    sha = store.put_file(tmp_path / "f")
    os.chmod(store.object_path(sha), 0o644)
    store.object_path(sha).write_bytes(b"cantent")
    (tmp_path / "g").write_bytes(b"content")
    assert store.put_file(tmp_path / "g") == sha
    assert store.object_path(sha).read_bytes() == b"content"


@pytest.mark.parametrize("damage", [
    lambda b: bytes([b[0] ^ 1]) + b[1:], lambda b: b[:-1], lambda b: b"", lambda b: b + b"x"])
def test_a_restore_checks_the_bytes_and_removes_a_bad_object(tmp_path, damage):
    store = Store(tmp_path / "store")
    (tmp_path / "f").write_bytes(b"some bytes of a fasl")
    sha = store.put_file(tmp_path / "f")
    os.chmod(store.object_path(sha), 0o644)
    store.object_path(sha).write_bytes(damage(b"some bytes of a fasl"))
    (tmp_path / "out").write_bytes(b"the earlier output")
    with pytest.raises(CorruptObject, match=sha[:12]):
        store.restore(sha, tmp_path / "out", executable=False)
    assert (tmp_path / "out").read_bytes() == b"the earlier output"
    assert not store.has_object(sha)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "store"]  # no temporary file


def test_a_derived_record_is_checked_and_validated(tmp_path):
    store = Store(tmp_path / "store")
    store.put_derived("symbols", KEY, ["malloc", "free"])
    is_names = lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v)
    assert store.get_derived("symbols", KEY, is_names) == ["malloc", "free"]
    path = store.root / "derived/symbols" / KEY[:2] / f"{KEY}.json"
    os.chmod(path, 0o644)
    path.write_text(path.read_text().replace("malloc", "mallox"))
    assert store.get_derived("symbols", KEY, is_names) is None
    path.write_text("[]")
    assert store.get_derived("symbols", KEY, is_names) is None


def test_store_check_removes_bad_objects_and_records_and_says_so(tmp_path):
    store = Store(tmp_path / "store")
    (tmp_path / "good").write_bytes(b"good")
    (tmp_path / "bad").write_bytes(b"bad")
    good, bad = store.put_file(tmp_path / "good"), store.put_file(tmp_path / "bad")
    store.put_action(KEY, {"out": Output(good, False)})
    store.put_action("cd" * 32, {"out": Output(bad, False)})
    store.put_derived("symbols", KEY, ["x"])
    os.chmod(store.object_path(bad), 0o644)
    store.object_path(bad).write_bytes(b"bat")
    (store.root / "actions/ef").mkdir()
    (store.root / "actions/ef" / ("ef" * 32 + ".json")).write_text('{"outputs": []}')
    (store.root / "objects/ab").mkdir(exist_ok=True)
    (store.root / f"objects/ab/.tmp-{2**22 + 7}-x").write_bytes(b"half")  # a dead writer
    lines = []
    counts = store.check(lines.append)
    assert counts == {"objects": 2, "records": 3, "derived": 1, "removed": 4}, lines
    assert any(bad in line and "do not match" in line for line in lines)
    assert store.get_action(KEY) is not None and store.has_object(good)
    assert store.check(lines.append)["removed"] == 0


def test_a_digest_database_of_garbage_is_started_again(tmp_path):
    db = tmp_path / "digests.sqlite3"
    db.write_bytes(b"this is not a database" * 100)
    (tmp_path / "f").write_text("x")
    assert DigestCache(db).digest(tmp_path / "f") == hash_file(tmp_path / "f")
    assert DigestCache(db).task_key("t") is None


def test_sweep_removes_what_dead_builds_left_and_keeps_live_work(tmp_path):
    dead, live = 2**22 + 7, os.getppid()
    build = tmp_path / "build"
    for path in (f"bin/.tmp-{dead}-x", f"bin/.tmp-{live}-x", f".lispbuild/scratch/{dead}-job-1/f",
                 f".lispbuild/scratch/{live}-job-1/f", f".lispbuild/images/a.core.{dead}.tmp",
                 f".lispbuild/workers/requests/{dead}/x.lisp", "bin/123-not-scratch"):
        (build / path).parent.mkdir(parents=True, exist_ok=True)
        (build / path).write_text("x")
    removed = sorted(str(p.relative_to(build)) for p in sweep(build))
    assert removed == sorted([f"bin/.tmp-{dead}-x", f".lispbuild/scratch/{dead}-job-1",
                              f".lispbuild/images/a.core.{dead}.tmp",
                              f".lispbuild/workers/requests/{dead}"])
    assert (build / f"bin/.tmp-{live}-x").exists() and (build / "bin/123-not-scratch").exists()


def test_digest_cache_sees_an_edit_that_restores_the_mtime(tmp_path):
    cache = DigestCache(tmp_path / "digests.sqlite3")
    f = tmp_path / "src.lisp"
    f.write_text("(a)")
    first = cache.digest(f)
    st = os.stat(f)
    f.write_text("(b)")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache.digest(f) != first
    assert DigestCache(tmp_path / "digests.sqlite3").digest(f) == cache.digest(f)


def test_every_loaded_shared_library_needs_declared_archives():
    check_foreign_libraries("web", ["libssl.so.3", "/usr/lib/libcrypto.so.3"],
                            ["libssl", "libcrypto"])
    with pytest.raises(UndeclaredForeignLibrary, match="the image loads libz.so.1") as error:
        check_foreign_libraries("web", ["libssl.so.3", "libz.so.1"], ["libssl"])
    assert "'libz': ['/usr/lib/x86_64-linux-gnu/libz.a']" in str(error.value)


def test_priorities_follow_the_longest_chain_and_survive_a_cycle():
    from lispbuild import schedule
    tasks = [{"basename": "fasl", "name": "a", "task_dep": []},
             {"basename": "fasl", "name": "b", "task_dep": ["fasl:a"]},
             {"basename": "core", "name": "x", "task_dep": ["fasl:b"]},
             {"basename": "fasl", "name": "c", "task_dep": []}]
    schedule.set_priorities(tasks)
    assert schedule._priorities == {"fasl:a": 12.0, "fasl:b": 11.0, "core:x": 10.0, "fasl:c": 1.0}
    # A cycle is doit's to report: priorities are still given, at once.
    tasks[0]["task_dep"] = ["core:x"]
    schedule.set_priorities(tasks)
    assert set(schedule._priorities) == {"fasl:a", "fasl:b", "core:x", "fasl:c"}


def test_settings_are_read_from_the_environment_once_for_each_environment(monkeypatch):
    from lispbuild.settings import settings
    monkeypatch.setenv("LISPBUILD_FRESH", "1")
    monkeypatch.setenv("LISPBUILD_TRUSTED_KEYS", "keys/a.pub:keys/b.pub")
    monkeypatch.setenv("LISPBUILD_WARNINGS", "all")
    monkeypatch.delenv("LISPBUILD_REMOTE_UPLOAD", raising=False)
    first = settings()
    assert (first.fresh, first.trusted_keys, first.show_all_warnings, first.remote_upload) \
        == (True, ("keys/a.pub", "keys/b.pub"), True, False)
    assert settings() is first
    monkeypatch.setenv("LISPBUILD_FRESH", "0")
    assert settings().fresh is False
