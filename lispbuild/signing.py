"""Signed records of a remote store: a writer signs each action record
with its Ed25519 key; a reader that names trusted keys counts only the
records one of them signed (cryptography, loaded only by builds that
sign or check)."""
import json
from pathlib import Path

from .errors import DeclarationError
from .records import ActionRecord, Outputs, outputs_json


def signed_message(key: str, outputs: Outputs) -> bytes:
    return (b"lispbuild action record\0" + key.encode() + b"\0"
            + json.dumps(outputs_json(outputs), sort_keys=True, separators=(",", ":")).encode())


def _raw(public_key) -> str:
    from cryptography.hazmat.primitives import serialization
    return public_key.public_bytes(serialization.Encoding.Raw,
                                   serialization.PublicFormat.Raw).hex()


class Keys:
    """The writer's private key (a PEM file, or None) and the public keys
    (PEM files) whose records count; none trusted: every record counts."""

    def __init__(self, signing_key: str | None, trusted_keys: tuple[str, ...]):
        self.signer = self._read(signing_key, private=True) if signing_key else None
        trusted = [self._read(path, private=False) for path in trusted_keys]
        self.trusted = {_raw(k): k for k in trusted}

    @staticmethod
    def _read(path: str, private: bool):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey,
                                                                       Ed25519PublicKey)
        what = "signing key" if private else "trusted key"
        try:
            data = Path(path).read_bytes()
            key = (serialization.load_pem_private_key(data, None) if private
                   else serialization.load_pem_public_key(data))
        except (OSError, ValueError) as error:
            raise DeclarationError(f"{what} {path}: {error}") from None
        if not isinstance(key, Ed25519PrivateKey if private else Ed25519PublicKey):
            raise DeclarationError(f"{what} {path}: not an Ed25519 key")
        return key

    def signature(self, key: str, outputs: Outputs) -> dict | None:
        """The signature of a record this writer signs, else None."""
        if self.signer is None:
            return None
        return {"public_key": _raw(self.signer.public_key()),
                "signature": self.signer.sign(signed_message(key, outputs)).hex()}

    def trusts(self, key: str, record: ActionRecord) -> bool:
        """Whether the record counts: signed by a trusted key, when any is."""
        if not self.trusted:
            return True
        signature = record.signature
        try:
            public = self.trusted[signature["public_key"]]
            public.verify(bytes.fromhex(signature["signature"]),
                          signed_message(key, record.outputs))
            return True
        except Exception:  # unsigned, another key, a bad signature
            return False
