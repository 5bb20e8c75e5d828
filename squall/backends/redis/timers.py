"""Timers on Redis: a sorted set of visibility times and hashes of due, payload, receipt."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from squall.backends import checks
from squall.backends.ids import new_message_id
from squall.backends.protocol import Timer, TimerFiring
from squall.backends.redis import keys
from squall.backends.redis.core import RedisCore, reachable


class RedisTimers(RedisCore):
    """The `Timers` protocol on Redis."""

    @reachable
    def timer_set(self, group: str, key: str, due: float, payload: str) -> None:
        due = checks.instant("due", due)
        at, dues, payloads, receipts = keys.timers(group)
        pipe = self._redis.pipeline()
        pipe.zadd(at, {key: due})
        pipe.hset(dues, key, repr(due))
        pipe.hset(payloads, key, payload)
        pipe.hdel(receipts, key)  # a claim of the replaced timer can no longer ack it
        pipe.execute()

    @reachable
    def timer_cancel(self, group: str, key: str) -> bool:
        at, *hashes = keys.timers(group)
        pipe = self._redis.pipeline()
        pipe.zrem(at, key)
        for name in hashes:
            pipe.hdel(name, key)
        return bool(pipe.execute()[0])

    @reachable
    def timers_claim(self, group: str, limit: int, lease: float, ahead: float = 0.0) -> list[Timer]:
        checks.count("limit", limit)
        lease = checks.seconds("lease", lease)
        ahead = checks.seconds("ahead", ahead)
        if limit == 0:
            return []
        now = self.clock()
        rows = self._run("timers_claim", keys.timers(group), [now + ahead, now + lease, limit, uuid.uuid4().hex])
        return sorted((Timer(group, key, float(due), payload, receipt) for key, due, payload, receipt in rows),
                      key=lambda timer: (timer.due, timer.key))

    @reachable
    def timer_ack(self, group: str, key: str, receipt: str) -> bool:
        return bool(self._run("timer_ack", keys.timers(group), [key, receipt]))

    @reachable
    def timers_next(self, group: str) -> float | None:
        first = self._redis.zrange(keys.timers(group)[0], 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    @reachable
    def timers_fire(self, group: str, firings: Sequence[TimerFiring]) -> list[bool]:
        for firing in firings:
            if firing.next_due is not None:
                checks.instant("next_due", firing.next_due)
        if not firings:
            return []
        now = self.clock()
        queues = sorted({f.queue for f in firings})
        args: list[Any] = [now, len(queues), *queues]
        for f in firings:
            messages = [checks.json_text("message", {"id": new_message_id(), "body": body, "attributes": {},
                                                     "sent_at": now}) for body in f.bodies]
            args += [f.key, f.receipt, queues.index(f.queue) + 1, "" if f.next_due is None else repr(f.next_due),
                     f.next_payload, repr(max(now, f.visible_at)), len(messages), *messages]
        keys_ = keys.timers(group) + [key for queue in queues for key in keys.queue(queue)]
        return [bool(flag) for flag in self._run("timers_fire", keys_, args)]
