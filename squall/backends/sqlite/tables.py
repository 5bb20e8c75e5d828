"""Tables on SQLite: one `items` table; a write with its change record is one transaction."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from squall.backends import checks
from squall.backends.changefeed import change_record, change_stream
from squall.backends.protocol import Item
from squall.backends.sqlite.streams import SQLiteStreams


def _prefix_end(prefix: str) -> str | None:
    """The least string greater than every string starting with `prefix` (None: no bound).

    UTF-8 byte order, which SQLite's BINARY collation uses, is code point order, so
    bumping the last code point bounds the prefix's key range and lets the scan seek.
    """
    while prefix:
        last = ord(prefix[-1]) + 1
        if 0xD800 <= last <= 0xDFFF:  # surrogates cannot appear in stored text
            last = 0xE000
        if last <= 0x10FFFF:
            return prefix[:-1] + chr(last)
        prefix = prefix[:-1]
    return None


def _item(conn: sqlite3.Connection, table: str, key: str) -> Item | None:
    row = conn.execute("SELECT value, version FROM items WHERE tbl = ? AND key = ?", (table, key)).fetchone()
    return Item(key, json.loads(row[0]), row[1]) if row else None


class SQLiteTables(SQLiteStreams):
    """The `Tables` protocol on SQLite; built on streams for the change feed."""

    def table_get(self, table: str, key: str) -> Item | None:
        return _item(self._conn(), table, key)

    def table_put(self, table: str, key: str, value: Any, *, if_version: int | None = None,
                  if_absent: bool = False, feed: bool = False) -> Item:
        checks.condition(if_version, if_absent)
        data = checks.json_text(f"value of table {table!r} key {key!r}", value)
        with self._write() as conn:
            old = _item(conn, table, key)
            checks.require(table, key, old, if_version=if_version, if_absent=if_absent)
            new = Item(key, json.loads(data), checks.next_version(old))
            conn.execute("INSERT INTO items (tbl, key, value, version) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value, "
                         "version = excluded.version", (table, key, data, new.version))
            if feed:
                self._record_change(conn, table, key, old, new)
        return new

    def table_delete(self, table: str, key: str, *, if_version: int | None = None,
                     feed: bool = False) -> Item | None:
        checks.condition(if_version, False)
        with self._write() as conn:
            old = _item(conn, table, key)
            checks.require(table, key, old, if_version=if_version)
            if old is None:
                return None
            conn.execute("DELETE FROM items WHERE tbl = ? AND key = ?", (table, key))
            if feed:
                self._record_change(conn, table, key, old, None)
        return old

    def _record_change(self, conn: sqlite3.Connection, table: str, key: str, old: Item | None,
                       new: Item | None) -> None:
        """The change record of a write, in the write's transaction (`squall.backends.changefeed`)."""
        now = self.clock()
        self._append(conn, change_stream(table), key, change_record(old, new, now), now)

    def table_scan(self, table: str, *, prefix: str = "", start_after: str | None = None,
                   limit: int = 1000) -> list[Item]:
        checks.count("limit", limit)
        sql = "SELECT key, value, version FROM items WHERE tbl = ? AND key >= ?"
        params: list[Any] = [table, prefix]
        if (end := _prefix_end(prefix)) is not None:
            sql += " AND key < ?"
            params.append(end)
        if start_after is not None:
            sql += " AND key > ?"
            params.append(start_after)
        rows = self._conn().execute(sql + " ORDER BY key LIMIT ?", [*params, limit])
        return [Item(key, json.loads(value), version) for key, value, version in rows]
