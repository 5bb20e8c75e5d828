"""Queues on SQLite: one `messages` table for every queue, and the `queues` registry.

A message receipt is "<seq>.<random hex>": the row's key and a random token drawn at each
receive. Lookups by receipt are then primary-key lookups, and claiming needs no index on
a random column (maintaining one was most of the cost of a claim). Statements that look a
row up by key write `+queue` so the planner does not prefer the queue's visibility index.

Lists of ids and receipts are passed as one JSON array and expanded with `json_each`, so
a batch is one statement whatever its size (no limit on bound variables). Needs SQLite
3.35 or later (RETURNING).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from squall.backends import checks
from squall.backends.fifo import DEDUP_WINDOW, SEQUENCE_WIDTH, FifoEntry, PublishOnce, is_fifo, sequence_number
from squall.backends.ids import new_message_id
from squall.backends.protocol import (
    Consumed,
    DeadLetter,
    FanOut,
    FanOutEntry,
    Message,
    QueueConfig,
    QueueStats,
    Release,
    Watch,
)
from squall.backends.sqlite.core import SQLiteCore
from squall.backends.sqlite.watch import FileWatch

#: a fresh random non-negative 63-bit token per row, drawn by the statement that claims it
_RANDOM_TOKEN = "(random() & 0x7FFFFFFFFFFFFFFF)"

_MESSAGE_COLUMNS = ("seq, id, queue, body, attributes, receipt, receive_count, sent_at, first_received_at, "
                    "grp, dedup_id, coalesce(sequence, seq)")

#: each group of a FIFO queue with its head's visible_at and seq: the groups are walked
#: through the (queue, grp, seq) index one seek each, not by reading every message
_FIFO_HEADS = """
WITH RECURSIVE groups(grp) AS (
    SELECT (SELECT min(grp) FROM messages WHERE queue = :queue AND grp IS NOT NULL)
    UNION ALL
    SELECT (SELECT min(grp) FROM messages WHERE queue = :queue AND grp > groups.grp) FROM groups
    WHERE groups.grp IS NOT NULL)
SELECT groups.grp, head.visible_at, head.seq FROM groups, messages AS head
WHERE groups.grp IS NOT NULL AND head.seq = (
    SELECT seq FROM messages WHERE queue = :queue AND grp = groups.grp ORDER BY seq LIMIT 1)
"""


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


def _message(row: tuple, peeked: bool = False) -> Message:
    seq, message_id, queue, body, attributes, token, receive_count, sent_at, first_received, group, dedup_id, \
        sequence = row
    return Message(id=message_id, queue=queue, body=body, attributes=json.loads(attributes),
                   receipt="" if peeked else _receipt(seq, token), receive_count=receive_count,
                   sent_at=sent_at, first_received_at=first_received or 0.0, group=group, dedup_id=dedup_id,
                   sequence=None if group is None else sequence_number(sequence))


def _move(conn: sqlite3.Connection, seqs: list[int], queue: str, now: float, added: str | None = None) -> None:
    """Move messages to the tail of another queue, in send order, as never received and
    visible now (dead-letter and redrive). They keep id, body, attributes (plus `added`, a
    JSON object, merged in) and sent time; their new rows have new seqs, so receipts of
    the old ones go stale."""
    chosen = json.dumps(seqs)
    fifo = "grp, dedup_id, CASE WHEN grp IS NULL THEN NULL ELSE coalesce(sequence, seq) END"
    conn.execute("INSERT INTO messages (id, queue, body, attributes, sent_at, visible_at, grp, dedup_id, sequence) "
                 f"SELECT id, ?, body, {'attributes' if added is None else 'json_patch(attributes, ?)'}, sent_at, ?, "
                 f"{fifo} FROM messages WHERE seq IN (SELECT value FROM json_each(?)) ORDER BY seq",
                 (queue, *(() if added is None else (added,)), now, chosen))
    conn.execute("DELETE FROM messages WHERE seq IN (SELECT value FROM json_each(?))", (chosen,))


def insert_messages(conn: sqlite3.Connection, queue: str, rows: Sequence[tuple[str, str, float]],
                    now: float) -> list[str]:
    """Append (body, attributes JSON, delay) rows to a queue inside the caller's transaction
    (`enqueue_batch`, and the operations that enqueue as part of something else). Their ids."""
    ids = [new_message_id() for _ in rows]
    conn.executemany("INSERT INTO messages (id, queue, body, attributes, sent_at, visible_at) "
                     "VALUES (?, ?, ?, ?, ?, ?)",
                     [(message_id, queue, body, attributes, now, now + delay)
                      for message_id, (body, attributes, delay) in zip(ids, rows, strict=True)])
    return ids


def insert_fifo(conn: sqlite3.Connection, queue: str, rows: Sequence[tuple[str, str, str, str]], now: float,
                delay: float) -> list[str]:
    """Append (body, attributes JSON, group, deduplication id) rows to a FIFO queue inside
    the caller's transaction (`enqueue_fifo`, `fan_out`): a deduplication id the queue
    accepted within the window stores nothing and answers the original's id. Their ids."""
    ids: list[str] = []
    conn.execute("DELETE FROM dedup WHERE queue = ? AND expires <= ?", (queue, now))
    for body, attributes, group, dedup_id in rows:
        original = conn.execute("SELECT message_id FROM dedup WHERE queue = ? AND dedup_id = ?",
                                (queue, dedup_id)).fetchone()
        if original is not None:
            ids.append(original[0])
            continue
        ids.append(new_message_id())
        conn.execute("INSERT INTO messages (id, queue, body, attributes, sent_at, visible_at, grp, dedup_id) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (ids[-1], queue, body, attributes, now, now + delay, group, dedup_id))
        conn.execute("INSERT INTO dedup (queue, dedup_id, message_id, expires) VALUES (?, ?, ?, ?)",
                     (queue, dedup_id, ids[-1], now + DEDUP_WINDOW))
    return ids


def _with_sequence(entry: FanOutEntry, sequence: str | None) -> str:
    """A fan-out entry's body with the publish's sequence number written in at `sequence_at`."""
    at = entry.sequence_at
    if at is None or sequence is None:
        return entry.body
    return entry.body[:at] + sequence + entry.body[at + SEQUENCE_WIDTH:]


def _consume(conn: sqlite3.Connection, queue: str, receipts: Mapping[str, int]) -> set[str]:
    """Delete the messages of `queue` whose receipt is current, inside the caller's
    transaction (a fan-out replacing what it claimed). The receipts that were current."""
    keys: dict[str, tuple[int, int]] = {}
    seen: set[tuple[int, int]] = set()
    for receipt in receipts:
        key = _parse_receipt(receipt)
        if key is not None and key not in seen:  # two spellings of one receipt count once
            seen.add(key)
            keys[receipt] = key
    if not keys:
        return set()
    deleted = set(conn.execute(
        "DELETE FROM messages WHERE (seq, receipt) IN "
        "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)) "
        "AND +queue = ? RETURNING seq, receipt", (json.dumps(list(keys.values())), queue)))
    return {receipt for receipt, key in keys.items() if key in deleted}


class SQLiteQueues(SQLiteCore):
    """The `Queues` protocol on SQLite."""

    def queue_declare(self, name: str, config: QueueConfig) -> None:
        with self._write() as conn:
            conn.execute("INSERT INTO queues (name, config) VALUES (?, ?) "
                         "ON CONFLICT (name) DO UPDATE SET config = excluded.config",
                         (name, config.to_json()))

    def queue_config(self, name: str) -> QueueConfig | None:
        row = self._conn().execute("SELECT config FROM queues WHERE name = ?", (name,)).fetchone()
        return QueueConfig.from_json(name, row[0]) if row else None

    def queue_names(self) -> list[str]:
        return [name for (name,) in self._conn().execute("SELECT name FROM queues ORDER BY name")]

    def enqueue(self, queue: str, body: str, attributes: dict[str, Any] | None = None,
                delay: float = 0.0) -> str:
        return self.enqueue_batch(queue, [(body, attributes, delay)])[0]

    def enqueue_batch(self, queue: str, entries: Sequence[tuple[str, dict[str, Any] | None, float]]) -> list[str]:
        checks.standard_queue(queue)
        delays = [checks.seconds("delay", delay) for _, _, delay in entries]
        if not entries:
            return []
        now = self.clock()
        rows = [(body, checks.json_text("message attributes", attributes or {}), delay)
                for (body, attributes, _), delay in zip(entries, delays, strict=True)]
        with self._write() as conn:
            return insert_messages(conn, queue, rows, now)

    def enqueue_fifo(self, queue: str, entries: Sequence[FifoEntry], delay: float = 0.0) -> list[str]:
        delay = checks.fifo_entries(queue, entries, delay)
        if not entries:
            return []
        now = self.clock()
        rows = [(body, checks.json_text("message attributes", attributes or {}), group, dedup_id)
                for body, attributes, group, dedup_id in entries]
        with self._write() as conn:
            return insert_fifo(conn, queue, rows, now, delay)

    def fan_out(self, entries: Sequence[FanOutEntry], counters: str = "", counts: Mapping[str, int] | None = None,
                once: PublishOnce | None = None, consumed: Consumed | None = None) -> FanOut:
        counts = counts or {}
        receipts = checks.fan_out(entries, counters, counts, once, consumed)
        texts: dict[int, str] = {}  # the entries made from one message share its attributes: encoded once
        attributes = [texts.get(id(entry.attributes)) or texts.setdefault(
            id(entry.attributes), checks.json_text("message attributes", entry.attributes or {})) for entry in entries]
        if not entries and not counts and once is None and not receipts:
            return FanOut([])
        now = self.clock()
        with self._write() as conn:
            current = _consume(conn, consumed.queue, receipts) if consumed is not None else set()
            sequence = None
            if once is not None:
                conn.execute("DELETE FROM publish_dedup WHERE scope = ? AND expires <= ?", (once.scope, now))
                original = conn.execute("SELECT message_id, sequence FROM publish_dedup WHERE scope = ? AND "
                                        "dedup_id = ?", (once.scope, once.dedup_id)).fetchone()
                if original is not None:
                    return FanOut([], original[1], original[0])
                (last,), = conn.execute("INSERT INTO publish_sequences (scope, last) VALUES (?, 1) ON CONFLICT "
                                        "(scope) DO UPDATE SET last = last + 1 RETURNING last", (once.scope,))
                sequence = sequence_number(last)
                conn.execute("INSERT INTO publish_dedup (scope, dedup_id, message_id, sequence, expires) "
                             "VALUES (?, ?, ?, ?, ?)", (once.scope, once.dedup_id, once.message_id, sequence,
                                                        now + DEDUP_WINDOW))
            ids: list[str] = []
            standard = []  # one statement for every standard queue's message
            for entry, text in zip(entries, attributes, strict=True):
                if entry.receipt is not None and entry.receipt not in current:
                    ids.append("")
                    continue
                body = entry.body if sequence is None else _with_sequence(entry, sequence)
                if entry.group is not None and entry.dedup_id is not None:
                    ids += insert_fifo(conn, entry.queue, [(body, text, entry.group, entry.dedup_id)], now, 0.0)
                else:
                    ids.append(new_message_id())
                    standard.append((ids[-1], entry.queue, body, text, now, now))
            conn.executemany("INSERT INTO messages (id, queue, body, attributes, sent_at, visible_at) "
                             "VALUES (?, ?, ?, ?, ?, ?)", standard)
            # a counter that holds no integer (CAST gives 0 for any other JSON) counts from 0
            conn.executemany("INSERT INTO items (tbl, key, value, version) VALUES (?, ?, ?, 1) "
                             "ON CONFLICT (tbl, key) DO UPDATE SET version = version + 1, value = "
                             "CASE WHEN value GLOB '-[0-9]*' OR value GLOB '[0-9]*' "
                             "THEN CAST(CAST(value AS INTEGER) + excluded.value AS TEXT) ELSE excluded.value END",
                             [(counters, key, str(int(count))) for key, count in counts.items()])
        return FanOut(ids, sequence, None, len(current))

    def claim(self, queue: str, max_messages: int, visibility_timeout: float, *,
              max_receives: int | None = None, dlq: str | None = None) -> list[Message]:
        visibility_timeout, policy = checks.claim(queue, max_messages, visibility_timeout, max_receives, dlq)
        now = self.clock()
        # an idle queue is polled often: answer "nothing visible" without taking the write lock
        if max_messages == 0 or self._conn().execute(
                "SELECT 1 FROM messages WHERE queue = ? AND visible_at <= ? LIMIT 1", (queue, now)).fetchone() is None:
            return []
        with self._write() as conn:
            return self._claim(conn, queue, max_messages, visibility_timeout, policy, now)

    def settle(self, queue: str, acks: Sequence[str] = (), releases: Sequence[Release] = (),
               dead_letters: Sequence[DeadLetter] = (), *, dlq: str | None = None, claim: int = 0,
               visibility_timeout: float = 0.0, max_receives: int | None = None) -> list[Message]:
        delays, added, visibility_timeout, policy = checks.settle(queue, releases, dead_letters, dlq, claim,
                                                                  visibility_timeout, max_receives)
        if not (acks or releases or dead_letters):
            return self.claim(queue, claim, visibility_timeout, max_receives=max_receives, dlq=dlq)
        now = self.clock()
        with self._write() as conn:
            self._ack(conn, queue, acks)
            for release, delay in zip(releases, delays, strict=True):
                self._release(conn, queue, release.receipt, now + delay, release.uncount)
            for entry, attributes in zip(dead_letters, added, strict=True):
                assert dlq is not None  # checked
                self._dead_letter(conn, queue, entry.receipt, dlq, now, attributes)
            return self._claim(conn, queue, claim, visibility_timeout, policy, now) if claim else []

    def _claim(self, conn: sqlite3.Connection, queue: str, max_messages: int, visibility_timeout: float,
               policy: tuple[int, str] | None, now: float) -> list[Message]:
        """A claim inside the caller's transaction."""
        if is_fifo(queue):
            return self._claim_fifo(conn, queue, max_messages, visibility_timeout, policy, now)
        # a round claims every live row it selects; only when it also dead-lettered some
        # is there room for another, which skips the rows claimed so far (with a
        # visibility timeout of 0 they are still visible)
        claimed: list[Message] = []
        seen: list[int] = []
        while len(claimed) < max_messages:
            skip = "AND seq NOT IN (SELECT value FROM json_each(?)) " if seen else ""
            candidates = conn.execute(
                f"SELECT seq, receive_count FROM messages WHERE queue = ? AND visible_at <= ? {skip}"
                "ORDER BY visible_at, seq LIMIT ?",
                (queue, now, *([json.dumps(seen)] if seen else []), max_messages - len(claimed))).fetchall()
            exhausted = [seq for seq, count in candidates if policy and count >= policy[0]]
            live = [seq for seq, count in candidates if not policy or count < policy[0]]
            if exhausted and policy:
                _move(conn, exhausted, policy[1], now)
            if live:
                claimed += self._receive(conn, live, now, visibility_timeout)
            if not exhausted:
                break
            seen += live
        return claimed

    def _claim_fifo(self, conn: sqlite3.Connection, queue: str, max_messages: int, visibility_timeout: float,
                    policy: tuple[int, str] | None, now: float) -> list[Message]:
        """Each group whose head is visible, earliest first, from its head on while its
        messages are visible; heads out of receives go to the DLQ and their group goes on."""
        picked: list[int] = []
        dead: list[int] = []
        heads = sorted((visible_at, seq, group) for group, visible_at, seq in
                       conn.execute(_FIFO_HEADS, {"queue": queue}) if visible_at <= now)
        for _, _, group in heads:
            rows = conn.execute("SELECT seq, visible_at, receive_count FROM messages "
                                "WHERE queue = ? AND grp = ? ORDER BY seq", (queue, group))
            for seq, visible_at, count in rows:
                if visible_at > now or len(picked) == max_messages:
                    break
                (dead if policy and count >= policy[0] else picked).append(seq)
            if len(picked) == max_messages:
                break
        if dead and policy:
            _move(conn, dead, policy[1], now)
        return self._receive(conn, picked, now, visibility_timeout) if picked else []

    @staticmethod
    def _receive(conn: sqlite3.Connection, seqs: list[int], now: float, visibility_timeout: float) -> list[Message]:
        """Receive the given rows, returned in the order given (RETURNING order is unspecified)."""
        order = {seq: rank for rank, seq in enumerate(seqs)}
        rows = conn.execute(
            f"UPDATE messages SET visible_at = ?, receive_count = receive_count + 1, "
            f"receipt = {_RANDOM_TOKEN}, first_received_at = coalesce(first_received_at, ?) "
            f"WHERE seq IN (SELECT value FROM json_each(?)) RETURNING {_MESSAGE_COLUMNS}",
            (now + visibility_timeout, now, json.dumps(seqs))).fetchall()
        rows.sort(key=lambda row: order[row[0]])
        return [_message(row) for row in rows]

    def ack(self, queue: str, receipts: Sequence[str]) -> int:
        if not any(map(_parse_receipt, receipts)):
            return 0
        with self._write() as conn:
            return self._ack(conn, queue, receipts)

    @staticmethod
    def _ack(conn: sqlite3.Connection, queue: str, receipts: Sequence[str]) -> int:
        keys = [key for key in map(_parse_receipt, receipts) if key is not None]
        if not keys:
            return 0
        return conn.execute(
            "DELETE FROM messages WHERE (seq, receipt) IN "
            "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)) "
            "AND +queue = ?", (json.dumps(keys), queue)).rowcount

    def release(self, queue: str, receipt: str, delay: float = 0.0, *, uncount: bool = False) -> bool:
        delay = checks.seconds("delay", delay)
        if _parse_receipt(receipt) is None:
            return False
        with self._write() as conn:
            return self._release(conn, queue, receipt, self.clock() + delay, uncount)

    @staticmethod
    def _release(conn: sqlite3.Connection, queue: str, receipt: str, at: float, uncount: bool) -> bool:
        if (key := _parse_receipt(receipt)) is None:
            return False
        return conn.execute("UPDATE messages SET visible_at = ?, receive_count = max(receive_count - ?, 0) "
                            "WHERE seq = ? AND receipt = ? AND +queue = ?",
                            (at, int(uncount), *key, queue)).rowcount == 1

    def dead_letter(self, queue: str, receipt: str, dlq: str, attributes: dict[str, Any] | None = None) -> bool:
        checks.distinct_queues(queue, dlq, "dead-letter queue")
        added = checks.json_text("message attributes", attributes) if attributes else None
        if _parse_receipt(receipt) is None:
            return False
        with self._write() as conn:
            return self._dead_letter(conn, queue, receipt, dlq, self.clock(), added)

    @staticmethod
    def _dead_letter(conn: sqlite3.Connection, queue: str, receipt: str, dlq: str, now: float,
                     added: str | None) -> bool:
        key = _parse_receipt(receipt)
        if key is None or conn.execute("SELECT 1 FROM messages WHERE seq = ? AND receipt = ? AND +queue = ?",
                                       (*key, queue)).fetchone() is None:
            return False
        _move(conn, [key[0]], dlq, now, added)
        return True

    def redrive(self, source: str, target: str, limit: int | None = None) -> int:
        checks.distinct_queues(source, target, "redrive target")
        checks.optional_count("limit", limit)
        with self._write() as conn:
            seqs = [seq for (seq,) in conn.execute("SELECT seq FROM messages WHERE queue = ? ORDER BY seq LIMIT ?",
                                                   (source, -1 if limit is None else limit))]
            if seqs:
                _move(conn, seqs, target, self.clock())
        return len(seqs)

    def queue_stats(self, queue: str) -> QueueStats:
        visible, in_flight, delayed = self._conn().execute(
            "SELECT count(*) FILTER (WHERE visible_at <= :now), "
            "count(*) FILTER (WHERE visible_at > :now AND receive_count > 0), "
            "count(*) FILTER (WHERE visible_at > :now AND receive_count = 0) "
            "FROM messages WHERE queue = :queue", {"now": self.clock(), "queue": queue}).fetchone()
        return QueueStats(visible=visible, in_flight=in_flight, delayed=delayed)

    def queue_oldest_age(self, queue: str) -> float:
        # min(seq) is read from the (queue, visible_at, seq) index alone, then one row by key
        row = self._conn().execute(
            "SELECT sent_at FROM messages WHERE seq = (SELECT min(seq) FROM messages WHERE queue = ?)",
            (queue,)).fetchone()
        return 0.0 if row is None else max(0.0, self.clock() - row[0])

    def peek(self, queue: str, limit: int = 10) -> list[Message]:
        checks.count("limit", limit)
        rows = self._conn().execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE queue = ? ORDER BY seq LIMIT ?", (queue, limit))
        return [_message(row, peeked=True) for row in rows]

    def purge(self, queue: str) -> int:
        with self._write() as conn:
            conn.execute("DELETE FROM dedup WHERE queue = ?", (queue,))
            return conn.execute("DELETE FROM messages WHERE queue = ?", (queue,)).rowcount

    def queues_next_visible(self, queues: Sequence[str]) -> dict[str, float]:
        # one index seek per queue on messages_visible (queue, visible_at, ...)
        conn = self._conn()
        rows = conn.execute(
            "SELECT q.value, (SELECT visible_at FROM messages WHERE queue = q.value ORDER BY visible_at LIMIT 1) "
            "FROM json_each(?) AS q", (json.dumps([queue for queue in queues if not is_fifo(queue)]),))
        found = {queue: at for queue, at in rows if at is not None}
        for queue in filter(is_fifo, queues):  # a seek per group
            heads = [visible_at for _, visible_at, _ in conn.execute(_FIFO_HEADS, {"queue": queue})]
            if heads:
                found[queue] = min(heads)
        return found

    def watch_enqueues(self, callback: Callable[[str | None], None]) -> Watch:
        return FileWatch(self.path, callback)
