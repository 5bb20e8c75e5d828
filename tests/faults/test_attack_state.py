"""The SQLite state file's write-ahead log deleted under a running node.

Deleting `state.db` or replacing it is detected since issue 8, but `rm state.db-wal`
(an operator tidying "temporary" files, or copying the database without its WAL) was
not: every commit since the last checkpoint lives only in the WAL, the node kept
acknowledging writes into the unlinked file and reporting itself healthy, and a restart
found none of it.
"""

from __future__ import annotations

import httpx

from squall.backends import open_backend
from tests.faults.test_state_file import APP
from tests.support import NodeProcess, free_port, wait_until, write_app


def test_a_deleted_wal_is_reported_and_later_writes_are_refused(tmp_path):
    state = tmp_path / ".squall" / "state.db"
    admin = free_port()
    with NodeProcess(write_app(tmp_path, APP), extra=["--admin-port", str(admin)]) as node, \
            node.client(timeout=10) as client:
        assert client.put("/items/before", content="acknowledged").status_code == 200
        wal = state.with_name("state.db-wal")
        assert wal.exists()
        wal.unlink()
        after = client.put("/items/after", content="would be lost")
        health = wait_until(lambda: (r := httpx.get(f"http://127.0.0.1:{admin}/health", timeout=5)).status_code
                            == 503 and r.json(), timeout=10, message="the node to report the deleted WAL")
        assert "state.db-wal" in health["problems"]["backend"]
        assert after.status_code == 500, "a write into the deleted WAL was acknowledged"
    backend = open_backend(f"sqlite:///{state}")  # what a restarted node finds
    try:
        assert backend.table_get("items", "after") is None
    finally:
        backend.close()
