"""Leases on Redis: one hash per lease, taken and released by scripts."""

from __future__ import annotations

from squall.backends import checks
from squall.backends.redis import keys
from squall.backends.redis.core import RedisCore, reachable


class RedisLeases(RedisCore):
    """The `Leases` protocol on Redis."""

    @reachable
    def lease_acquire(self, name: str, holder: str, ttl: float) -> bool:
        ttl = checks.seconds("ttl", ttl, positive=True)
        now = self.clock()
        return bool(self._run("lease_acquire", [keys.lease(name)], [holder, now, now + ttl]))

    @reachable
    def lease_release(self, name: str, holder: str) -> bool:
        return bool(self._run("lease_release", [keys.lease(name)], [holder, self.clock()]))

    @reachable
    def lease_holder(self, name: str) -> str | None:
        holder, expires = self._redis.hmget(keys.lease(name), ["holder", "expires"])
        return holder if holder is not None and float(expires) > self.clock() else None
