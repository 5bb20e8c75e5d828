"""Tables on Redis: a hash of stored items and a sorted set of keys for scans.

A conditional write reads the item, checks the condition here (`checks.require`, as on
SQLite), then writes with a script only if the item is still exactly what was read, else
reads again. A write with its change record is that same script with the stream's keys
(`lua/table_write.lua`), so the record is built from exactly what was replaced.
"""

from __future__ import annotations

import json
from typing import Any

from squall.backends import checks
from squall.backends.changefeed import change_record, change_stream
from squall.backends.protocol import Item
from squall.backends.redis import keys
from squall.backends.redis.core import reachable
from squall.backends.redis.streams import RedisStreams


def _item(key: str, stored: str | None) -> Item | None:
    if stored is None:
        return None
    data = json.loads(stored)
    return Item(key, data["v"], data["ver"])


class RedisTables(RedisStreams):
    """The `Tables` protocol on Redis; built on streams for the change feed."""

    @reachable
    def table_get(self, table: str, key: str) -> Item | None:
        return _item(key, self._redis.hget(keys.table(table)[0], key))

    @reachable
    def table_put(self, table: str, key: str, value: Any, *, if_version: int | None = None,
                  if_absent: bool = False, feed: bool = False) -> Item:
        checks.condition(if_version, if_absent)
        data = checks.json_text(f"value of table {table!r} key {key!r}", value)
        while True:
            stored = self._redis.hget(keys.table(table)[0], key)
            old = _item(key, stored)
            checks.require(table, key, old, if_version=if_version, if_absent=if_absent)
            new = Item(key, json.loads(data), checks.next_version(old))
            if self._write_item(table, key, stored, f'{{"v":{data},"ver":{new.version}}}', old, new, feed):
                return new

    @reachable
    def table_delete(self, table: str, key: str, *, if_version: int | None = None,
                     feed: bool = False) -> Item | None:
        checks.condition(if_version, False)
        while True:
            stored = self._redis.hget(keys.table(table)[0], key)
            old = _item(key, stored)
            checks.require(table, key, old, if_version=if_version)
            if old is None:
                return None
            if self._write_item(table, key, stored, "", old, None, feed):
                return old

    def _write_item(self, table: str, key: str, expected: str | None, stored: str, old: Item | None,
                    new: Item | None, feed: bool) -> bool:
        """Replace `expected` (None: absent) by `stored` ('': delete), with the change record
        from `old` to `new` when `feed`. False if the item changed since it was read."""
        keys_, args = keys.table(table), [key, expected or "", stored]
        if not feed:
            return self._run("table_write", keys_, args) == "ok"
        stream = change_stream(table)
        while True:
            record_keys, record_args = self._append_args(stream, key, change_record(old, new, self.clock()))
            outcome = self._run("table_write", keys_ + record_keys, args + record_args)
            if outcome != "reshard":
                return outcome == "ok"
            self._shards.pop(stream, None)

    @reachable
    def table_scan(self, table: str, *, prefix: str = "", start_after: str | None = None,
                   limit: int = 1000) -> list[Item]:
        checks.count("limit", limit)
        if limit == 0:
            return []
        low = prefix.encode()
        start = b"[" + low
        if start_after is not None and start_after.encode() >= low:
            start = b"(" + start_after.encode()
        end = b"[" + low + b"\xff" if prefix else b"+"  # no UTF-8 text contains the byte 0xff
        flat = self._run("table_scan", keys.table(table), [start, end, limit])
        stored = map(json.loads, flat[1::2])
        return [Item(key, data["v"], data["ver"]) for key, data in zip(flat[::2], stored, strict=True)]
