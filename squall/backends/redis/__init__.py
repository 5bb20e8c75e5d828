"""The distributed backend: every primitive on one Redis server, a module per primitive over
`core`, the key layout in `keys`, the Lua scripts in `lua/`."""

from __future__ import annotations

from squall.backends.redis.leases import RedisLeases
from squall.backends.redis.nodes import RedisNodes
from squall.backends.redis.queues import RedisQueues
from squall.backends.redis.slots import RedisSlots
from squall.backends.redis.tables import RedisTables
from squall.backends.redis.timers import RedisTimers

__all__ = ["RedisBackend"]


class RedisBackend(RedisQueues, RedisTables, RedisTimers, RedisLeases, RedisSlots, RedisNodes):
    """Every primitive on one Redis server. See `core.RedisCore` for the URLs it takes."""
