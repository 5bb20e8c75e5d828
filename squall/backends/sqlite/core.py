"""What every SQLite primitive shares: the URL, the connections, write transactions.

Every node thread and every function instance process opens its own connection to the
same file; SQLite's file locks serialise writers (`BEGIN IMMEDIATE`, so a writer waits
for the lock up front instead of failing when it upgrades from reading) and WAL lets
readers run alongside the one writer. A write method returns only after its transaction
has committed to the WAL; with `synchronous=NORMAL` (the default) that survives a killed
process, `?synchronous=full` also survives power loss.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from squall.backends.protocol import Clock
from squall.backends.sqlite import schema
from squall.errors import BackendUnavailable, ConfigError

_SYNCHRONOUS = ("off", "normal", "full", "extra")

#: SQLite connections must not be used, or even closed, in a forked child (its lock
#: state is the parent's). Children park the connections they inherited here so that
#: garbage collection never closes them.
_INHERITED: list[sqlite3.Connection] = []


def parse_url(url: str) -> tuple[str, str]:
    """(absolute database path, synchronous mode) of a `sqlite:///path?synchronous=...` URL."""
    if not url.startswith("sqlite:///"):
        raise ConfigError(f"bad SQLite URL {url!r}: expected sqlite:///relative.db or sqlite:////abs.db")
    path, _, query = url[len("sqlite:///"):].partition("?")
    if not path or path == ":memory:":
        raise ConfigError(f"bad SQLite URL {url!r}: a database file path is required")
    synchronous = "normal"
    for part in filter(None, query.split("&")):
        name, _, value = part.partition("=")
        if name != "synchronous" or value.lower() not in _SYNCHRONOUS:
            raise ConfigError(f"bad SQLite URL option {part!r}: expected synchronous="
                              f"{'|'.join(_SYNCHRONOUS)}")
        synchronous = value.lower()
    # resolved once, so a later chdir (or a forked instance) opens the same file
    return os.path.abspath(path), synchronous


@dataclass
class _ProcessConnections:
    """The connections one process opened; replaced wholesale in a forked child."""

    pid: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    open: list[sqlite3.Connection] = field(default_factory=list)


class SQLiteCore:
    """One SQLite file: a connection per thread and process, write transactions, the schema."""

    distributed = False

    def __init__(self, url: str, clock: Clock | None = None):
        self.url = url
        self.clock: Clock = clock or time.time
        self.path, self.synchronous = parse_url(url)
        self._local = threading.local()
        self._process = _ProcessConnections(os.getpid())
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

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection in this process, opened on first use."""
        local = self._local
        if getattr(local, "pid", None) == os.getpid():
            return local.conn
        return self._connect()

    def _connect(self) -> sqlite3.Connection:
        pid = os.getpid()
        process = self._process
        if process.pid != pid:  # forked: leave the parent's connections (and lock) alone
            _INHERITED.extend(process.open)
            process = self._process = _ProcessConnections(pid)
        try:
            # autocommit (isolation_level=None): transactions are begun explicitly
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        except sqlite3.Error as e:
            raise BackendUnavailable(f"cannot open SQLite database {self.path}: {e}") from e
        with process.lock:
            process.open.append(conn)
        self._local.conn, self._local.pid = conn, pid
        return conn

    def problem(self) -> str | None:
        """Why the backend cannot serve now (None: it can)."""
        return None

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
        """One write transaction, committed on exit and rolled back on an exception."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:  # locked past busy_timeout, disk I/O error...
            raise BackendUnavailable(f"cannot write to SQLite database {self.path}: {e}") from e
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # some errors have already rolled it back
                conn.execute("ROLLBACK")
            raise
