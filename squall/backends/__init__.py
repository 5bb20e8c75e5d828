"""Backends: where durable state lives. `open_backend(url)` picks one by URL scheme.

- `sqlite:///relative/path.db` or `sqlite:////absolute/path.db` — embedded, one machine.
- `redis://host:port/db` — distributed, shared by many nodes;
  `redis+sentinel://host:port,host:port/service/db` for a Sentinel-managed primary.

The protocol (one per primitive, and `Backend`, their union) is in `protocol.py`.
"""

from __future__ import annotations

from squall.backends.protocol import (
    Backend,
    Clock,
    Item,
    Message,
    NodeInfo,
    QueueConfig,
    QueueStats,
    StreamRecord,
    Timer,
    Watch,
)
from squall.errors import ConfigError

__all__ = ["Backend", "Clock", "Item", "Message", "NodeInfo", "QueueConfig", "QueueStats", "StreamRecord", "Timer",
           "Watch", "open_backend"]


def open_backend(url: str, clock: Clock | None = None) -> Backend:
    """Open the backend named by `url`. Raises ConfigError for an unknown scheme."""
    if url.startswith("sqlite://"):
        from squall.backends.sqlite import SQLiteBackend

        return SQLiteBackend(url, clock=clock)
    if url.startswith(("redis://", "rediss://", "unix://", "redis+sentinel://")):
        from squall.backends.redis import RedisBackend

        return RedisBackend(url, clock=clock)
    raise ConfigError(f"unknown backend URL {url!r}: expected sqlite:///path, redis://host:port/db "
                      "or redis+sentinel://host:port/service/db")
