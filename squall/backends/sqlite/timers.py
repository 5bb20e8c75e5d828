"""Timers on SQLite: one `timers` table, claimed by a lease on `visible_at`."""

from __future__ import annotations

from collections.abc import Sequence

from squall.backends import checks
from squall.backends.protocol import Timer, TimerFiring
from squall.backends.sqlite.core import SQLiteCore
from squall.backends.sqlite.queues import insert_messages


class SQLiteTimers(SQLiteCore):
    """The `Timers` protocol on SQLite."""

    def timer_set(self, group: str, key: str, due: float, payload: str) -> None:
        due = checks.instant("due", due)
        # a replaced timer is a new timer: due again at its own time, and the receipt of
        # any claim of the old one no longer matches
        with self._write() as conn:
            conn.execute("INSERT INTO timers (grp, key, due, payload, visible_at) VALUES (?, ?, ?, ?, ?) "
                         "ON CONFLICT (grp, key) DO UPDATE SET due = excluded.due, payload = excluded.payload, "
                         "visible_at = excluded.visible_at, receipt = NULL", (group, key, due, payload, due))

    def timer_cancel(self, group: str, key: str) -> bool:
        with self._write() as conn:
            return conn.execute("DELETE FROM timers WHERE grp = ? AND key = ?", (group, key)).rowcount == 1

    def timers_claim(self, group: str, limit: int, lease: float, ahead: float = 0.0) -> list[Timer]:
        checks.count("limit", limit)
        lease = checks.seconds("lease", lease)
        ahead = checks.seconds("ahead", ahead)
        now = self.clock()
        with self._write() as conn:
            rows = conn.execute(
                "UPDATE timers SET visible_at = ?, receipt = lower(hex(randomblob(16))) WHERE grp = ? AND key IN "
                "(SELECT key FROM timers WHERE grp = ? AND visible_at <= ? ORDER BY visible_at, key LIMIT ?) "
                "RETURNING key, due, payload, receipt",
                (now + lease, group, group, now + ahead, limit)).fetchall()
        return sorted((Timer(group, key, due, payload, receipt) for key, due, payload, receipt in rows),
                      key=lambda timer: (timer.due, timer.key))

    def timer_ack(self, group: str, key: str, receipt: str) -> bool:
        with self._write() as conn:
            return conn.execute("DELETE FROM timers WHERE grp = ? AND key = ? AND receipt = ?",
                                (group, key, receipt)).rowcount == 1

    def timers_next(self, group: str) -> float | None:
        row = self._conn().execute("SELECT min(visible_at) FROM timers WHERE grp = ?", (group,)).fetchone()
        return row[0]

    def timers_fire(self, group: str, firings: Sequence[TimerFiring]) -> list[bool]:
        for firing in firings:
            if firing.next_due is not None:
                checks.instant("next_due", firing.next_due)
        now = self.clock()
        fired: list[bool] = []
        with self._write() as conn:
            for f in firings:
                if conn.execute("SELECT 1 FROM timers WHERE grp = ? AND key = ? AND receipt = ?",
                                (group, f.key, f.receipt)).fetchone() is None:
                    fired.append(False)
                    continue
                delay = max(0.0, f.visible_at - now)
                insert_messages(conn, f.queue, [(body, "{}", delay) for body in f.bodies], now)
                if f.next_due is None:
                    conn.execute("DELETE FROM timers WHERE grp = ? AND key = ?", (group, f.key))
                else:
                    conn.execute("UPDATE timers SET due = ?, payload = ?, visible_at = ?, receipt = NULL "
                                 "WHERE grp = ? AND key = ?", (f.next_due, f.next_payload, f.next_due, group, f.key))
                fired.append(True)
        return fired
