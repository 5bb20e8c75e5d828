"""What every SQLite primitive shares: the URL, the connections, write transactions.

Every node thread and every function instance process opens its own connection to the
same file; SQLite's file locks serialise writers (`BEGIN IMMEDIATE`, so a writer waits
for the lock up front instead of failing when it upgrades from reading) and WAL lets
readers run alongside the one writer. A write method returns only after its transaction
has committed to the WAL; with `synchronous=NORMAL` (the default) that survives a killed
process, `?synchronous=full` also survives power loss. `?mode=rw` opens an existing file
only (how function instances reopen the node's: a deleted file is an error, not a new one).

Writers of every process queue for SQLite's lock at a gate first: an advisory `flock` on
`<file>-lock`, taken before `BEGIN IMMEDIATE` and given up after the commit. SQLite's own
wait for a locked file is a sleep (1, 2, 5, 10, ... 100 ms) between tries, so with the
node's consumers and the instances' table writes all committing, the lock sat unused
while its waiters slept and a write took up to 150 ms; a writer at the gate looks again
within a millisecond. The gate orders writers and nothing more: SQLite's lock still
guards the file (a writer that cannot open the gate, or another program, goes straight
to it), and the kernel drops a dead process's `flock`.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from squall.backends.deadline import cap as cap_wait
from squall.backends.protocol import Clock
from squall.backends.sqlite import schema
from squall.errors import BackendUnavailable, ConfigError

_SYNCHRONOUS = ("off", "normal", "full", "extra")
_MODES = ("rwc", "rw")
#: seconds a statement waits for another process's lock (capped by an invocation's deadline)
BUSY_TIMEOUT = 30.0
#: the files beside the database: SQLite's write-ahead log and its index, and the gate
WAL_SUFFIX, GATE_SUFFIX = "-wal", "-lock"
COMPANION_SUFFIXES = (WAL_SUFFIX, "-shm", GATE_SUFFIX)
#: seconds a writer waiting at the gate sleeps between looks: first, and at most (the
#: transactions it waits for take a fraction of a millisecond)
GATE_FIRST_WAIT, GATE_MOST_WAIT = 0.00005, 0.001
#: SQLite result codes that say the file cannot be used (locked, read-only, disk full, gone,
#: damaged), as opposed to a mistake in a statement: they become BackendUnavailable
_UNAVAILABLE = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR,
                sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL,
                sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_PERM}

#: SQLite connections must not be used, or even closed, in a forked child (its lock
#: state is the parent's). Children park the connections they inherited here so that
#: garbage collection never closes them.
_INHERITED: list[sqlite3.Connection] = []


@dataclass(frozen=True)
class Location:
    """What a `sqlite:///path?synchronous=...&mode=...` URL names."""

    #: absolute, resolved once, so a later chdir (or a forked instance) opens the same file
    path: str
    synchronous: str = "normal"
    #: "rwc" creates the file if it is missing; "rw" (how instances reopen it) never does
    mode: str = "rwc"

    def url(self, mode: str) -> str:
        return f"sqlite:///{self.path}?synchronous={self.synchronous}&mode={mode}"


def parse_url(url: str) -> Location:
    """The file, synchronous mode and open mode of a SQLite URL."""
    if not url.startswith("sqlite:///"):
        raise ConfigError(f"bad SQLite URL {url!r}: expected sqlite:///relative.db or sqlite:////abs.db")
    path, _, query = url[len("sqlite:///"):].partition("?")
    if not path or path == ":memory:":
        raise ConfigError(f"bad SQLite URL {url!r}: a database file path is required")
    options: dict[str, str] = {}
    choices = {"synchronous": _SYNCHRONOUS, "mode": _MODES}
    for part in filter(None, query.split("&")):
        name, _, value = part.partition("=")
        if value.lower() not in choices.get(name, ()):
            raise ConfigError(f"bad SQLite URL option {part!r}: expected "
                              + " or ".join(f"{key}={'|'.join(values)}" for key, values in choices.items()))
        options[name] = value.lower()
    return Location(os.path.abspath(path), **options)


class _Connection(sqlite3.Connection):
    """A connection whose "the file cannot be used" errors are BackendUnavailable naming the
    file (the CLI prints one line, the gateway a JSON 500), not raw sqlite3 errors."""

    path = ""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.DatabaseError as e:
            raise _unavailable(self.path, e) from e

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> sqlite3.Cursor:
        try:
            return super().executemany(sql, parameters)
        except sqlite3.DatabaseError as e:
            raise _unavailable(self.path, e) from e


def _unavailable(path: str, error: sqlite3.DatabaseError) -> Exception:
    """The error to raise for `error` on the database at `path`: BackendUnavailable when the
    file cannot be used, the error itself otherwise (a bug in a statement stays visible)."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is None or code & 0xFF not in _UNAVAILABLE:
        return error
    return BackendUnavailable(f"cannot use SQLite database {path}: {_describe(path, error)}")


def _describe(path: str, error: BaseException) -> str:
    """SQLite's message, with the cause when the file system shows it: SQLite often says only
    "unable to open database file" or "disk I/O error" (it cannot create or grow the WAL's
    shared-memory file)."""
    try:
        disk = os.statvfs(os.path.dirname(path))
    except OSError:
        return str(error)
    if disk.f_flag & os.ST_RDONLY:
        return f"{error} (the file system is read-only)"
    if disk.f_bavail == 0:
        return f"{error} (the disk is full)"
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return f"{error} (the file is read-only)"
    return str(error)


@dataclass
class _ProcessConnections:
    """The connections one process opened; replaced wholesale in a forked child."""

    pid: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    open: list[sqlite3.Connection] = field(default_factory=list)
    #: held for each write transaction. SQLite's busy handler makes a writer that finds the
    #: file locked sleep (1, 2, 5, 10... ms) before it retries, which between one process's
    #: threads turns every contended commit into milliseconds of idle; waiting here instead
    #: wakes the next writer the moment a commit ends (writers of other processes wait at
    #: the gate, with at most one writer of this one among them)
    writer: threading.Lock = field(default_factory=threading.Lock)
    #: this process's descriptor of the gate (see the module docstring); None until the
    #: first write, -1 if it cannot be opened (SQLite's lock alone then)
    gate: int | None = None


class SQLiteCore:
    """One SQLite file: a connection per thread and process, write transactions, the schema.

    The file is the one the backend opened: a path that later names no file, or another
    file (deleted, or replaced by a copy), is reported by `problem()` and refused by every
    write, and no connection opened afterwards creates a fresh empty database in its place
    (writes acknowledged there would be lost with the node's view of the old one).
    """

    distributed = False

    def __init__(self, url: str, clock: Clock | None = None):
        self.clock: Clock = clock or time.time
        location = parse_url(url)
        self.path, self.synchronous = location.path, location.synchronous
        #: what reopens this file, never creating one (function instances, after fork)
        self.url = location.url("rw")
        self._mode = location.mode
        self._local = threading.local()
        self._process = _ProcessConnections(os.getpid())
        if self._mode == "rwc":
            try:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
            except OSError as e:
                raise BackendUnavailable(f"cannot create the directory of {self.path}: {e}") from e
        try:
            schema.migrate(self._conn())
        except sqlite3.Error as e:
            raise BackendUnavailable(f"cannot create or migrate the schema in {self.path}: {e}") from e
        except schema.SchemaTooNew as e:
            raise ConfigError(f"{self.path}: {e}") from e
        self._mode = "rw"  # created (or found): from now on a missing file is an error
        self._identity = _identity(os.stat(self.path))
        #: the write-ahead log: while this process holds a connection SQLite keeps it, and
        #: every commit since the last checkpoint lives only there
        self._wal = self.path + WAL_SUFFIX
        self._wal_identity: tuple[int, int] | None = None
        self._wal_problem()

    def problem(self) -> str | None:
        """Why the backend cannot be trusted with writes (its file was deleted or replaced
        while open), or None. One stat: cheap enough for every write and heartbeat."""
        try:
            found = _identity(os.stat(self.path))
        except FileNotFoundError:
            return f"the state file {self.path} was deleted while open; restore it or restart the node"
        except OSError as e:
            return f"the state file {self.path} cannot be checked: {e}"
        if found != self._identity:
            return (f"the state file {self.path} was replaced by another file while open; "
                    "restart the node to use the new one")
        return self._wal_problem()

    def _wal_problem(self) -> str | None:
        """The WAL deleted (or replaced) under this process's open connections: the commits
        it held are gone for every later reader, and new ones would be too."""
        process = self._process
        if process.pid != os.getpid() or not process.open:
            return None  # no connection of ours: SQLite itself removes the WAL when the last one closes
        try:
            found = _identity(os.stat(self._wal))
        except FileNotFoundError:
            found = None
        except OSError as e:
            return f"the write-ahead log {self._wal} cannot be checked: {e}"
        if self._wal_identity is None:
            self._wal_identity = found
            return None
        if found != self._wal_identity:
            return (f"the write-ahead log {self._wal} was {'deleted' if found is None else 'replaced'} while open: "
                    "commits since the last checkpoint went with it; restart the node")
        return None

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection in this process, opened on first use, with its lock wait
        capped by the current invocation's deadline (if any)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            return self._connect()
        busy = _milliseconds(cap_wait(BUSY_TIMEOUT))
        if busy != local.busy:  # within an invocation: about once in 10 ms, not on every call
            local.conn.execute(f"PRAGMA busy_timeout = {busy}")
            local.busy = busy
        return local.conn

    def _connect(self) -> sqlite3.Connection:
        pid = os.getpid()
        process = self._process
        if process.pid != pid:  # forked: leave the parent's connections (and lock) alone
            _INHERITED.extend(process.open)
            process = self._process = _ProcessConnections(pid)
        busy = cap_wait(BUSY_TIMEOUT)
        try:
            # autocommit (isolation_level=None): transactions are begun explicitly
            conn = sqlite3.connect(f"file:{quote(self.path)}?mode={self._mode}", uri=True, timeout=busy,
                                   isolation_level=None, check_same_thread=False, factory=_Connection)
            conn.path = self.path
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            # pages read through the OS page cache, not a pread each: every thread has its own
            # connection and page cache, and the observability flushes read what others wrote
            conn.execute("PRAGMA mmap_size = 268435456")
        except (sqlite3.Error, BackendUnavailable) as e:  # the latter from _Connection.execute
            cause = e.__cause__ if isinstance(e, BackendUnavailable) and e.__cause__ else e
            raise BackendUnavailable(f"cannot open SQLite database {self.path}: {_describe(self.path, cause)}") from e
        with process.lock:
            process.open.append(conn)
        self._local.conn, self._local.pid, self._local.busy = conn, pid, _milliseconds(busy)
        return conn

    def close(self) -> None:
        """Close every connection this process opened (the backend is not used afterwards)."""
        process = self._process
        if process.pid != os.getpid():
            return
        with process.lock:
            connections, process.open = process.open, []
        for conn in connections:
            conn.close()
        self._local.__dict__.clear()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed on exit and rolled back on an exception.

        Refused (BackendUnavailable) when the file is no longer the one opened: the commit
        would go to a file no later open finds."""
        conn = self._conn()
        writer = self._process.writer
        if not writer.acquire(timeout=self._local.busy / 1000):
            raise BackendUnavailable(f"cannot use SQLite database {self.path}: database is locked "
                                     f"(another writer of this process held it for {self._local.busy / 1000:g}s)")
        gate = -1
        try:
            gate = self._enter_gate(self._local.busy / 1000)
            conn.execute("BEGIN IMMEDIATE")  # locked past the busy timeout, disk I/O error...
            try:
                if (problem := self.problem()) is not None:
                    raise BackendUnavailable(f"refusing to write: {problem}")
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # some errors have already rolled it back
                    conn.execute("ROLLBACK")
                raise
        finally:
            if gate >= 0:
                fcntl.flock(gate, fcntl.LOCK_UN)
            writer.release()

    def _enter_gate(self, timeout: float) -> int:
        """Wait (at most `timeout` seconds) until no other process's writer is at the gate,
        and hold it: the gate's descriptor, or -1 if this process has none. Called with the
        writer lock held, so one thread of a process opens the gate."""
        process = self._process
        gate = process.gate
        if gate is None:
            try:  # read-only is enough to lock; instances of another user may not write it
                gate = os.open(self.path + GATE_SUFFIX, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o660)
            except OSError:
                gate = -1
            process.gate = gate
        if gate < 0:
            return gate
        wait, deadline = GATE_FIRST_WAIT, None
        while True:
            try:
                fcntl.flock(gate, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return gate
            except BlockingIOError:
                deadline = deadline or time.monotonic() + timeout  # the clock is read only when contended
                if time.monotonic() >= deadline:
                    raise BackendUnavailable(f"cannot use SQLite database {self.path}: database is locked "
                                             f"(another process wrote for over {timeout:g}s)") from None
                time.sleep(wait)
                wait = min(wait * 2, GATE_MOST_WAIT)


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


def _milliseconds(seconds: float) -> int:
    """A busy timeout in whole milliseconds, rounded down to 10 ms so that a deadline moving
    by the microsecond does not reset it on every call."""
    return int(seconds * 100) * 10
