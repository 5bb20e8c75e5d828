"""Fixtures of the unit tests: everything runs in-process, with no node process or zygote."""

from __future__ import annotations

import pytest

from squall.backends import open_backend


@pytest.fixture
def sqlite(tmp_path, clock):
    """A real SQLite backend in tmp_path, driven by the fake clock."""
    backend = open_backend(f"sqlite:///{tmp_path}/s.db", clock=clock)
    yield backend
    backend.close()
