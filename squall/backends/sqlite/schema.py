"""The SQLite schema, versioned: `PRAGMA user_version` counts the migrations applied.

`MIGRATIONS[n]` takes a database from version n to n + 1; a new file runs them all, an old
one the ones it lacks, inside one `BEGIN IMMEDIATE` transaction, so processes opening a
file together take turns and all but the first find nothing left to do. A file of a newer
version than this code knows is refused rather than misread.

To change the schema, append a migration (never edit a released one): statements that
take every file of the previous version, whatever it holds, to the new one.

Version 1 is the schema of the first release, which did not set user_version: its files
are at version 0 with every table in place, and the `IF NOT EXISTS` of migration 1 adopts
them unchanged.
"""

from __future__ import annotations

import sqlite3

Migration = tuple[str, ...]

_V1: Migration = (
    """CREATE TABLE IF NOT EXISTS queues (
        name TEXT PRIMARY KEY,
        config TEXT NOT NULL  -- QueueConfig.to_json()
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- order of entry into its queue; never reused
        id TEXT NOT NULL,
        queue TEXT NOT NULL,
        body TEXT NOT NULL,
        attributes TEXT NOT NULL,
        sent_at REAL NOT NULL,
        visible_at REAL NOT NULL,
        receive_count INTEGER NOT NULL DEFAULT 0,
        receipt INTEGER,  -- the random token of the current receipt; NULL until received
        first_received_at REAL
    )""",
    "CREATE INDEX IF NOT EXISTS messages_visible ON messages (queue, visible_at, seq)",
    """CREATE TABLE IF NOT EXISTS items (
        tbl TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        version INTEGER NOT NULL,
        PRIMARY KEY (tbl, key)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS streams (
        name TEXT PRIMARY KEY,
        shards INTEGER NOT NULL
    ) WITHOUT ROWID""",
    # the last seq handed out per shard, kept apart from the records so trimming a shard
    # empty never lets a seq be reused under a consumer's checkpoint
    """CREATE TABLE IF NOT EXISTS stream_shards (
        stream TEXT NOT NULL,
        shard INTEGER NOT NULL,
        last_seq INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (stream, shard)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS stream_records (
        stream TEXT NOT NULL,
        shard INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        partition_key TEXT NOT NULL,
        data TEXT NOT NULL,
        ts REAL NOT NULL,
        PRIMARY KEY (stream, shard, seq)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS checkpoints (
        stream TEXT NOT NULL,
        consumer TEXT NOT NULL,
        shard INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (stream, consumer, shard)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS timers (
        grp TEXT NOT NULL,
        key TEXT NOT NULL,
        due REAL NOT NULL,
        payload TEXT NOT NULL,
        visible_at REAL NOT NULL,  -- due, or the end of the lease of the last claim
        receipt TEXT,
        PRIMARY KEY (grp, key)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS timers_visible ON timers (grp, visible_at)",
    """CREATE TABLE IF NOT EXISTS leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires REAL NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS slots (
        key TEXT NOT NULL,
        token TEXT NOT NULL,
        holder TEXT NOT NULL,
        expires REAL NOT NULL,
        PRIMARY KEY (key, token)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS nodes (
        node_id TEXT PRIMARY KEY,
        info TEXT NOT NULL,
        seen REAL NOT NULL,
        expires REAL NOT NULL
    ) WITHOUT ROWID""",
)

#: FIFO queues: a message's group, deduplication id and sequence number, and the
#: deduplication ids each FIFO queue accepted within the window
_V2_FIFO: Migration = (
    "ALTER TABLE messages ADD COLUMN grp TEXT",  # MessageGroupId; NULL on a standard queue
    "ALTER TABLE messages ADD COLUMN dedup_id TEXT",
    # the SequenceNumber given at the send: NULL while the message is in the row it was sent
    # in (it is then that row's seq); set when a move gives it a new row
    "ALTER TABLE messages ADD COLUMN sequence INTEGER",
    "CREATE INDEX messages_group ON messages (queue, grp, seq) WHERE grp IS NOT NULL",
    """CREATE TABLE dedup (
        queue TEXT NOT NULL,
        dedup_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        expires REAL NOT NULL,
        PRIMARY KEY (queue, dedup_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX dedup_expiry ON dedup (queue, expires)",
)

#: FIFO topics: per publish scope (a topic), the deduplication ids it accepted within the
#: window with the publish's message id and sequence number, and its last sequence number
_V3_FIFO_TOPICS: Migration = (
    """CREATE TABLE publish_dedup (
        scope TEXT NOT NULL,
        dedup_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        sequence TEXT NOT NULL,
        expires REAL NOT NULL,
        PRIMARY KEY (scope, dedup_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX publish_dedup_expiry ON publish_dedup (scope, expires)",
    "CREATE TABLE publish_sequences (scope TEXT PRIMARY KEY, last INTEGER NOT NULL) WITHOUT ROWID",
)

#: in order; the schema version of a database is how many of these it has had
MIGRATIONS: tuple[Migration, ...] = (_V1, _V2_FIFO, _V3_FIFO_TOPICS)
LATEST = len(MIGRATIONS)


class SchemaTooNew(Exception):
    """The database was written by a newer Squall than this one."""


def version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the database to LATEST; a read and nothing else when it is there already."""
    if _check(version(conn)) == LATEST:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for number in range(_check(version(conn)), LATEST):  # read again under the write lock
            for statement in MIGRATIONS[number]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number + 1}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _check(found: int) -> int:
    if found > LATEST:
        raise SchemaTooNew(f"schema version {found} was written by a newer Squall (this one knows "
                           f"versions up to {LATEST}): upgrade Squall to open it")
    return found
