"""Leases on SQLite: one row per lease, taken by a conditional upsert."""

from __future__ import annotations

from squall.backends import checks
from squall.backends.sqlite.core import SQLiteCore


class SQLiteLeases(SQLiteCore):
    """The `Leases` protocol on SQLite."""

    def lease_acquire(self, name: str, holder: str, ttl: float) -> bool:
        ttl = checks.seconds("ttl", ttl, positive=True)
        now = self.clock()
        with self._write() as conn:
            # the upsert's WHERE leaves a live lease of another holder untouched (0 rows)
            return conn.execute(
                "INSERT INTO leases (name, holder, expires) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires "
                "WHERE leases.holder = excluded.holder OR leases.expires <= ?",
                (name, holder, now + ttl, now)).rowcount == 1

    def lease_release(self, name: str, holder: str) -> bool:
        now = self.clock()
        with self._write() as conn:
            return conn.execute("DELETE FROM leases WHERE name = ? AND holder = ? AND expires > ?",
                                (name, holder, now)).rowcount == 1

    def lease_holder(self, name: str) -> str | None:
        row = self._conn().execute("SELECT holder FROM leases WHERE name = ? AND expires > ?",
                                   (name, self.clock())).fetchone()
        return row[0] if row else None
