"""The content-addressed store: finished outputs by digest, and which
outputs each action key produced.

    STORE/objects/ab/abcdef...      a file's bytes, named by its sha256
    STORE/actions/12/1234....json   records.ActionRecord: {"outputs": {role:
                                    {"sha256", "executable"}}, "version", "made_by"}
    STORE/derived/KIND/ab/abcd.json facts derived from a file, by its sha256
                                    (e.g. the symbols an archive defines)

Every write goes to a temporary name in the same directory and is renamed
into place, so a reader never takes a half-written file for a result, and
several projects (or doit's worker processes) can share one store.
An action record is written only after all its objects are in place.

Nothing read from the store is trusted: a record of the wrong shape is no
record, and an object is hashed as it is restored; one whose bytes do not
match its name is removed, and the task that wanted it builds instead.
"""
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

from .digest import digest_bytes, hash_file
from .errors import CorruptObject
from .records import ActionRecord, Outputs, is_sha256
from .scratch import process_alive, tmp_prefix, writer

def _named(error: OSError, dest: Path) -> OSError:
    """The error, naming the file being written when it names none (a
    copy's ENOSPC does not), for a message that says which disk is full."""
    if error.filename is None:
        return OSError(error.errno, error.strerror, str(dest))
    return error


def _atomic_write(dest: Path, write, mode: int):
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=tmp_prefix())
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except OSError as error:
        os.unlink(tmp)
        raise _named(error, dest) from error
    except BaseException:
        os.unlink(tmp)
        raise


# What copy_file_range answers where the kernel cannot copy between these
# two files: across file systems (EXDEV), a file system without it
# (EOPNOTSUPP, ENOSYS, EINVAL on some, e.g. overlay or FUSE mounts).
_NO_KERNEL_COPY = frozenset({errno.EXDEV, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL,
                             errno.ETXTBSY})


def copy_file(source, out):
    """Append all of the open file `source` to the open file `out`, in the
    kernel where it can (copy_file_range; a 57 MiB executable in about
    30 ms), by reading and writing where it cannot."""
    size = os.fstat(source.fileno()).st_size - source.tell()
    out.flush()
    while size > 0:
        try:
            copied = os.copy_file_range(source.fileno(), out.fileno(), size)
        except OSError as error:
            if error.errno not in _NO_KERNEL_COPY:
                raise
            copied = 0
        if copied == 0:
            break
        size -= copied
    if size > 0:  # copy what is left by hand, from where the kernel stopped
        source.seek(os.lseek(source.fileno(), 0, os.SEEK_CUR))
        out.seek(os.lseek(out.fileno(), 0, os.SEEK_CUR))
        shutil.copyfileobj(source, out, 1 << 20)


def copy_atomically(src: Path, dest: Path, executable: bool = False):
    """Copy src to dest so that dest is never seen half-written."""
    def write(f):
        with open(src, "rb") as s:
            copy_file(s, f)
    _atomic_write(dest, write, 0o755 if executable else 0o644)


class Store:
    def __init__(self, root: Path):
        self.root = Path(root)

    def object_path(self, sha256: str) -> Path:
        if not is_sha256(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / "objects" / sha256[:2] / sha256

    def _action_path(self, key: str) -> Path:
        return self.root / "actions" / key[:2] / f"{key}.json"

    def put_file(self, path: Path) -> str:
        """Add a file's bytes, taking the file itself (a builder's scratch
        output, no longer written) when it can be renamed into the store;
        returns their sha256. An object already there under that name is
        kept only if its bytes match the name."""
        sha256 = hash_file(path)
        dest = self.object_path(sha256)
        if dest.exists() and self._matches(dest, sha256):
            return sha256
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o444)
        try:
            os.replace(path, dest)
        except OSError:  # another file system: copy
            copy_atomically(path, dest)
            os.chmod(dest, 0o444)
        return sha256

    @staticmethod
    def _matches(path: Path, sha256: str) -> bool:
        try:
            return hash_file(path) == sha256
        except OSError:
            return False

    def has_object(self, sha256: str) -> bool:
        return self.object_path(sha256).exists()

    def restore(self, sha256: str, dest: Path, executable: bool):
        """Copy an object to dest (never seen half-written), checking that
        the bytes that arrive are those its name promises. An object that
        does not match is removed, and CorruptObject raised: nothing is
        written to dest."""
        source = self.object_path(sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=tmp_prefix())
        try:
            with os.fdopen(fd, "wb") as f, open(source, "rb") as s:
                copy_file(s, f)
            if hash_file(tmp) != sha256:
                self.remove_object(sha256)
                raise CorruptObject(f"the store's object {sha256[:12]}... did not match its "
                                    f"digest and was removed")
            os.chmod(tmp, 0o755 if executable else 0o644)
            os.replace(tmp, dest)
        except OSError as error:
            os.unlink(tmp)
            raise _named(error, dest) from error
        except BaseException:
            os.unlink(tmp)
            raise

    def remove_object(self, sha256: str):
        path = self.object_path(sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            pass

    def get_action(self, key: str, roles=None) -> Outputs | None:
        """The outputs recorded for an action key, if the record is sound
        (with exactly `roles`, when given) and all its objects are stored."""
        try:
            record = ActionRecord.from_json(self._action_path(key).read_bytes(), roles)
        except OSError:
            return None
        if record is not None and all(self.has_object(o.sha256)
                                      for o in record.outputs.values()):
            return record.outputs
        return None

    def put_action(self, key: str, outputs: Outputs, made_by: str | None = None):
        """Record the outputs of an action key; `made_by`, the runner that
        made them (runners.py), is said in the record, not checked."""
        data = ActionRecord(outputs, made_by).to_json()
        _atomic_write(self._action_path(key), lambda f: f.write(data), 0o444)

    def _derived_path(self, kind: str, sha256: str) -> Path:
        return self.root / "derived" / kind / sha256[:2] / f"{sha256}.json"

    def get_derived(self, kind: str, sha256: str, valid):
        """A fact derived from the file with this digest, if it was recorded
        whole (its own digest matches) and `valid(value)` accepts it."""
        try:
            record = json.loads(self._derived_path(kind, sha256).read_text())
            value = record["value"]
            if record["sha256"] != digest_bytes(_canonical(value)) or not valid(value):
                return None
            return value
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def put_derived(self, kind: str, sha256: str, value):
        data = json.dumps({"sha256": digest_bytes(_canonical(value)), "value": value}).encode()
        _atomic_write(self._derived_path(kind, sha256), lambda f: f.write(data), 0o444)

    def check(self, report=print) -> dict[str, int]:
        """Verify every object (its bytes match its name), action record
        (sound, and every object it names present) and derived record;
        remove what fails, saying what. Returns the counts."""
        counts = {"objects": 0, "records": 0, "derived": 0, "removed": 0}

        def remove(path: Path, why: str):
            report(f"removed {path.relative_to(self.root)}: {why}")
            path.unlink(missing_ok=True)
            counts["removed"] += 1

        def unfinished(path: Path) -> bool:
            """A write in progress is left alone; a killed one removed."""
            pid = writer(str(path.parent), path.name)
            if pid is not None and not process_alive(pid):
                remove(path, "an unfinished write of a stopped build")
            return pid is not None

        for path in sorted((self.root / "objects").glob("*/*")):
            if unfinished(path):
                continue
            counts["objects"] += 1
            if not is_sha256(path.name) or path.parent.name != path.name[:2]:
                remove(path, "not an object's name")
            elif not self._matches(path, path.name):
                remove(path, "its bytes do not match its name")
        for path in sorted((self.root / "actions").glob("*/*")):
            if unfinished(path):
                continue
            counts["records"] += 1
            key = path.name.removesuffix(".json")
            if not is_sha256(key) or path.parent.name != key[:2] or path.suffix != ".json":
                remove(path, "not a record's name")
            elif self.get_action(key) is None:
                remove(path, "unreadable, of the wrong shape, or naming a missing object")
        for path in sorted((self.root / "derived").glob("*/*/*")):
            if unfinished(path):
                continue
            counts["derived"] += 1
            if (not is_sha256(path.stem) or path.suffix != ".json"
                    or self.get_derived(path.parent.parent.name, path.stem,
                                        lambda _: True) is None):
                remove(path, "unreadable, or not what was written")
        return counts


def _canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
