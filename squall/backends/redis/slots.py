"""Slots on Redis: a sorted set of tokens by expiry per key."""

from __future__ import annotations

import uuid

from squall.backends import checks
from squall.backends.redis import keys
from squall.backends.redis.core import RedisCore, reachable


class RedisSlots(RedisCore):
    """The `Slots` protocol on Redis."""

    @reachable
    def slot_acquire(self, key: str, limit: int, holder: str, ttl: float) -> str | None:
        checks.count("limit", limit)
        ttl = checks.seconds("ttl", ttl, positive=True)
        now = self.clock()
        token = f"{holder}:{uuid.uuid4().hex}"
        taken = self._run("slot_acquire", [keys.slots(key)], [now, now + ttl, limit, token])
        return token if taken else None

    @reachable
    def slot_release(self, key: str, token: str) -> None:
        self._redis.zrem(keys.slots(key), token)

    @reachable
    def slot_count(self, key: str) -> int:
        return self._redis.zcount(keys.slots(key), f"({self.clock()!r}", "+inf")
