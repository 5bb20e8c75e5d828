"""The node registry on Redis: a hash of node info and a sorted set of expiry times."""

from __future__ import annotations

import json
from typing import Any

from squall.backends import checks
from squall.backends.protocol import NodeInfo
from squall.backends.redis import keys
from squall.backends.redis.core import RedisCore, reachable


class RedisNodes(RedisCore):
    """The `Nodes` protocol on Redis."""

    @reachable
    def node_heartbeat(self, node_id: str, info: dict[str, Any], ttl: float) -> None:
        ttl = checks.seconds("ttl", ttl, positive=True)
        now = self.clock()
        stored = checks.json_text(f"info of node {node_id!r}", {"info": info, "seen": now})
        self._run("node_heartbeat", [keys.NODES, keys.NODE_EXPIRY], [node_id, stored, now, now + ttl])

    @reachable
    def node_remove(self, node_id: str) -> None:
        pipe = self._redis.pipeline()
        pipe.hdel(keys.NODES, node_id)
        pipe.zrem(keys.NODE_EXPIRY, node_id)
        pipe.execute()

    @reachable
    def nodes(self) -> list[NodeInfo]:
        live = self._redis.zrangebyscore(keys.NODE_EXPIRY, f"({self.clock()!r}", "+inf")
        if not live:
            return []
        found = []
        for node_id, stored in zip(live, self._redis.hmget(keys.NODES, live), strict=True):
            if stored is not None:  # removed since the range was read
                data = json.loads(stored)
                found.append(NodeInfo(node_id, data["info"], data["seen"]))
        return sorted(found, key=lambda node: node.node_id)
