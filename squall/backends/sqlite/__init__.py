"""The embedded backend: one SQLite file in WAL mode, a module per primitive over `core`."""

from __future__ import annotations

from squall.backends.sqlite.leases import SQLiteLeases
from squall.backends.sqlite.nodes import SQLiteNodes
from squall.backends.sqlite.queues import SQLiteQueues
from squall.backends.sqlite.slots import SQLiteSlots
from squall.backends.sqlite.tables import SQLiteTables
from squall.backends.sqlite.timers import SQLiteTimers

__all__ = ["SQLiteBackend"]


class SQLiteBackend(SQLiteQueues, SQLiteTables, SQLiteTimers, SQLiteLeases, SQLiteSlots, SQLiteNodes):
    """Every primitive on one SQLite file (`sqlite:///path.db[?synchronous=normal|full|...]`)."""
