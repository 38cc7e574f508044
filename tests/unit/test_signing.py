"""Signed records of a remote store (signing.py), with keys made here."""
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lispbuild.errors import DeclarationError
from lispbuild.records import ActionRecord, Output
from lispbuild.signing import Keys

OUTPUTS = {"fasl": Output("ab" * 32, False)}


def key_files(tmp_path, name):
    private = Ed25519PrivateKey.generate()
    (tmp_path / f"{name}.key").write_bytes(private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (tmp_path / f"{name}.pub").write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return str(tmp_path / f"{name}.key"), str(tmp_path / f"{name}.pub")


def test_a_reader_counts_only_what_a_trusted_key_signed(tmp_path):
    ci_key, ci_pub = key_files(tmp_path, "ci")
    other_key, _ = key_files(tmp_path, "other")
    record = ActionRecord(OUTPUTS, signature=Keys(ci_key, ()).signature("k1", OUTPUTS))
    reader = Keys(None, (ci_pub,))
    assert reader.trusts("k1", record)
    assert reader.trusts("k1", ActionRecord.from_json(record.to_json()))  # as the server keeps it
    assert not reader.trusts("k2", record)  # signed for another action key
    assert not reader.trusts("k1", ActionRecord(OUTPUTS))
    forged = ActionRecord(OUTPUTS, signature=Keys(other_key, ()).signature("k1", OUTPUTS))
    assert not reader.trusts("k1", forged)
    changed = ActionRecord({"fasl": Output("cd" * 32, False)}, signature=record.signature)
    assert not reader.trusts("k1", changed)
    # Naming no trusted key, a reader counts every record; a writer without
    # a key signs nothing.
    assert Keys(None, ()).trusts("k1", ActionRecord(OUTPUTS))
    assert Keys(None, ()).signature("k1", OUTPUTS) is None


def test_a_key_file_that_is_not_an_ed25519_key_is_named(tmp_path):
    (tmp_path / "bad.pub").write_text("not a key\n")
    with pytest.raises(DeclarationError, match="trusted key .*bad.pub"):
        Keys(None, (str(tmp_path / "bad.pub"),))
