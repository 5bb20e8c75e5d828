"""Cluster coordination on top of the backend's leases and node registry.

- `LeaderLease`: one node at a time holds a named role (a schedule fires once per tick
  across all nodes). The holder renews well inside the TTL; if it dies, another node
  takes over when the TTL expires.
- `ShardLeases`: the shards of a stream are spread over the live nodes, each shard held
  by exactly one node at a time. Every node computes its fair share from the registry,
  gives up extras and takes free or expired shards, so ownership rebalances as nodes
  join and leave without any coordinator.

Both work unchanged on SQLite (one node: it always wins) and on Redis. Both are services
(`squall.core.lifecycle`): a node renews them every third of the TTL, and hands them back
when it stops.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Any

from squall.backends import Backend
from squall.backends.protocol import Leases, Nodes
from squall.core.lifecycle import PeriodicService, Progress

log = logging.getLogger("squall.cluster")


class LeaderLease(PeriodicService):
    def __init__(self, backend: Leases, name: str, holder: str, ttl: float = 10.0):
        super().__init__()
        self.name = f"leader-lease:{name}"
        self.interval = ttl / 3
        self.backend = backend
        self.lease = f"leader.{name}"
        self.holder = holder
        self.ttl = ttl
        self.is_leader = False

    def renew(self) -> bool:
        """Take or keep the role; returns whether this node holds it now."""
        was = self.is_leader
        self.is_leader = False  # if the backend fails here: not leader until renewed
        self.is_leader = self.backend.lease_acquire(self.lease, self.holder, self.ttl)
        if self.is_leader != was:
            log.info("%s %s leadership of %s", self.holder, "took" if self.is_leader else "lost", self.lease)
        return self.is_leader

    def resign(self) -> None:
        if self.is_leader:
            self.backend.lease_release(self.lease, self.holder)
            self.is_leader = False

    async def step(self) -> Progress:
        await asyncio.to_thread(self.renew)
        return Progress()

    async def settle(self) -> None:
        await asyncio.to_thread(self.resign)


class ShardLeases(PeriodicService):
    def __init__(self, backend: Backend, stream: str, shards: int, holder: str, ttl: float = 10.0,
                 on_change: Callable[[set[int]], None] | None = None):
        super().__init__()
        self.name = f"shard-leases:{stream}"
        self.interval = ttl / 3
        self.backend = backend
        self.stream = stream
        self.shards = shards
        self.holder = holder
        self.ttl = ttl
        self.on_change = on_change
        self.owned: set[int] = set()

    def _lease(self, shard: int) -> str:
        return f"shard.{self.stream}.{shard}"

    def fair_share(self) -> int:
        live = {n.node_id for n in self.backend.nodes()} | {self.holder}
        return math.ceil(self.shards / len(live))

    def rebalance(self) -> set[int]:
        """Renew what we hold, shed what is over our share, take free shards up to it."""
        share = self.fair_share()
        owned = {s for s in sorted(self.owned) if self.backend.lease_acquire(self._lease(s), self.holder, self.ttl)}
        for shard in sorted(owned, reverse=True)[:max(0, len(owned) - share)]:
            self.backend.lease_release(self._lease(shard), self.holder)
            owned.discard(shard)
        for shard in range(self.shards):
            if len(owned) >= share:
                break
            if shard not in owned and self.backend.lease_acquire(self._lease(shard), self.holder, self.ttl):
                owned.add(shard)
        if owned != self.owned and self.on_change is not None:
            self.on_change(owned)
        self.owned = owned
        return owned

    def release_all(self) -> None:
        for shard in self.owned:
            self.backend.lease_release(self._lease(shard), self.holder)
        self.owned = set()

    async def step(self) -> Progress:
        """Rebalance; on a backend error keep serving what we hold (the next round retries)."""
        await asyncio.to_thread(self.rebalance)
        return Progress()

    async def settle(self) -> None:
        await asyncio.to_thread(self.release_all)


class Heartbeat(PeriodicService):
    """Keeps this node in the registry (`squall nodes`) with a TTL of three heartbeats,
    and takes it out when the node stops."""

    name = "heartbeat"

    def __init__(self, backend: Nodes, node_id: str, info: Callable[[], dict[str, Any]], interval: float = 2.0):
        super().__init__()
        self.backend = backend
        self.node_id = node_id
        self.info = info
        self.interval = interval
        self._registered = False

    async def step(self) -> Progress:
        await asyncio.to_thread(self.backend.node_heartbeat, self.node_id, self.info(), self.interval * 3)
        self._registered = True
        return Progress()

    async def settle(self) -> None:
        if not self._registered:
            return  # a node that never beat (`squall invoke`, the harness) has nothing to take out
        try:
            await asyncio.to_thread(self.backend.node_remove, self.node_id)
        except Exception as exc:  # noqa: BLE001 - leaving the registry is best effort; the TTL expires
            log.warning("could not deregister node %s: %s", self.node_id, exc)
