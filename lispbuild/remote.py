"""A remote store behind the local one, in the HTTP cache layout of Bazel,
so that any server that keeps what it is PUT (nginx with WebDAV,
bazel-remote) can hold it:

    PREFIX/ac/KEY      an action record: the local store's JSON, and the
                       writer's signature when writers sign
    PREFIX/cas/SHA256  an object's bytes

Nothing from the server is trusted. Each object is hashed as it arrives
and kept only if its bytes match its name; each record is validated, and
when the project names trusted keys, kept only if one of them signed it
(Ed25519, over the action key and the outputs). A fault (the server down,
refusing, slower than the time-out, an error status, wrong bytes) prints
one warning line for the build, and the build goes on locally: after a
fault the processes of this build ask the server no more.
"""
import hashlib
import json
import os
import socket
import sys
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from . import layout
from .digest import hash_file
from .errors import DeclarationError
from .scratch import tmp_prefix
from .signing import Keys
from .records import ActionRecord, Output, Outputs
from .store import Store
from .settings import REMOTE_VARIABLE, TIMEOUT_VARIABLE, settings

DEFAULT_TIMEOUT = 10.0
_CHUNK = 1 << 20


class RemoteFault(Exception):
    """The server could not be used for this request."""


@dataclass
class RemoteConfig:
    """How a project uses a remote store (declare.py fills it from the
    Project's arguments and the environment)."""
    url: str
    upload: bool = False
    timeout: float = DEFAULT_TIMEOUT
    signing_key: str | None = None      # PEM file of the writer's Ed25519 private key
    trusted_keys: tuple[str, ...] = ()  # PEM files of the public keys whose records count


class RemoteStore:
    def __init__(self, config: RemoteConfig, fault_marker: Path):
        parsed = urllib.parse.urlsplit(config.url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise DeclarationError(f"{REMOTE_VARIABLE}={config.url!r}: give an http:// or "
                                   f"https:// URL, e.g. http://cache.example:8080/lispbuild")
        self.config = config
        self.prefix = parsed.path.rstrip("/")
        self._address = (parsed.scheme, parsed.hostname, parsed.port)
        self._conn = None
        self._pid = None
        self.fault_marker = fault_marker
        self._keys = Keys(config.signing_key, config.trusted_keys)

    # --- what the rebuilder asks ----------------------------------------

    def fetch(self, key: str, roles, store: Store) -> Outputs | None:
        """The outputs of `key`, with every object verified and added to
        `store`, or None (a miss, a fault, or a record not to be trusted)."""
        if self._down():
            return None
        try:
            body = self._get(f"ac/{key}")
            if body is None:
                return None
            outputs = self._trusted_outputs(key, body, roles)
            if outputs is None:
                return None
            for output in outputs.values():
                if not store.has_object(output.sha256) and \
                        not self._fetch_object(key, output.sha256, store):
                    return None
            store.put_action(key, outputs)
            return outputs
        except RemoteFault as fault:
            self._fault(str(fault))
            return None

    def push(self, key: str, outputs: Outputs, store: Store):
        """Upload the objects, then the record that names them (signed when
        a signing key is set); what the server has already is not sent."""
        if not self.config.upload or self._down():
            return
        try:
            # The record the server has counts as uploaded only with every
            # object it names: a server that lost one is sent it again (or,
            # when this build's outputs differ, this build's record).
            served = self._served_outputs(key)
            if served is not None and all(self._has(o.sha256) or (
                    store.has_object(o.sha256) and self._send(o.sha256, store))
                    for o in served.values()):
                return
            for output in outputs.values():
                if not self._has(output.sha256):
                    self._send(output.sha256, store)
            record = ActionRecord(outputs, signature=self._keys.signature(key, outputs))
            self._put_bytes(f"ac/{key}", record.to_json())
        except (RemoteFault, OSError) as fault:
            self._fault(str(fault))

    def _served_outputs(self, key: str) -> Outputs | None:
        """The outputs of the server's record for `key`, if it has one that
        this build would trust."""
        body = self._get(f"ac/{key}")
        record = None if body is None else ActionRecord.from_json(body)
        return record.outputs if record and self._keys.trusts(key, record) else None

    def _has(self, sha: str) -> bool:
        return self._request("HEAD", f"cas/{sha}")[0] == 200

    def _send(self, sha: str, store: Store) -> bool:
        self._put_file(f"cas/{sha}", store.object_path(sha))
        return True

    # Derived facts (ASDF's answer) travel as actions too: one output, the
    # fact's canonical JSON, under a key of their own.
    def fetch_derived(self, kind: str, key: str, valid, store: Store):
        outputs = self.fetch(_derived_key(kind, key), ["value"], store)
        if outputs is None:
            return None
        try:
            value = json.loads(store.object_path(outputs["value"].sha256).read_bytes())
        except (OSError, ValueError):
            return None
        if not valid(value):
            return None
        store.put_derived(kind, key, value)
        return value

    def push_derived(self, kind: str, key: str, value, store: Store):
        if not self.config.upload or self._down():
            return
        path = store.root / "derived" / f"{tmp_prefix()}{os.urandom(4).hex()}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())
        try:
            sha = store.put_file(path)
        finally:
            path.unlink(missing_ok=True)
        self.push(_derived_key(kind, key), {"value": Output(sha, False)}, store)

    # --- checking what arrives ------------------------------------------

    def _trusted_outputs(self, key: str, body: bytes, roles) -> Outputs | None:
        record = ActionRecord.from_json(body, roles)
        if record is None:
            return self._refuse(key, "not a record of this lispbuild's version and shape")
        if not self._keys.trusts(key, record):
            return self._refuse(key, "not signed by a trusted key")
        return record.outputs

    def _refuse(self, key: str, why: str):
        self._warn_once(f"ignored the remote store's record {key[:12]}...: {why}", "refused")
        return None

    def _fetch_object(self, key: str, sha: str, store: Store) -> bool:
        """Download an object into the store if its bytes match its name."""
        dest = store.object_path(sha)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f"{tmp_prefix()}{os.urandom(4).hex()}"
        try:
            with open(tmp, "wb") as out:
                found = self._get(f"cas/{sha}", out)
            if not found:
                self._warn_once(f"the remote store has the record {key[:12]}... but not its "
                                f"object {sha[:12]}... (the server lost it); building locally, "
                                f"and an uploading build sends it again", "lost")
                return False
            if hash_file(tmp) != sha:
                self._warn_once(f"the remote store's object {sha[:12]}... did not match its "
                                f"digest; building locally", "wrong-bytes")
                return False
            store.put_file(tmp)
            return True
        finally:
            tmp.unlink(missing_ok=True)

    # --- HTTP -------------------------------------------------------------

    def _connection(self):
        import http.client  # here: most builds have no remote, and every doit imports this
        if self._conn is None or self._pid != os.getpid():  # not across fork()
            scheme, host, port = self._address
            kind = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            self._conn, self._pid = kind(host, port, timeout=self.config.timeout), os.getpid()
        return self._conn

    def _request(self, method: str, path: str, body=None, headers=None, sink=None):
        """(status, body); the body goes to `sink` (a file) when given. The
        whole request has config.timeout seconds: a server that trickles
        its answer is cut off (the socket is shut down under the reader)."""
        import http.client
        conn = self._connection()
        expired = threading.Event()

        def cut_off():
            expired.set()
            if conn.sock is not None:
                try:
                    conn.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        timer = threading.Timer(self.config.timeout, cut_off)
        timer.start()
        received = 0
        try:
            conn.request(method, f"{self.prefix}/{path}", body=body, headers=headers or {})
            response = conn.getresponse()
            data = b""
            while chunk := response.read(_CHUNK):
                received += len(chunk)
                if sink is not None and response.status == 200:
                    sink.write(chunk)
                else:
                    data += chunk
            if expired.is_set():
                raise RemoteFault(f"no answer within {self.config.timeout:g} s")
            if response.length:  # http.client stops at the end of the connection silently
                raise http.client.IncompleteRead(b"", response.length)
            return response.status, data
        except (OSError, http.client.HTTPException, RemoteFault) as error:
            conn.close()
            self._conn = None
            if expired.is_set():
                raise RemoteFault(f"no answer within {self.config.timeout:g} s") from None
            if isinstance(error, http.client.IncompleteRead):
                expected = f" of {received + error.expected:,}" if error.expected else ""
                raise RemoteFault(f"the connection was cut during {method} {path.split('/')[0]}/ "
                                  f"after {received:,}{expected} bytes") from None
            raise RemoteFault(str(error) or type(error).__name__) from None
        finally:
            timer.cancel()

    def _get(self, path: str, sink=None):
        status, data = self._request("GET", path, sink=sink)
        if status == 404:
            return None
        if status != 200:
            raise RemoteFault(f"GET {path.split('/')[0]}/: HTTP {status}")
        return data if sink is None else True

    def _put_bytes(self, path: str, data: bytes):
        status, _ = self._request("PUT", path, body=data,
                                  headers={"Content-Length": str(len(data))})
        if status not in (200, 201, 204):
            raise RemoteFault(f"PUT {path.split('/')[0]}/: HTTP {status}")

    def _put_file(self, path: str, source: Path):
        with open(source, "rb") as f:
            status, _ = self._request("PUT", path, body=f, headers={
                "Content-Length": str(os.fstat(f.fileno()).st_size)})
        if status not in (200, 201, 204):
            raise RemoteFault(f"PUT {path.split('/')[0]}/: HTTP {status}")

    # --- one warning a build ----------------------------------------------

    def _down(self) -> bool:
        return self.fault_marker.exists()

    def _fault(self, why: str):
        self._warn_once(f"the remote store {self.config.url} cannot be used ({why}); "
                        f"building locally", "down")

    def _warn_once(self, line: str, kind: str):
        """Print `line` if no process of this build said the same; after a
        fault (kind "down") the build stops asking the server."""
        marker = (self.fault_marker if kind == "down"
                  else self.fault_marker.with_name(f"{self.fault_marker.name}-{kind}"))
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        except OSError:
            pass
        print(f"warning: {line}", file=sys.stderr)


def _derived_key(kind: str, key: str) -> str:
    return hashlib.sha256(f"lispbuild derived\0{kind}\0{key}".encode()).hexdigest()


def remote_config(root: Path, url, upload, trusted_keys) -> RemoteConfig | None:
    """A project's remote store (Project's arguments, else the environment), or None."""
    env = settings()
    url = url or env.remote
    if not url:
        return None
    if upload is None:
        upload = env.remote_upload
    if trusted_keys is None:
        trusted_keys = env.trusted_keys
    timeout = env.remote_timeout or DEFAULT_TIMEOUT
    try:
        timeout = float(timeout)
    except ValueError:
        raise DeclarationError(f"{TIMEOUT_VARIABLE}={timeout!r}: give a number of seconds")
    signing_key = env.signing_key
    return RemoteConfig(url=str(url), upload=bool(upload), timeout=timeout,
                        signing_key=signing_key and str(root / signing_key),
                        trusted_keys=tuple(str(root / k) for k in trusted_keys))


def remote_from(config: RemoteConfig | None, build: Path, owner: int) -> RemoteStore | None:
    """The remote store of a build, if the project has one; each build
    tries the server afresh."""
    if config is None:
        return None
    for old in layout.state(build, "").glob(f"{layout.REMOTE_FAULT}*"):
        old.unlink(missing_ok=True)
    return RemoteStore(config, layout.state(build, f"{layout.REMOTE_FAULT}{owner}"))
