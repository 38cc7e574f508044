"""Content digests of files, remembered by stat so that a no-op build
hashes nothing.

A file's digest is reused while its size, mtime, ctime and inode are those
seen when it was hashed; ctime cannot be set back by hand, so an edit that
restores the mtime is still noticed. The memory is a SQLite file, because
doit runs actions in several processes and any of them may hash a file.
"""
import contextlib
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


# How a task's run ended (finish_run).
BUILT, RESTORED, FOLLOWED = 1, 2, 3  # FOLLOWED: compiled in the process of the file before it


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
        self._current: dict[str, tuple[str, str, str]] | None = None
        self._consulted: list | None = None

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
        # Tasks found current, with the stats of what that check read (current.py).
        conn.execute("create table if not exists current (name text primary key,"
                     " graph text not null, state text not null, files text not null)")
        # The graph's snapshot (current.py): rows ('graph', digest, ''),
        # ('task', name, '') and ('file', path, stat).
        conn.execute("create table if not exists snapshot (kind text not null,"
                     " name text not null, stat text not null, primary key (kind, name))")
        return conn

    def _write(self, sql: str, values: tuple):
        try:
            self._db().execute(sql, values)
        except sqlite3.OperationalError:  # read-only: remembered in this process only
            pass

    @staticmethod
    def _stat_key(st: os.stat_result) -> str:
        return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"

    def stat_key(self, path) -> str:
        """What the digest of the file is remembered by; OSError if it is gone."""
        return self._stat_key(os.stat(path))

    def digest(self, path) -> str:
        """The file's sha256; raises FileNotFoundError if it is missing."""
        path = os.path.abspath(path)
        key = self._stat_key(os.stat(path))
        if self._consulted is not None:
            self._consulted.append((path, key))
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

    @contextlib.contextmanager
    def consulting(self):
        """A list of (path, stat) of every file whose digest is asked for
        within."""
        self._consulted = consulted = []
        try:
            yield consulted
        finally:
            self._consulted = None

    def stat_of(self, path) -> str | None:
        """The stat this process last saw of a file it has a digest of."""
        seen = (self._known or {}).get(os.path.abspath(path))
        return seen and seen[0]

    def current_row(self, task: str) -> tuple[str, str, str] | None:
        """(graph, state, files) recorded when the task was last found
        current (current.py)."""
        if self._current is None:
            self._current = {n: (g, s, f) for n, g, s, f in
                             self._db().execute("select name, graph, state, files from current")}
        return self._current.get(task)

    def record_current(self, task: str, graph: str, state: str, files: str):
        if self._current is not None:
            self._current[task] = (graph, state, files)
        self._write("insert or replace into current values (?, ?, ?, ?)",
                    (task, graph, state, files))

    def snapshot(self) -> tuple[str | None, set[str], dict[str, str]]:
        """The graph's snapshot: its digest, its tasks, its files' stats."""
        graph, tasks, files = None, set(), {}
        for kind, name, stat in self._db().execute("select kind, name, stat from snapshot"):
            if kind == "file":
                files[name] = stat
            elif kind == "task":
                tasks.add(name)
            else:
                graph = name
        return graph, tasks, files

    def restart_snapshot(self, graph: str):
        self._write_many(["delete from snapshot",
                          ("insert into snapshot values ('graph', ?, '')", [(graph,)])])

    def add_to_snapshot(self, task: str, files: list[tuple[str, str]]):
        self._write_many([
            ("insert or replace into snapshot values ('file', ?, ?)", files),
            ("insert or replace into snapshot values ('task', ?, '')", [(task,)])])

    def _write_many(self, statements: list):
        """Statements (SQL, or SQL and rows) in one transaction."""
        conn = self._db()
        try:
            with conn:
                conn.execute("begin")
                for statement in statements:
                    if isinstance(statement, str):
                        conn.execute(statement)
                    else:
                        conn.executemany(*statement)
        except sqlite3.OperationalError:  # read-only: remembered in this process only
            pass

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

    def finish_run(self, task: str, ended: int):
        """How the task's run ended: BUILT, RESTORED or FOLLOWED (0 while
        it runs, and if it did not finish)."""
        self._write("update ran set ok=? where name=?", (ended, task))

    def followed_in(self, task: str, build: str) -> bool:
        """Whether the task's file was compiled in `build`, in the process
        of the file before it."""
        row = self._db().execute("select build, ok from ran where name=?", (task,)).fetchone()
        return row is not None and row[0] == build and row[1] == FOLLOWED

    def last_run(self, task: str) -> tuple[bool, str | None, str, int] | None:
        """Whether the task ran in the last build that ran any, what it read
        the time before and this time (JSON), and how it ended (0 if it
        did not, else finish_run's)."""
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
