"""Slots on SQLite: one row per held slot; expired rows are swept by the next acquire."""

from __future__ import annotations

import uuid

from squall.backends import checks
from squall.backends.sqlite.core import SQLiteCore


class SQLiteSlots(SQLiteCore):
    """The `Slots` protocol on SQLite."""

    def slot_acquire(self, key: str, limit: int, holder: str, ttl: float) -> str | None:
        checks.count("limit", limit)
        ttl = checks.seconds("ttl", ttl, positive=True)
        now = self.clock()
        token = uuid.uuid4().hex
        with self._write() as conn:
            conn.execute("DELETE FROM slots WHERE key = ? AND expires <= ?", (key, now))
            (held,) = conn.execute("SELECT count(*) FROM slots WHERE key = ?", (key,)).fetchone()
            if held >= limit:
                return None
            conn.execute("INSERT INTO slots (key, token, holder, expires) VALUES (?, ?, ?, ?)",
                         (key, token, holder, now + ttl))
        return token

    def slot_release(self, key: str, token: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM slots WHERE key = ? AND token = ?", (key, token))

    def slot_count(self, key: str) -> int:
        (held,) = self._conn().execute("SELECT count(*) FROM slots WHERE key = ? AND expires > ?",
                                       (key, self.clock())).fetchone()
        return held
