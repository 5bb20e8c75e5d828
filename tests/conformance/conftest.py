"""Fixtures of the conformance suite. `backend`, `backend_url`, `clock` and `redis_server`
come from tests/conftest.py: every test here runs on SQLite and on a real redis-server."""

from __future__ import annotations

import pytest

from squall.backends import open_backend


@pytest.fixture
def other(backend, clock):
    """A second backend object on the same store, as another node or process would open."""
    b = open_backend(backend.url, clock=clock)
    yield b
    b.close()
