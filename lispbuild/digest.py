"""Content digests of files, remembered by stat so that a no-op build
hashes nothing.

A file's digest is reused while its size, mtime, ctime and inode are those
seen when it was hashed; ctime cannot be set back by hand, so an edit that
restores the mtime is still noticed. The memory is a SQLite file, because
doit runs actions in several processes and any of them may hash a file.
"""
import hashlib
import os
import sqlite3
from pathlib import Path

_CHUNK = 1 << 20


def digest_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class DigestCache:
    """sha256 of files, cached by (size, mtime, ctime, inode); and, for
    each task, the key its outputs under build/ were made for.

    Each process reads both tables whole at its first question (a no-op
    build asks about every file and task once), then asks SQLite only for
    what it has not seen: another process may have added it since."""

    def __init__(self, db_path: Path):
        self.db_path = db_path
        self._conn = None
        self._pid = None
        self._known: dict[str, tuple[str, str]] | None = None
        self._keys: dict[str, tuple[str, str]] | None = None

    def _db(self) -> sqlite3.Connection:
        # A connection must not cross fork(): doit's workers open their own.
        if self._conn is None or self._pid != os.getpid():
            try:
                conn = self._open()
            except sqlite3.DatabaseError:
                # Not a database (garbage, a half-copied file): it is only a
                # cache, so start it again.
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{self.db_path}{suffix}").unlink(missing_ok=True)
                conn = self._open()
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass
        if not os.access(self.db_path.parent, os.W_OK):
            # A read-only build directory: read what is there, remember the rest
            # in this process only.
            if self.db_path.exists():
                return sqlite3.connect(f"file:{self.db_path}?immutable=1", uri=True)
            conn = sqlite3.connect(":memory:", isolation_level=None)
        else:
            conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
            conn.execute("pragma journal_mode=wal")
            conn.execute("pragma synchronous=off")
        conn.execute("create table if not exists digest (path text primary key,"
                     " stat text not null, sha256 text not null)")
        conn.execute("create table if not exists task (name text primary key,"
                     " key text not null, outputs text not null)")
        # For `doit why`: what each task read when it last ran, and when it
        # last ran to the end; which build ran a task last.
        conn.execute("create table if not exists ran (name text primary key, build text,"
                     " previous text, current text not null, ok integer not null)")
        conn.execute("create table if not exists last (what text primary key, value text)")
        return conn

    def _write(self, sql: str, values: tuple):
        try:
            self._db().execute(sql, values)
        except sqlite3.OperationalError:  # read-only: remembered in this process only
            pass

    @staticmethod
    def _stat_key(st: os.stat_result) -> str:
        return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"

    def digest(self, path) -> str:
        """The file's sha256; raises FileNotFoundError if it is missing."""
        path = os.path.abspath(path)
        key = self._stat_key(os.stat(path))
        if self._known is None:
            self._known = {p: (k, d) for p, k, d in
                           self._db().execute("select path, stat, sha256 from digest")}
        seen = self._known.get(path)
        if seen and seen[0] == key:
            return seen[1]
        row = self._db().execute("select stat, sha256 from digest where path=?",
                                 (path,)).fetchone()
        if row and row[0] == key:
            self._known[path] = (key, row[1])
            return row[1]
        value = hash_file(path)
        # Store only if the file did not change while it was read.
        if self._stat_key(os.stat(path)) == key:
            self.remember(path, value, key)
        return value

    def recorded(self, path) -> str | None:
        """The sha256 last recorded for the file, whatever it holds now: what
        the last build that hashed it read (its processes share the table)."""
        row = self._db().execute("select sha256 from digest where path=?",
                                 (os.path.abspath(path),)).fetchone()
        return row[0] if row else None

    def remember(self, path, sha256: str, stat_key: str | None = None):
        path = os.path.abspath(path)
        stat_key = stat_key or self._stat_key(os.stat(path))
        if self._known is not None:
            self._known[path] = (stat_key, sha256)
        self._write("insert or replace into digest values (?, ?, ?)", (path, stat_key, sha256))

    def task_key(self, task: str) -> tuple[str, str] | None:
        """The key the task's outputs under build/ were made for, and those
        outputs (as recorded, JSON)."""
        if self._keys is None:
            self._keys = {n: (k, o) for n, k, o in
                          self._db().execute("select name, key, outputs from task")}
        found = self._keys.get(task)
        if found is None:
            found = self._db().execute("select key, outputs from task where name=?",
                                       (task,)).fetchone()
        return found

    def record_run(self, task: str, build: str, read: str):
        """The task runs in `build`, having read `read` (JSON); what it read
        when it last ran to the end becomes the previous."""
        row = self._db().execute("select previous, current, ok from ran where name=?",
                                 (task,)).fetchone()
        previous = (row[1] if row[2] else row[0]) if row else None
        self._write("insert or replace into ran values (?, ?, ?, ?, 0)",
                    (task, build, previous, read))
        self._write("insert or replace into last values ('build', ?)", (build,))

    def finish_run(self, task: str, restored: bool):
        # ok: 0 while it runs (and if it did not finish), 1 built, 2 restored.
        self._write("update ran set ok=? where name=?", (2 if restored else 1, task))

    def last_run(self, task: str) -> tuple[bool, str | None, str, int] | None:
        """Whether the task ran in the last build that ran any, what it read
        the time before and this time (JSON), and how it ended: 0 it did
        not, 1 built, 2 restored from a store."""
        row = self._db().execute("select build, previous, current, ok from ran where name=?",
                                 (task,)).fetchone()
        if row is None:
            return None
        last = self._db().execute("select value from last where what='build'").fetchone()
        return (last is not None and row[0] == last[0]), row[1], row[2], row[3]

    def record_task(self, task: str, key: str, outputs: str):
        if self._keys is not None:
            self._keys[task] = (key, outputs)
        self._write("insert or replace into task values (?, ?, ?)", (task, key, outputs))
