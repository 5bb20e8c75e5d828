"""Cluster coordination on top of the backend's leases and node registry.

- `LeaderLease`: one node at a time holds a named role (a schedule fires once per tick
  across all nodes). The holder renews well inside the TTL; if it dies, another node
  takes over when the TTL expires.
- `ShardLeases`: the shards of a stream are spread over the live nodes, each shard held
  by exactly one node at a time. Every node computes its fair share from the registry,
  gives up extras and takes free or expired shards, so ownership rebalances as nodes
  join and leave without any coordinator.

Both work unchanged on SQLite (one node: it always wins) and on Redis.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Callable

from squall.backends import Backend

log = logging.getLogger("squall.cluster")


class LeaderLease:
    def __init__(self, backend: Backend, name: str, holder: str, ttl: float = 10.0):
        self.backend = backend
        self.name = f"leader.{name}"
        self.holder = holder
        self.ttl = ttl
        self.is_leader = False

    def renew(self) -> bool:
        """Take or keep the role; returns whether this node holds it now."""
        was = self.is_leader
        self.is_leader = self.backend.lease_acquire(self.name, self.holder, self.ttl)
        if self.is_leader != was:
            log.info("%s %s leadership of %s", self.holder, "took" if self.is_leader else "lost", self.name)
        return self.is_leader

    def resign(self) -> None:
        if self.is_leader:
            self.backend.lease_release(self.name, self.holder)
            self.is_leader = False

    async def run(self) -> None:
        """Renew every third of the TTL until cancelled, then resign."""
        try:
            while True:
                try:
                    await asyncio.to_thread(self.renew)
                except Exception as exc:  # noqa: BLE001 - a backend hiccup: not leader until renewed
                    self.is_leader = False
                    log.warning("leader lease %s: %s", self.name, exc)
                await asyncio.sleep(self.ttl / 3)
        finally:
            await asyncio.to_thread(self.resign)


class ShardLeases:
    def __init__(self, backend: Backend, stream: str, shards: int, holder: str, ttl: float = 10.0,
                 on_change: Callable[[set[int]], None] | None = None):
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

    async def run(self) -> None:
        """Rebalance every third of the TTL until cancelled, then hand every shard back."""
        try:
            while True:
                try:
                    await asyncio.to_thread(self.rebalance)
                except Exception as exc:  # noqa: BLE001 - keep serving what we hold; retry next round
                    log.warning("shard leases of %s: %s", self.stream, exc)
                await asyncio.sleep(self.ttl / 3)
        finally:
            await asyncio.to_thread(self.release_all)
