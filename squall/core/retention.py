"""Stream retention: nothing the platform appends grows without bound.

Every stream in the backend is trimmed to its retention — the metering stream to the
node's metering retention (24 hours by default), any other stream to the default, which
is also 24 hours, as Kinesis and DynamoDB Streams keep records — and, for a stream with a
`Cap` (the span stream's count), to that bound as well. One node at a time does
it: the holder of the `retention` leader lease.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from squall.backends import Backend
from squall.cluster import LeaderLease
from squall.core.lifecycle import PeriodicService, Progress

DAY = 24 * 3600.0


class Cap(Protocol):
    """A bound on a stream other than age (the span stream's count): `cut` says before
    which time its records go (None: the stream is within bounds)."""

    stream: str

    def cut(self, backend: Backend, oldest: float) -> float | None: ...


class Retention(PeriodicService):
    name = "retention"

    def __init__(self, backend: Backend, holder: str, policies: dict[str, float] | None = None,
                 default: float = DAY, interval: float = 60.0, caps: list[Cap] | None = None):
        super().__init__()
        self.backend = backend
        self.policies = dict(policies or {})
        self.caps = list(caps or [])
        self.default = default
        self.interval = interval
        # held across rounds: the leader renews it every round, long before it expires
        self.lease = LeaderLease(backend, "retention", holder, ttl=3 * interval)

    async def step(self) -> Progress:
        """If this node is the leader: trim every stream. Progress counts trimmed records."""
        trimmed = await asyncio.to_thread(self._trim) if await asyncio.to_thread(self.lease.renew) else 0
        return Progress(succeeded=trimmed)

    def _trim(self) -> int:
        now = self.backend.clock()
        trimmed = sum(self.backend.stream_trim(stream, now - self.policies.get(stream, self.default))
                      for stream in self.backend.stream_names())
        for cap in self.caps:
            before = cap.cut(self.backend, now - self.policies.get(cap.stream, self.default))
            if before is not None:
                trimmed += self.backend.stream_trim(cap.stream, before)
        return trimmed

    async def settle(self) -> None:
        await asyncio.to_thread(self.lease.resign)
