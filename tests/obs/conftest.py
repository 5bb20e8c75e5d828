"""Fixtures of the observability tests."""

from __future__ import annotations

import pytest
import redis


@pytest.fixture
def redis_url(redis_server) -> str:
    """Database 0 of the session's redis-server, emptied: the one URL nodes of a test share."""
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    redis.Redis.from_url(url).flushdb()
    return url
