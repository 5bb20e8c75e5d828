"""Redis down, hung or misnamed.

While Redis was unreachable a `ctx` call retried for about 5 s before failing, so a function
with the default 3 s timeout answered 504 instead of the documented 500; backend calls are
now bounded by the invocation's remaining time. A `--backend` URL that cannot work (a DB
index the server lacks, a port that is not a number, an HTTP port, `rediss://` to a
plain-text server) fails any CLI command within seconds with one line, where it printed a
traceback (or, for TLS, hung for ever).
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from squall.backends import deadline, open_backend
from squall.errors import BackendUnavailable
from tests.conftest import RedisServer
from tests.support import NodeProcess, squall, write_app

APP = """
    from squall import App

    app = App("redis-down")


    @app.http("GET", "/warm")
    def warm(event, ctx):
        return {"statusCode": 200, "body": str(ctx.table("items").get("k"))}


    @app.http("GET", "/cold")
    def cold(event, ctx):  # first invoked once Redis is down
        return {"statusCode": 200, "body": str(ctx.table("items").get("k"))}
"""


@pytest.fixture
def own_redis(tmp_path) -> Iterator[RedisServer]:
    """A redis-server of this test alone, to kill or stop."""
    server = RedisServer(tmp_path / "redis-data")
    server.directory.mkdir()
    server.start()
    yield server
    if server.process and server.process.poll() is None:
        server.process.send_signal(signal.SIGCONT)
    server.stop(kill=True)


def _fails_within_the_timeout(client, path: str) -> None:
    began = time.monotonic()
    response = client.get(path)
    elapsed = time.monotonic() - began
    assert response.status_code == 500, response.text  # the handler's error, not a 504 timeout
    assert response.json()["message"] == "Internal Server Error"
    assert elapsed < 3, elapsed


@pytest.mark.parametrize("fault", ["killed", "stopped"])
def test_a_ctx_call_to_a_dead_redis_fails_before_the_function_times_out(tmp_path, own_redis, fault):
    app = write_app(tmp_path, APP)
    with NodeProcess(app, backend=own_redis.url) as node, node.client(timeout=10) as client:
        assert client.get("/warm").status_code == 200
        assert own_redis.process is not None
        if fault == "killed":
            own_redis.stop(kill=True)  # connections refused: redis-py retries with backoff
        else:
            own_redis.process.send_signal(signal.SIGSTOP)  # connections hang: socket timeouts
        _fails_within_the_timeout(client, "/warm")
        _fails_within_the_timeout(client, "/cold")
        # each function's log has its error, as Lambda logs a handler's exception
        assert node.log().count(f"[ERROR] BackendUnavailable: Redis at {own_redis.url} is unreachable") >= 2
        if fault == "killed":  # back up, so the node's shutdown need not wait for it
            own_redis.start()
        else:
            own_redis.process.send_signal(signal.SIGCONT)


def test_problem_reports_an_unreachable_redis_until_a_call_succeeds(own_redis):
    backend = open_backend(own_redis.url)
    try:
        backend.table_put("t", "k", 1)
        assert backend.problem() is None
        own_redis.stop(kill=True)
        with deadline.bounded(time.time() + 0.5), pytest.raises(BackendUnavailable):
            backend.table_get("t", "k")
        assert (backend.problem() or "").startswith(f"Redis at {own_redis.url} is unreachable: ")
        own_redis.start()
        assert backend.table_get("t", "k") is not None
        assert backend.problem() is None
    finally:
        backend.close()


@pytest.fixture(scope="module")
def http_port() -> Iterator[int]:
    """A port that answers every connection as an HTTP server would."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n<html></html>")

    threading.Thread(target=answer, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


@pytest.mark.parametrize("case", ["bad-db", "port-not-a-number", "http-port", "tls-to-plain-text"])
def test_an_unusable_redis_url_is_one_line_within_seconds(redis_server, http_port, case):
    url, expected = {
        "bad-db": (f"redis://127.0.0.1:{redis_server.port}/99", "DB index is out of range"),
        "port-not-a-number": ("redis://127.0.0.1:notaport/0", "invalid Redis URL"),
        "http-port": (f"redis://127.0.0.1:{http_port}/0", "does not speak Redis's protocol"),
        "tls-to-plain-text": (f"rediss://127.0.0.1:{redis_server.port}/0", "TLS handshake failed"),
    }[case]
    commands = [["send", "q", "hello"], ["queues"]]
    for command in commands[:1] if case == "tls-to-plain-text" else commands:  # its 2 s handshake timeout once
        began = time.monotonic()
        result = squall(*command, "--backend", url, timeout=30)
        elapsed = time.monotonic() - began
        assert result.returncode == 1, result
        assert "Traceback" not in result.stderr
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: "), result.stderr
        assert expected in result.stderr
        assert elapsed < 5, elapsed
