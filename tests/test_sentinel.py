"""A Sentinel-managed primary (`redis+sentinel://`): nodes find the primary through the
Sentinels, and follow a failover to the promoted replica without losing acknowledged work."""

from __future__ import annotations

import time

import pytest
import redis

from squall.backends import QueueConfig, open_backend
from squall.errors import ConfigError
from tests.conftest import RedisServer
from tests.support import NodeProcess, squall, wait_until, write_app

SERVICE = "squall-primary"

APP = """
from squall import App

app = App("sentinel")


@app.on_queue("jobs", batch_size=10, visibility_timeout=5)
def work(event, ctx):
    for record in event["Records"]:
        ctx.table("done").put(record["body"], {"by": ctx.function_name})
"""


@pytest.fixture
def replicated(tmp_path):
    """A primary, its replica and one Sentinel watching them (quorum 1)."""
    primary = RedisServer(tmp_path / "primary")
    replica = RedisServer(tmp_path / "replica")
    sentinel = RedisServer(tmp_path / "sentinel", "--sentinel", config=tmp_path / "sentinel" / "sentinel.conf")
    for server in (primary, replica, sentinel):
        server.directory.mkdir()
    replica.args = ["--replicaof", "127.0.0.1", str(primary.port)]
    sentinel.config.write_text(
        f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} 1\n"
        f"sentinel down-after-milliseconds {SERVICE} 500\n"
        f"sentinel failover-timeout {SERVICE} 2000\n")
    started = []
    try:
        for server in (primary, replica, sentinel):
            server.start()
            started.append(server)
        yield primary, replica, sentinel
    finally:
        for server in started:
            server.stop(kill=True)


def sentinel_url(sentinel: RedisServer) -> str:
    return f"redis+sentinel://127.0.0.1:{sentinel.port}/{SERVICE}/0"


def test_cli_and_nodes_reach_the_primary_through_sentinel(replicated, tmp_path):
    primary, _, sentinel = replicated
    app = write_app(tmp_path, APP)
    url = sentinel_url(sentinel)
    backend = open_backend(url)
    try:
        with NodeProcess(app, url):
            for n in range(5):
                sent = squall("send", "jobs", f"job-{n}", "--backend", url, cwd=tmp_path)
                assert sent.returncode == 0, sent.stderr
            assert redis.Redis(port=primary.port).exists("squall:queues")  # in the primary itself
            wait_until(lambda: all(backend.table_get("done", f"job-{n}") for n in range(5)),
                       message="the node did not drain the queue")
        queues = squall("queues", "--backend", url, cwd=tmp_path)
        assert queues.returncode == 0 and "jobs" in queues.stdout
        assert backend.queue_stats("jobs").total == 0
    finally:
        backend.close()


def test_a_failover_is_followed_and_loses_no_acknowledged_message(replicated):
    primary, replica, sentinel = replicated
    backend = open_backend(sentinel_url(sentinel))
    try:
        backend.queue_declare("jobs", QueueConfig(dlq="jobs-dlq", max_receive_count=3, visibility_timeout=30))
        backend.enqueue_batch("jobs", [(f"job-{n}", None, 0.0) for n in range(100)])
        # acknowledged once the replica has it too (Redis replicates asynchronously; WAIT closes the gap)
        assert redis.Redis(port=primary.port).wait(1, 5000) == 1
        primary.stop(kill=True)
        watcher = redis.Redis(port=sentinel.port, decode_responses=True)
        wait_until(lambda: int(watcher.sentinel_get_master_addr_by_name(SERVICE)[1]) == replica.port,
                   timeout=20, message="the Sentinel did not promote the replica")
        # the same backend object carries on against the new primary
        deadline = time.time() + 20
        while True:
            try:
                claimed = backend.claim("jobs", 100, 30)
                break
            except Exception:  # noqa: BLE001 - the promoted replica may still be finishing its switch
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        assert sorted(m.body for m in claimed) == sorted(f"job-{n}" for n in range(100))
        assert backend.ack("jobs", [m.receipt for m in claimed]) == 100
        assert backend.queue_stats("jobs").total == 0
    finally:
        backend.close()


@pytest.mark.parametrize("url", ["redis+sentinel://127.0.0.1:1/", "redis+sentinel://:26379/svc",
                                 "redis+sentinel://127.0.0.1:1/svc/zero"])
def test_a_malformed_sentinel_url_is_a_clear_error(url):
    with pytest.raises(ConfigError, match="invalid Sentinel URL"):
        open_backend(url)
