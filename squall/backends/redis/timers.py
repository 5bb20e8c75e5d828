"""Timers on Redis: a sorted set of visibility times and hashes of due, payload, receipt."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from squall.backends import checks
from squall.backends.ids import new_message_id
from squall.backends.protocol import Timer
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
    def timers_claim(self, group: str, limit: int, lease: float) -> list[Timer]:
        checks.count("limit", limit)
        lease = checks.seconds("lease", lease)
        if limit == 0:
            return []
        now = self.clock()
        rows = self._run("timers_claim", keys.timers(group), [now, now + lease, limit, uuid.uuid4().hex])
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
    def timer_fire(self, group: str, key: str, receipt: str, queue: str, bodies: Sequence[str],
                   next_due: float | None, next_payload: str = "") -> bool:
        if next_due is not None:
            next_due = checks.instant("next_due", next_due)
        now = self.clock()
        messages = [checks.json_text("message", {"id": new_message_id(), "body": body, "attributes": {},
                                                 "sent_at": now}) for body in bodies]
        args = [key, receipt, queue, now, "" if next_due is None else repr(next_due), next_payload, *messages]
        return bool(self._run("timer_fire", keys.timers(group) + keys.queue(queue), args))
