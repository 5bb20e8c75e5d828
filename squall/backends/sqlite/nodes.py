"""The node registry on SQLite: one row per node; the dead are forgotten by the next heartbeat."""

from __future__ import annotations

import json
from typing import Any

from squall.backends import checks
from squall.backends.protocol import NodeInfo
from squall.backends.sqlite.core import SQLiteCore


class SQLiteNodes(SQLiteCore):
    """The `Nodes` protocol on SQLite."""

    def node_heartbeat(self, node_id: str, info: dict[str, Any], ttl: float) -> None:
        ttl = checks.seconds("ttl", ttl, positive=True)
        data = checks.json_text(f"info of node {node_id!r}", info)
        now = self.clock()
        with self._write() as conn:
            conn.execute("DELETE FROM nodes WHERE expires <= ?", (now,))
            conn.execute("INSERT INTO nodes (node_id, info, seen, expires) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (node_id) DO UPDATE SET info = excluded.info, seen = excluded.seen, "
                         "expires = excluded.expires", (node_id, data, now, now + ttl))

    def node_remove(self, node_id: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM nodes WHERE node_id = ?", (node_id,))

    def nodes(self) -> list[NodeInfo]:
        rows = self._conn().execute("SELECT node_id, info, seen FROM nodes WHERE expires > ? ORDER BY node_id",
                                    (self.clock(),))
        return [NodeInfo(node_id, json.loads(info), seen) for node_id, info, seen in rows]
