"""Queues on Redis: per-queue hashes and sorted sets, every change one script of `lua/`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from squall.backends import checks
from squall.backends.fifo import DEDUP_WINDOW, FifoEntry, PublishOnce, is_fifo
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
from squall.backends.redis import keys
from squall.backends.redis.core import RedisCore, reachable
from squall.backends.redis.watch import PubSubWatch

#: Messages moved per script by a redrive: a script blocks every other client while it runs.
REDRIVE_BATCH = 1000


def _message(queue: str, data: dict[str, Any], receive_count: int, first_received_at: float,
             receipt: str) -> Message:
    """A message from its stored JSON (parsed) and its receive state."""
    return Message(id=data["id"], queue=queue, body=data["body"], attributes=data["attributes"],
                   receipt=receipt, receive_count=receive_count, sent_at=data["sent_at"],
                   first_received_at=first_received_at, group=data.get("group"), dedup_id=data.get("dedup_id"),
                   sequence=data.get("sequence"))


def _byte_offset(text: str, body: str, at: int) -> int:
    """Where, in bytes, the message JSON `text` holds character `at` of its body: JSON
    escapes a string character by character, so the escaped prefix is as long there."""
    start = text.index(',"body":"') + len(',"body":"')
    return len(text[:start + len(checks.json_text("body", body[:at])) - 2].encode())


class RedisQueues(RedisCore):
    """The `Queues` protocol on Redis."""

    @reachable
    def queue_declare(self, name: str, config: QueueConfig) -> None:
        self._redis.hset(keys.QUEUES, name, config.to_json())

    @reachable
    def queue_config(self, name: str) -> QueueConfig | None:
        stored = self._redis.hget(keys.QUEUES, name)
        return None if stored is None else QueueConfig.from_json(name, stored)

    @reachable
    def queue_names(self) -> list[str]:
        return sorted(self._redis.hkeys(keys.QUEUES))

    def enqueue(self, queue: str, body: str, attributes: dict[str, Any] | None = None,
                delay: float = 0.0) -> str:
        return self.enqueue_batch(queue, [(body, attributes, delay)])[0]

    @reachable
    def enqueue_batch(self, queue: str, entries: Sequence[tuple[str, dict[str, Any] | None, float]]) -> list[str]:
        checks.standard_queue(queue)
        delays = [checks.seconds("delay", delay) for _, _, delay in entries]
        if not entries:
            return []
        now = self.clock()
        ids: list[str] = []
        args: list[Any] = [queue, now]
        for (body, attributes, _), delay in zip(entries, delays, strict=True):
            ids.append(new_message_id())
            message = {"id": ids[-1], "body": body, "attributes": attributes or {}, "sent_at": now}
            args += [checks.json_text("message attributes", message), now + delay]
        self._run("enqueue", keys.queue(queue), args)
        return ids

    @reachable
    def enqueue_fifo(self, queue: str, entries: Sequence[FifoEntry], delay: float = 0.0) -> list[str]:
        delay = checks.fifo_entries(queue, entries, delay)
        if not entries:
            return []
        now = self.clock()
        args: list[Any] = [now, now + delay, now + DEDUP_WINDOW]
        for body, attributes, group, dedup_id in entries:
            message_id = new_message_id()
            # "attributes" then "sent_at" last: the layout dead_letter.lua splices into
            message = {"id": message_id, "body": body, "group": group, "dedup_id": dedup_id,
                       "attributes": attributes or {}, "sent_at": now}
            args += [checks.json_text("message attributes", message), message_id, group, dedup_id]
        return list(self._run("enqueue_fifo", keys.queue(queue), args))

    @reachable
    def fan_out(self, entries: Sequence[FanOutEntry], counters: str = "", counts: Mapping[str, int] | None = None,
                once: PublishOnce | None = None, consumed: Consumed | None = None) -> FanOut:
        counts = counts or {}
        receipts = checks.fan_out(entries, counters, counts, once, consumed)
        now = self.clock()
        ids: list[str] = []
        by_queue: dict[str, list[Any]] = {}
        fifo: dict[str, list[int]] = {}  # per FIFO queue, the entries whose ids the script answers
        for index, entry in enumerate(entries):
            ids.append(new_message_id())
            # "attributes" then "sent_at" last: the layout dead_letter.lua splices into
            message: dict[str, Any] = {"id": ids[-1], "body": entry.body}
            if entry.group is not None:
                message.update(group=entry.group, dedup_id=entry.dedup_id)
            message.update(attributes=entry.attributes or {}, sent_at=now)
            text = checks.json_text("message attributes", message)
            queued = by_queue.setdefault(entry.queue, [])
            queued += [text, -1 if entry.sequence_at is None else _byte_offset(text, entry.body, entry.sequence_at),
                       0 if entry.receipt is None else receipts[entry.receipt] + 1]
            if entry.group is not None:
                queued += [ids[-1], entry.group, entry.dedup_id]
                fifo.setdefault(entry.queue, []).append(index)
        if not entries and not counts and once is None and not receipts:
            return FanOut(ids)
        keys_ = keys.queue(consumed.queue) if consumed is not None and receipts else []
        publish = (once.dedup_id, once.message_id) if once else ("", "")
        args: list[Any] = [now, now + DEDUP_WINDOW, len(by_queue), *publish, int(bool(counts)), len(receipts),
                           *receipts]
        for queue, messages in by_queue.items():
            keys_ += keys.queue(queue)
            args += [len(messages) // (6 if queue in fifo else 3), *messages]
        keys_ += (keys.table(counters) if counts else []) + (keys.publish_scope(once.scope) if once else [])
        for key, count in counts.items():
            args += [key, int(count)]
        original, sequence, answered, current = self._run("fan_out", keys_, args)
        if original is not None:
            return FanOut([], sequence, original)
        for index, message_id in zip((i for queue in by_queue for i in fifo.get(queue, ())), answered, strict=True):
            ids[index] = message_id
        for index, entry in enumerate(entries):
            if entry.receipt is not None and not current[receipts[entry.receipt]]:
                ids[index] = ""
        return FanOut(ids, sequence, None, sum(current))

    @reachable
    def claim(self, queue: str, max_messages: int, visibility_timeout: float, *,
              max_receives: int | None = None, dlq: str | None = None) -> list[Message]:
        visibility_timeout, policy = checks.claim(queue, max_messages, visibility_timeout, max_receives, dlq)
        if max_messages == 0:
            return []
        now = self.clock()
        keys_ = keys.queue(queue) + (keys.queue(policy[1]) if policy else [])
        reply = self._run("claim", keys_, [now, now + visibility_timeout, max_messages, uuid.uuid4().hex,
                                           policy[0] if policy else ""])
        return [_message(queue, *row) for row in json.loads(reply)]

    @reachable
    def settle(self, queue: str, acks: Sequence[str] = (), releases: Sequence[Release] = (),
               dead_letters: Sequence[DeadLetter] = (), *, dlq: str | None = None, claim: int = 0,
               visibility_timeout: float = 0.0, max_receives: int | None = None) -> list[Message]:
        delays, added, visibility_timeout, policy = checks.settle(queue, releases, dead_letters, dlq, claim,
                                                                  visibility_timeout, max_receives)
        if not (acks or releases or dead_letters):
            return self.claim(queue, claim, visibility_timeout, max_receives=max_receives, dlq=dlq)
        now = self.clock()
        args: list[Any] = [now, now + visibility_timeout, claim, uuid.uuid4().hex, policy[0] if policy else "",
                           len(acks), *acks, len(releases)]
        for release, delay in zip(releases, delays, strict=True):
            args += [release.receipt, now + delay, int(release.uncount)]
        args.append(len(dead_letters))
        for entry, attributes in zip(dead_letters, added, strict=True):
            args += [entry.receipt, "" if attributes is None else attributes[1:-1]]  # the members (dead_letter)
        reply = self._run("settle", keys.queue(queue) + (keys.queue(dlq) if dlq is not None else []), args)
        return [_message(queue, *row) for row in json.loads(reply)]

    @reachable
    def ack(self, queue: str, receipts: Sequence[str]) -> int:
        if not receipts:
            return 0
        return self._run("ack", keys.queue(queue), list(receipts))

    @reachable
    def release(self, queue: str, receipt: str, delay: float = 0.0, *, uncount: bool = False) -> bool:
        delay = checks.seconds("delay", delay)
        return bool(self._run("release", keys.queue(queue), [receipt, self.clock() + delay, int(uncount)]))

    @reachable
    def dead_letter(self, queue: str, receipt: str, dlq: str, attributes: dict[str, Any] | None = None) -> bool:
        checks.distinct_queues(queue, dlq, "dead-letter queue")
        # the members of a JSON object, spliced into the stored message's attributes by
        # the script (a later duplicate name wins when the message is read)
        added = checks.json_text("message attributes", attributes)[1:-1] if attributes else ""
        return bool(self._run("dead_letter", keys.queue(queue) + keys.queue(dlq), [receipt, self.clock(), added]))

    @reachable
    def redrive(self, source: str, target: str, limit: int | None = None) -> int:
        """REDRIVE_BATCH messages per script, so a large DLQ does not stall the cluster; the
        first script fixes the last seq to move, so messages dead-lettered meanwhile stay."""
        checks.distinct_queues(source, target, "redrive target")
        checks.optional_count("limit", limit)
        keys_, now, moved, last = keys.queue(source) + keys.queue(target), self.clock(), 0, ""
        while limit is None or moved < limit:
            want = REDRIVE_BATCH if limit is None else min(REDRIVE_BATCH, limit - moved)
            done, last = self._run("redrive", keys_, [now, want, last, target])
            moved += done
            if done < want:
                break
        return moved

    @reachable
    def queue_stats(self, queue: str) -> QueueStats:
        now = self.clock()
        pipe = self._redis.pipeline()  # MULTI/EXEC: the three counts are one snapshot
        pipe.zcount(keys.queue_part(queue, "vis"), "-inf", now)
        pipe.zcount(keys.queue_part(queue, "vis"), f"({now!r}", "+inf")
        pipe.zcount(keys.queue_part(queue, "new"), f"({now!r}", "+inf")
        visible, invisible, delayed = pipe.execute()
        return QueueStats(visible=visible, in_flight=invisible - delayed, delayed=delayed)

    @reachable
    def queue_oldest_age(self, queue: str) -> float:
        sent_at = self._run("oldest", keys.queue(queue), [])
        return 0.0 if sent_at is None else max(0.0, self.clock() - float(sent_at))

    @reachable
    def peek(self, queue: str, limit: int = 10) -> list[Message]:
        checks.count("limit", limit)
        if limit == 0:
            return []
        return [_message(queue, json.loads(stored), int(count), float(first), "")
                for stored, count, first in self._run("peek", keys.queue(queue), [limit])]

    @reachable
    def purge(self, queue: str) -> int:
        pipe = self._redis.pipeline()
        pipe.zcard(keys.queue_part(queue, "order"))
        pipe.unlink(*(key for part, key in zip(keys.QUEUE_PARTS, keys.queue(queue), strict=True) if part != "seq"))
        return pipe.execute()[0]  # the seq stays: slots are never reused

    @reachable
    def queues_next_visible(self, queues: Sequence[str]) -> dict[str, float]:
        names = list(queues)
        if not names:
            return {}
        # a FIFO queue's next claimable message is the earliest of its groups' heads
        flat = self._run("next_visible", [keys.queue_part(name, "heads" if is_fifo(name) else "vis")
                                          for name in names], [])
        return {names[index - 1]: float(at) for index, at in zip(flat[::2], flat[1::2], strict=True)}

    def watch_enqueues(self, callback: Callable[[str | None], None]) -> Watch:
        return PubSubWatch(self, callback)
