"""The embedded backend: one SQLite file in WAL mode.

Every node thread and every function instance process opens its own connection to the
same file; SQLite's file locks serialise writers (`BEGIN IMMEDIATE`, so a writer waits
for the lock up front instead of failing when it upgrades from reading) and WAL lets
readers run alongside the one writer. A write method returns only after its transaction
has committed to the WAL; with `synchronous=NORMAL` (the default) that survives a killed
process, `?synchronous=full` also survives power loss.

Lists of ids and receipts are passed as one JSON array and expanded with `json_each`, so
a batch is one statement whatever its size (no limit on bound variables).

A message receipt is "<seq>.<random hex>": the row's key and a random token drawn at each
receive. Lookups by receipt are then primary-key lookups, and claiming needs no index on
a random column (maintaining one was most of the cost of a claim). Statements that look a
row up by key write `+queue` so the planner does not prefer the queue's visibility index.
Needs SQLite 3.35 or later (RETURNING).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from squall.backends.base import (
    Backend, Clock, Item, Message, NodeInfo, QueueConfig, QueueStats, StreamRecord, Timer, change_record,
    change_stream, shard_for,
)
from squall.errors import BackendUnavailable, ConditionFailed, ConfigError

_SYNCHRONOUS = ("off", "normal", "full", "extra")

#: a fresh random non-negative 63-bit token per row, drawn by the statement that claims it
_RANDOM_TOKEN = "(random() & 0x7FFFFFFFFFFFFFFF)"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- send order; never reused
    id TEXT NOT NULL,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    attributes TEXT NOT NULL,
    sent_at REAL NOT NULL,
    visible_at REAL NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt INTEGER,  -- the random token of the current receipt; NULL until received
    first_received_at REAL
);
CREATE INDEX IF NOT EXISTS messages_visible ON messages (queue, visible_at, seq);

CREATE TABLE IF NOT EXISTS items (
    tbl TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (tbl, key)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS streams (
    name TEXT PRIMARY KEY,
    shards INTEGER NOT NULL
) WITHOUT ROWID;

-- the last seq handed out per shard, kept apart from the records so trimming a shard
-- empty never lets a seq be reused under a consumer's checkpoint
CREATE TABLE IF NOT EXISTS stream_shards (
    stream TEXT NOT NULL,
    shard INTEGER NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (stream, shard)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS stream_records (
    stream TEXT NOT NULL,
    shard INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    partition_key TEXT NOT NULL,
    data TEXT NOT NULL,
    ts REAL NOT NULL,
    PRIMARY KEY (stream, shard, seq)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS checkpoints (
    stream TEXT NOT NULL,
    consumer TEXT NOT NULL,
    shard INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (stream, consumer, shard)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS timers (
    grp TEXT NOT NULL,
    key TEXT NOT NULL,
    due REAL NOT NULL,
    payload TEXT NOT NULL,
    visible_at REAL NOT NULL,  -- due, or the end of the lease of the last claim
    receipt TEXT,
    PRIMARY KEY (grp, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS timers_visible ON timers (grp, visible_at);

CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS slots (
    key TEXT NOT NULL,
    token TEXT NOT NULL,
    holder TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (key, token)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS nodes (
    node_id TEXT PRIMARY KEY,
    info TEXT NOT NULL,
    seen REAL NOT NULL,
    expires REAL NOT NULL
) WITHOUT ROWID;
"""

_MESSAGE_COLUMNS = "seq, id, queue, body, attributes, receipt, receive_count, sent_at, first_received_at"

#: SQLite connections must not be used, or even closed, in a forked child (its lock
#: state is the parent's). Children park the connections they inherited here so that
#: garbage collection never closes them.
_INHERITED: list[sqlite3.Connection] = []


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _new_id() -> str:
    return uuid.uuid4().hex


def _receipt(seq: int, token: int) -> str:
    return f"{seq}.{token:x}"


def _parse_receipt(receipt: str) -> tuple[int, int] | None:
    """(seq, token) of a receipt; None if it is not one of ours (so it matches nothing)."""
    seq, _, token = receipt.partition(".")
    try:
        key = int(seq), int(token, 16)
    except ValueError:
        return None
    return key if all(0 <= part < 1 << 63 for part in key) else None  # SQLite integers are 64-bit


def _prefix_end(prefix: str) -> str | None:
    """The least string greater than every string starting with `prefix` (None: no bound).

    UTF-8 byte order, which SQLite's BINARY collation uses, is code point order, so
    bumping the last code point bounds the prefix's key range and lets the scan seek.
    """
    while prefix:
        last = ord(prefix[-1]) + 1
        if 0xD800 <= last <= 0xDFFF:  # surrogates cannot appear in stored text
            last = 0xE000
        if last <= 0x10FFFF:
            return prefix[:-1] + chr(last)
        prefix = prefix[:-1]
    return None


def _parse_url(url: str) -> tuple[str, str]:
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


class SQLiteBackend(Backend):
    """The backend protocol on one SQLite file. See the module docstring."""

    def __init__(self, url: str, clock: Clock | None = None):
        super().__init__(url, clock)
        self.path, self.synchronous = _parse_url(url)
        self._local = threading.local()
        self._process = _ProcessConnections(os.getpid())
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        except OSError as e:
            raise BackendUnavailable(f"cannot create the directory of {self.path}: {e}") from e
        # IF NOT EXISTS inside one IMMEDIATE transaction: processes opening a new file
        # together take turns, and all but the first find the schema in place.
        # (executescript commits any open transaction first, so the script has its own.)
        conn = self._conn()
        try:
            conn.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")
        except sqlite3.Error as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise BackendUnavailable(f"cannot create the schema in {self.path}: {e}") from e

    # ---- connections --------------------------------------------------------------

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

    # ---- queues -------------------------------------------------------------------

    def queue_declare(self, name: str, config: QueueConfig) -> None:
        with self._write() as conn:
            conn.execute("INSERT INTO queues (name, config) VALUES (?, ?) "
                         "ON CONFLICT (name) DO UPDATE SET config = excluded.config",
                         (name, config.to_json()))

    def queue_config(self, name: str) -> QueueConfig | None:
        row = self._conn().execute("SELECT config FROM queues WHERE name = ?", (name,)).fetchone()
        return QueueConfig.from_json(name, row[0]) if row else None

    def queues_next_visible(self, queues: list[str]) -> dict[str, float]:
        rows = self._conn().execute(
            "SELECT queue, min(visible_at) FROM messages WHERE queue IN (SELECT value FROM json_each(?)) "
            "GROUP BY queue", (json.dumps(list(queues)),))
        return dict(rows.fetchall())

    def queue_names(self) -> list[str]:
        return [name for (name,) in self._conn().execute("SELECT name FROM queues ORDER BY name")]

    def enqueue(self, queue: str, body: str, attributes: dict[str, Any] | None = None,
                delay: float = 0.0) -> str:
        return self.enqueue_batch(queue, [(body, attributes, delay)])[0]

    def enqueue_batch(self, queue: str, entries: list[tuple[str, dict[str, Any] | None, float]]) -> list[str]:
        if not entries:
            return []
        now = self.clock()
        ids = [_new_id() for _ in entries]
        rows = [(message_id, queue, body, _dumps(attributes or {}), now, now + max(delay, 0.0))
                for message_id, (body, attributes, delay) in zip(ids, entries)]
        with self._write() as conn:
            conn.executemany("INSERT INTO messages (id, queue, body, attributes, sent_at, visible_at) "
                             "VALUES (?, ?, ?, ?, ?, ?)", rows)
        return ids

    def claim(self, queue: str, max_messages: int, visibility_timeout: float, *,
              max_receives: int | None = None, dlq: str | None = None) -> list[Message]:
        now = self.clock()
        claimed: list[Message] = []
        # an idle queue is polled often: answer "nothing visible" without taking the write lock
        if self._conn().execute("SELECT 1 FROM messages WHERE queue = ? AND visible_at <= ? LIMIT 1",
                                (queue, now)).fetchone() is None:
            return claimed
        with self._write() as conn:
            # each round claims or dead-letters every row it selects, so it ends as soon
            # as the batch is full or nothing visible is left
            while len(claimed) < max_messages:
                candidates = conn.execute(
                    "SELECT seq, receive_count FROM messages WHERE queue = ? AND visible_at <= ? "
                    "ORDER BY visible_at, seq LIMIT ?",
                    (queue, now, max_messages - len(claimed))).fetchall()
                if not candidates:
                    break
                if max_receives is not None and dlq is not None:
                    if exhausted := [seq for seq, count in candidates if count >= max_receives]:
                        self._move(conn, exhausted, dlq, now)
                    candidates = [(seq, count) for seq, count in candidates if count < max_receives]
                if not candidates:
                    continue
                order = {seq: rank for rank, (seq, _) in enumerate(candidates)}
                rows = conn.execute(
                    f"UPDATE messages SET visible_at = ?, receive_count = receive_count + 1, "
                    f"receipt = {_RANDOM_TOKEN}, first_received_at = coalesce(first_received_at, ?) "
                    f"WHERE seq IN (SELECT value FROM json_each(?)) RETURNING {_MESSAGE_COLUMNS}",
                    (now + visibility_timeout, now, json.dumps(list(order)))).fetchall()
                rows.sort(key=lambda row: order[row[0]])  # RETURNING order is unspecified
                claimed.extend(map(self._message, rows))
        return claimed

    def ack(self, queue: str, receipts: list[str]) -> int:
        keys = [key for key in map(_parse_receipt, receipts) if key is not None]
        if not keys:
            return 0
        with self._write() as conn:
            return conn.execute(
                "DELETE FROM messages WHERE (seq, receipt) IN "
                "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)) "
                "AND +queue = ?", (json.dumps(keys), queue)).rowcount

    def release(self, queue: str, receipt: str, delay: float = 0.0) -> bool:
        if (key := _parse_receipt(receipt)) is None:
            return False
        visible_at = self.clock() + max(delay, 0.0)
        with self._write() as conn:
            return conn.execute("UPDATE messages SET visible_at = ? WHERE seq = ? AND receipt = ? AND +queue = ?",
                                (visible_at, *key, queue)).rowcount == 1

    def dead_letter(self, queue: str, receipt: str, dlq: str) -> bool:
        if (key := _parse_receipt(receipt)) is None:
            return False
        now = self.clock()
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM messages WHERE seq = ? AND receipt = ? AND +queue = ?",
                            (*key, queue)).fetchone() is None:
                return False
            self._move(conn, [key[0]], dlq, now)
            return True

    def redrive(self, source: str, target: str, limit: int | None = None) -> int:
        now = self.clock()
        with self._write() as conn:
            seqs = [seq for (seq,) in conn.execute(
                "SELECT seq FROM messages WHERE queue = ? ORDER BY seq LIMIT ?",
                (source, -1 if limit is None else limit))]
            self._move(conn, seqs, target, now)
        return len(seqs)

    @staticmethod
    def _move(conn: sqlite3.Connection, seqs: list[int], queue: str, now: float) -> None:
        """Move messages to another queue as never received, visible now (DLQ and redrive).

        They keep id, body, attributes, sent time and their place in send order."""
        conn.execute("UPDATE messages SET queue = ?, visible_at = ?, receive_count = 0, receipt = NULL, "
                     "first_received_at = NULL WHERE seq IN (SELECT value FROM json_each(?))",
                     (queue, now, json.dumps(seqs)))

    def queue_stats(self, queue: str) -> QueueStats:
        now = self.clock()
        visible, in_flight, delayed = self._conn().execute(
            "SELECT count(*) FILTER (WHERE visible_at <= :now), "
            "count(*) FILTER (WHERE visible_at > :now AND receive_count > 0), "
            "count(*) FILTER (WHERE visible_at > :now AND receive_count = 0) "
            "FROM messages WHERE queue = :queue", {"now": now, "queue": queue}).fetchone()
        return QueueStats(visible=visible, in_flight=in_flight, delayed=delayed)

    def peek(self, queue: str, limit: int = 10) -> list[Message]:
        rows = self._conn().execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE queue = ? ORDER BY seq LIMIT ?", (queue, limit))
        return [self._message(row, peeked=True) for row in rows]

    def purge(self, queue: str) -> int:
        with self._write() as conn:
            return conn.execute("DELETE FROM messages WHERE queue = ?", (queue,)).rowcount

    @staticmethod
    def _message(row: tuple, peeked: bool = False) -> Message:
        seq, message_id, queue, body, attributes, token, receive_count, sent_at, first_received = row
        return Message(id=message_id, queue=queue, body=body, attributes=json.loads(attributes),
                       receipt="" if peeked else _receipt(seq, token), receive_count=receive_count,
                       sent_at=sent_at, first_received_at=first_received or 0.0)

    # ---- tables -------------------------------------------------------------------

    def table_get(self, table: str, key: str) -> Item | None:
        return self._item(self._conn(), table, key)

    def table_put(self, table: str, key: str, value: Any, *, if_version: int | None = None,
                  if_absent: bool = False, feed: bool = False) -> Item:
        data = _dumps(value)
        now = self.clock()
        with self._write() as conn:
            old = self._item(conn, table, key)
            if if_absent and old is not None:
                raise ConditionFailed(f"table {table!r} key {key!r}: expected no item, "
                                      f"found version {old.version}")
            self._check_version(table, key, old, if_version)
            new = Item(key, json.loads(data), old.version + 1 if old else 1)
            conn.execute("INSERT INTO items (tbl, key, value, version) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value, "
                         "version = excluded.version", (table, key, data, new.version))
            if feed:
                record = change_record("MODIFY" if old else "INSERT", key, old, new, now)
                self._append(conn, change_stream(table), key, record, now)
        return new

    def table_delete(self, table: str, key: str, *, if_version: int | None = None,
                     feed: bool = False) -> Item | None:
        now = self.clock()
        with self._write() as conn:
            old = self._item(conn, table, key)
            self._check_version(table, key, old, if_version)
            if old is None:
                return None
            conn.execute("DELETE FROM items WHERE tbl = ? AND key = ?", (table, key))
            if feed:
                self._append(conn, change_stream(table), key, change_record("REMOVE", key, old, None, now), now)
        return old

    def table_scan(self, table: str, *, prefix: str = "", start_after: str | None = None,
                   limit: int = 1000) -> list[Item]:
        sql = "SELECT key, value, version FROM items WHERE tbl = ? AND key >= ?"
        params: list[Any] = [table, prefix]
        if (end := _prefix_end(prefix)) is not None:
            sql += " AND key < ?"
            params.append(end)
        if start_after is not None:
            sql += " AND key > ?"
            params.append(start_after)
        rows = self._conn().execute(sql + " ORDER BY key LIMIT ?", [*params, limit])
        return [Item(key, json.loads(value), version) for key, value, version in rows]

    @staticmethod
    def _item(conn: sqlite3.Connection, table: str, key: str) -> Item | None:
        row = conn.execute("SELECT value, version FROM items WHERE tbl = ? AND key = ?", (table, key)).fetchone()
        return Item(key, json.loads(row[0]), row[1]) if row else None

    @staticmethod
    def _check_version(table: str, key: str, current: Item | None, if_version: int | None) -> None:
        if if_version is not None and (current is None or current.version != if_version):
            found = f"version {current.version}" if current else "no item"
            raise ConditionFailed(f"table {table!r} key {key!r}: expected version {if_version}, found {found}")

    # ---- streams ------------------------------------------------------------------

    def stream_create(self, stream: str, shards: int) -> int:
        if shards < 1:
            raise ConfigError(f"stream {stream!r}: shard count must be at least 1, got {shards}")
        with self._write() as conn:
            return self._create_stream(conn, stream, shards)

    @staticmethod
    def _create_stream(conn: sqlite3.Connection, stream: str, shards: int) -> int:
        """Create the stream unless it exists; its shard count either way."""
        if conn.execute("INSERT OR IGNORE INTO streams (name, shards) VALUES (?, ?)", (stream, shards)).rowcount:
            conn.executemany("INSERT INTO stream_shards (stream, shard) VALUES (?, ?)",
                             [(stream, shard) for shard in range(shards)])
            return shards
        return conn.execute("SELECT shards FROM streams WHERE name = ?", (stream,)).fetchone()[0]

    def stream_names(self) -> list[str]:
        return [name for (name,) in self._conn().execute("SELECT name FROM streams ORDER BY name")]

    def stream_shards(self, stream: str) -> int:
        row = self._conn().execute("SELECT shards FROM streams WHERE name = ?", (stream,)).fetchone()
        return row[0] if row else 0

    def stream_append(self, stream: str, partition_key: str, data: str) -> tuple[int, int]:
        now = self.clock()
        with self._write() as conn:
            return self._append(conn, stream, partition_key, data, now)

    def _append(self, conn: sqlite3.Connection, stream: str, partition_key: str, data: str,
                now: float) -> tuple[int, int]:
        """Append inside the caller's transaction (a table write and its change record commit together)."""
        shard = shard_for(partition_key, self._create_stream(conn, stream, 1))
        (seq,) = conn.execute("UPDATE stream_shards SET last_seq = last_seq + 1 WHERE stream = ? AND shard = ? "
                              "RETURNING last_seq", (stream, shard)).fetchone()
        conn.execute("INSERT INTO stream_records (stream, shard, seq, partition_key, data, ts) "
                     "VALUES (?, ?, ?, ?, ?, ?)", (stream, shard, seq, partition_key, data, now))
        return shard, seq

    def stream_read(self, stream: str, shard: int, after_seq: int, limit: int = 100) -> list[StreamRecord]:
        rows = self._conn().execute(
            "SELECT seq, partition_key, data, ts FROM stream_records WHERE stream = ? AND shard = ? AND seq > ? "
            "ORDER BY seq LIMIT ?", (stream, shard, after_seq, limit))
        return [StreamRecord(stream, shard, seq, key, data, ts) for seq, key, data, ts in rows]

    def stream_trim(self, stream: str, before: float) -> int:
        with self._write() as conn:
            return conn.execute("DELETE FROM stream_records WHERE stream = ? AND ts < ?", (stream, before)).rowcount

    def checkpoint_get(self, stream: str, consumer: str, shard: int) -> int:
        row = self._conn().execute("SELECT seq FROM checkpoints WHERE stream = ? AND consumer = ? AND shard = ?",
                                   (stream, consumer, shard)).fetchone()
        return row[0] if row else 0

    def checkpoint_set(self, stream: str, consumer: str, shard: int, seq: int) -> None:
        with self._write() as conn:
            conn.execute("INSERT INTO checkpoints (stream, consumer, shard, seq) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (stream, consumer, shard) DO UPDATE SET seq = excluded.seq",
                         (stream, consumer, shard, seq))

    # ---- timers -------------------------------------------------------------------

    def timer_set(self, group: str, key: str, due: float, payload: str) -> None:
        # a replaced timer is a new timer: due again at its own time, and the receipt of
        # any claim of the old one no longer matches
        with self._write() as conn:
            conn.execute("INSERT INTO timers (grp, key, due, payload, visible_at) VALUES (?, ?, ?, ?, ?) "
                         "ON CONFLICT (grp, key) DO UPDATE SET due = excluded.due, payload = excluded.payload, "
                         "visible_at = excluded.visible_at, receipt = NULL", (group, key, due, payload, due))

    def timer_cancel(self, group: str, key: str) -> bool:
        with self._write() as conn:
            return conn.execute("DELETE FROM timers WHERE grp = ? AND key = ?", (group, key)).rowcount == 1

    def timers_claim(self, group: str, limit: int, lease: float) -> list[Timer]:
        now = self.clock()
        with self._write() as conn:
            rows = conn.execute(
                "UPDATE timers SET visible_at = ?, receipt = lower(hex(randomblob(16))) WHERE grp = ? AND key IN "
                "(SELECT key FROM timers WHERE grp = ? AND visible_at <= ? ORDER BY visible_at, key LIMIT ?) "
                "RETURNING key, due, payload, receipt",
                (now + lease, group, group, now, limit)).fetchall()
        return [Timer(group, key, due, payload, receipt) for key, due, payload, receipt in sorted(
            rows, key=lambda row: (row[1], row[0]))]

    def timer_ack(self, group: str, key: str, receipt: str) -> bool:
        with self._write() as conn:
            return conn.execute("DELETE FROM timers WHERE grp = ? AND key = ? AND receipt = ?",
                                (group, key, receipt)).rowcount == 1

    # ---- leases -------------------------------------------------------------------

    def lease_acquire(self, name: str, holder: str, ttl: float) -> bool:
        now = self.clock()
        with self._write() as conn:
            # the upsert's WHERE leaves a live lease of another holder untouched (0 rows)
            return conn.execute(
                "INSERT INTO leases (name, holder, expires) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires "
                "WHERE leases.holder = excluded.holder OR leases.expires <= ?",
                (name, holder, now + ttl, now)).rowcount == 1

    def lease_release(self, name: str, holder: str) -> bool:
        now = self.clock()
        with self._write() as conn:
            return conn.execute("DELETE FROM leases WHERE name = ? AND holder = ? AND expires > ?",
                                (name, holder, now)).rowcount == 1

    def lease_holder(self, name: str) -> str | None:
        row = self._conn().execute("SELECT holder FROM leases WHERE name = ? AND expires > ?",
                                   (name, self.clock())).fetchone()
        return row[0] if row else None

    # ---- slots --------------------------------------------------------------------

    def slot_acquire(self, key: str, limit: int, holder: str, ttl: float) -> str | None:
        now = self.clock()
        token = _new_id()
        with self._write() as conn:
            conn.execute("DELETE FROM slots WHERE key = ? AND expires <= ?", (key, now))
            (held,) = conn.execute("SELECT count(*) FROM slots WHERE key = ?", (key,)).fetchone()
            if held >= limit:
                return None
            conn.execute("INSERT INTO slots (key, token, holder, expires) VALUES (?, ?, ?, ?)",
                         (key, token, holder, now + ttl))
        return token

    def slot_release(self, key: str, token: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM slots WHERE key = ? AND token = ?", (key, token))

    def slot_count(self, key: str) -> int:
        (held,) = self._conn().execute("SELECT count(*) FROM slots WHERE key = ? AND expires > ?",
                                       (key, self.clock())).fetchone()
        return held

    # ---- nodes --------------------------------------------------------------------

    def node_heartbeat(self, node_id: str, info: dict[str, Any], ttl: float) -> None:
        now = self.clock()
        with self._write() as conn:
            # nodes that died without deregistering are forgotten by the next heartbeat
            conn.execute("DELETE FROM nodes WHERE expires <= ?", (now,))
            conn.execute("INSERT INTO nodes (node_id, info, seen, expires) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (node_id) DO UPDATE SET info = excluded.info, seen = excluded.seen, "
                         "expires = excluded.expires", (node_id, _dumps(info), now, now + ttl))

    def node_remove(self, node_id: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM nodes WHERE node_id = ?", (node_id,))

    def nodes(self) -> list[NodeInfo]:
        rows = self._conn().execute("SELECT node_id, info, seen FROM nodes WHERE expires > ? ORDER BY node_id",
                                    (self.clock(),))
        return [NodeInfo(node_id, json.loads(info), seen) for node_id, info, seen in rows]
