"""A development executable's payload (rules/payload.py, embed.py): which
steps it carries, the state its base image holds, and where the program
finds each in its file. The program's side is tested end to end
(tests/e2e/test_payload.py)."""
import struct

from lispbuild.embed import CORE_MAGIC, PAYLOAD_MAGIC, RESOURCES_MAGIC, embed_core
from lispbuild.rules.payload import payload_start, prefix, table
from lispbuild.steps import EMPTY, StateDigests

OWN = {"build/fasl/app/a.fasl", "build/fasl/app/b.fasl"}


def test_the_payload_is_the_last_run_of_the_projects_own_fasls():
    dep = [("require", "asdf"), ("asdf", "dep", "/usr/dep.asd"),
           ("load", "build/fasl/dep/x.fasl", "dep", "x.lisp"), ("loaded", "dep")]
    own = [("asdf", "app", "app/app.asd"), ("load", "build/fasl/app/a.fasl", "app", "a.lisp"),
           ("load", "build/fasl/app/b.fasl", "app", "b.lisp"), ("loaded", "app")]
    steps = dep + own
    # ASDF's definition of the system stays in the image, its files and
    # the mark that they are loaded go.
    assert payload_start(steps, OWN) == len(dep) + 1
    # A dependency's `loaded` mark does not start the payload.
    assert payload_start(dep, OWN) == len(dep)
    # The project's FASLs before a dependency's stay in the image.
    assert payload_start(own + dep, OWN) == len(own + dep)
    # Groveled or wrapping FASLs are not the project's own (tasks.py).
    assert payload_start(steps, {"build/fasl/app/b.fasl"}) == len(steps) - 2
    assert payload_start([], OWN) == 0


def test_the_base_state_is_an_ancestor_when_one_holds_its_steps():
    first = EMPTY.extend([("require", "asdf"), ("load", "build/fasl/dep/x.fasl")])
    whole = first.extend([("load", "build/fasl/app/a.fasl"), ("load", "build/fasl/app/b.fasl")])
    assert prefix(whole, 2) is first
    assert prefix(whole, 4) is whole
    three = prefix(whole, 3)
    assert three.steps() == whole.steps()[:3] and three.parent is first
    digests = StateDigests("/p", lambda path: path)
    assert digests.digest(three) == digests.digest(EMPTY.extend(whole.steps()[:3]))


def u64s(data: bytes, at: int, count: int) -> tuple:
    return struct.unpack_from(f"<{count}Q", data, at)


def entries(data: bytes, mark: int) -> list[tuple[bytes, bytes]]:
    """(name, bytes) of the table whose 16-byte mark is at `mark`."""
    start, _ = u64s(data, mark, 2)
    found = []
    for i in range(u64s(data, start, 1)[0]):
        name_length, name_start, length = u64s(data, start + 8 + 24 * i, 3)
        body = name_start + name_length
        found.append((data[name_start:body], data[body:body + length]))
    return found


def test_the_payload_table_is_found_before_the_resources_mark(tmp_path):
    runtime, core, out = tmp_path / "rt", tmp_path / "core", tmp_path / "exe"
    runtime.write_bytes(b"R" * 1000)
    core.write_bytes(struct.pack("<Q", CORE_MAGIC) + b"core bytes")
    (tmp_path / "build/fasl/app").mkdir(parents=True)
    (tmp_path / "build/fasl/app/a.fasl").write_bytes(b"# FASL a")
    (tmp_path / "words.txt").write_bytes(b"static\n")
    steps = [["load", "build/fasl/app/a.fasl", "app", "a.lisp"], ["loaded", "app"]]
    embed_core(runtime, core, out, [], table(steps, tmp_path))
    data = out.read_bytes()
    start, magic = u64s(data, len(data) - 16, 2)
    assert magic == CORE_MAGIC and data[start:start + 18] == core.read_bytes()
    # No resources: their table is there, empty, so that the payload's
    # mark is where the program looks for it.
    assert u64s(data, start - 16, 2)[1] == RESOURCES_MAGIC
    assert entries(data, start - 16) == []
    assert u64s(data, start - 32, 2)[1] == PAYLOAD_MAGIC
    assert entries(data, start - 32) == [
        (b'(:load "build/fasl/app/a.fasl" "app" "a.lisp")', b"# FASL a"),
        (b'(:loaded "app")', b"")]
    embed_core(runtime, core, out, [("words.txt", tmp_path / "words.txt")],
               table(steps[:1], tmp_path))
    data = out.read_bytes()
    start = u64s(data, len(data) - 16, 1)[0]
    assert entries(data, start - 16) == [(b"words.txt", b"static\n")]
    assert [name for name, _ in entries(data, start - 32)] == [
        b'(:load "build/fasl/app/a.fasl" "app" "a.lisp")']
