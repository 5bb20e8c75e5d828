"""Streams on SQLite: shard registry, per-shard sequence counters, records, checkpoints."""

from __future__ import annotations

import sqlite3

from squall.backends import checks
from squall.backends.protocol import StreamRecord, shard_for
from squall.backends.sqlite.core import SQLiteCore


class SQLiteStreams(SQLiteCore):
    """The `Streams` protocol on SQLite."""

    def stream_create(self, stream: str, shards: int) -> int:
        checks.shard_count(stream, shards)
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
        with self._write() as conn:
            return self._append(conn, stream, partition_key, data, self.clock())

    def _append(self, conn: sqlite3.Connection, stream: str, partition_key: str, data: str,
                now: float) -> tuple[int, int]:
        """Append inside the caller's transaction, so other primitives can commit with it."""
        shard = shard_for(partition_key, self._create_stream(conn, stream, 1))
        (seq,) = conn.execute("UPDATE stream_shards SET last_seq = last_seq + 1 WHERE stream = ? AND shard = ? "
                              "RETURNING last_seq", (stream, shard)).fetchone()
        conn.execute("INSERT INTO stream_records (stream, shard, seq, partition_key, data, ts) "
                     "VALUES (?, ?, ?, ?, ?, ?)", (stream, shard, seq, partition_key, data, now))
        return shard, seq

    def stream_read(self, stream: str, shard: int, after_seq: int, limit: int = 100) -> list[StreamRecord]:
        checks.count("limit", limit)
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
        checks.count("seq", seq)
        with self._write() as conn:
            conn.execute("INSERT INTO checkpoints (stream, consumer, shard, seq) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (stream, consumer, shard) DO UPDATE SET seq = excluded.seq",
                         (stream, consumer, shard, seq))
