"""The records lispbuild writes in one place and reads in another
(records.py, release.Manifest): versioned, and refused when of another
version or shape."""
import json
import os

import pytest

from lispbuild import release
from lispbuild.errors import ReleaseFailure
from lispbuild.records import ActionRecord, KeyDescription, Output

SHA = "ab" * 32


def description(**change) -> KeyDescription:
    fields = dict(run="lispbuild.rules.lisp.compile_fasl", params={"policy": None},
                  inputs=[["src/a.lisp", SHA]], outputs={"fasl": "build/fasl/a.fasl"},
                  lispbuild="cd" * 32, state=None)
    return KeyDescription(**{**fields, **change})


def test_a_key_is_the_digest_of_what_decides_the_outputs_and_no_more():
    key = description().key()
    assert len(key) == 64 and description().key() == key
    assert description(loads=[["build/fasl/b.fasl", SHA]]).key() == key  # said, not keyed
    for change in ({"params": {"policy": "speed"}}, {"inputs": [["src/a.lisp", "ef" * 32]]},
                   {"state": "01" * 32}, {"lispbuild": "ef" * 32},
                   {"outputs": {"fasl": "build/fasl/b.fasl"}}):
        assert description(**change).key() != key, change


def test_a_description_reads_back_as_written_and_another_versions_as_none():
    written = description(state="01" * 32, loads=[["build/fasl/b.fasl", SHA]])
    assert KeyDescription.from_json(written.to_json()) == written
    assert KeyDescription.from_json(written.to_json()).loads == written.loads
    record = json.loads(written.to_json())
    assert KeyDescription.from_json(json.dumps({**record, "version": 0})) is None
    assert KeyDescription.from_json(json.dumps({**record, "extra": 1})) is None
    assert KeyDescription.from_json("not json") is None


def test_an_action_record_reads_back_with_its_runner_and_signature():
    record = ActionRecord({"exe": Output(SHA, True)}, made_by="workers",
                          signature={"public_key": "00", "signature": "11"})
    assert ActionRecord.from_json(record.to_json()) == record
    assert ActionRecord.from_json(record.to_json(), roles=["exe"]) == record
    assert ActionRecord.from_json(record.to_json(), roles=["exe", "reads"]) is None
    assert json.loads(record.to_json())["version"] == 1


def manifest(**change) -> release.Manifest:
    fields = dict(name="hello", version="1.0", mode="fastbuild", platform=release.PLATFORM,
                  source_date_epoch=1700000000, revision=None, smoke_args=None,
                  lispbuild={"version": "0"}, dump_directory="/lispbuild-release",
                  toolchain={}, sources=[{"path": "hello.lisp", "sha256": SHA}],
                  libraries=[{"library": "greet", "system": "greet", "version": "1.0",
                              "directory": "/q/greet-1.0", "found_in": "Quicklisp's dist q"}],
                  stages=[],
                  executable={"name": "hello", "sha256": SHA})
    return release.Manifest(**{**fields, **change})


def test_a_manifest_reads_back_as_written():
    written = manifest()
    assert release.Manifest.from_bytes(written.to_bytes(), "a.tar.gz") == written
    assert written.to_bytes().endswith(b"}\n") and b'"format": 3' in written.to_bytes()


@pytest.mark.parametrize("data, says", [
    (b"{", "manifest.json cannot be read"),
    (b"[]", "not a release archive of this lispbuild (manifest format None)"),
    (b'{"format": 1, "name": "hello"}', "(manifest format 1)"),
    (b'{"format": 2, "name": "hello"}', "(manifest format 2)"),
    (b'{"format": 3, "name": "hello"}', "manifest.json lacks version, mode, platform"),
])
def test_a_manifest_not_of_this_lispbuild_is_named(data, says):
    with pytest.raises(ReleaseFailure, match="^a.tar.gz: ") as error:
        release.Manifest.from_bytes(data, "a.tar.gz")
    assert says in str(error.value)


def test_the_archive_is_written_the_same_way_twice(tmp_path):
    """Whatever the executable's time and the order its manifest's
    dictionaries were filled in."""
    exe = tmp_path / "prog"
    exe.write_bytes(b"\x7fELF program")
    tools = {"sbcl": {"package": "sbcl 2:2.2.9"}, "musl": {"package": "musl-dev 1.2.3"}}
    first, second = tmp_path / "1.tar.gz", tmp_path / "2.tar.gz"
    release.write_archive(first, "prog-1", "prog", exe, manifest(toolchain=tools), 1000)
    os.utime(exe, (5, 5))
    release.write_archive(second, "prog-1", "prog", exe,
                          manifest(toolchain=dict(reversed(tools.items()))), 1000)
    assert first.read_bytes() == second.read_bytes()
    files = release.read_archive(first)
    assert files["prog"] == b"\x7fELF program"
    assert files["SHA256SUMS"].decode().splitlines()[1].endswith("  prog")
    assert release.Manifest.from_bytes(files["manifest.json"], "1.tar.gz").toolchain == tools
