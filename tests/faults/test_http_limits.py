"""Hostile clients against a real `squall run` node (issue 8, items 5 and 16): oversized
and slow request heads, idle and surplus connections, and the HTTP details API Gateway
gets right (`%2F` stays in its path parameter, an unknown `Expect` is a 417).

Each probe checks the node still serves everyone else afterwards.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.rawhttp import Connection, connect, request, rss_kb
from tests.support import NodeProcess, squall, write_app

APP = """
    from squall import App

    app = App("limits")


    @app.http("GET", "/ok")
    @app.http("POST", "/ok")
    def ok(event, ctx):
        return {"body": event.get("body")}


    @app.http("GET", "/items/{id}")
    @app.http("GET", "/files/{proxy+}")
    def item(event, ctx):
        return {"pathParameters": event["pathParameters"], "rawPath": event["rawPath"]}
"""

HEADER_TIMEOUT = 1.0
IDLE_TIMEOUT = 1.0
MAX_HEAD = 10_240  # API Gateway HTTP API: request line and header values


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    directory = tmp_path_factory.mktemp("limits")
    app_path = write_app(directory, APP)
    with NodeProcess(app_path, backend=f"sqlite:///{directory}/state.db",
                     extra=["--header-timeout", str(HEADER_TIMEOUT), "--idle-timeout", str(IDLE_TIMEOUT)]) as running:
        yield running


def served(node: NodeProcess) -> None:
    """Another client is still served normally."""
    with node.client(timeout=5) as client:
        assert client.get("/ok").status_code == 200


def assert_json_error(reply, status: int, error: str) -> dict:
    assert reply.status == status, reply.body
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert body["error"] == error and body["message"]
    return body


# ---- the size and count of the request head ---------------------------------------------


def head_of(total: int) -> bytes:
    """A GET whose request line plus header values are exactly `total` bytes."""
    line = len("GET") + len("/ok") + len("  HTTP/1.1")
    return request("/ok", headers=[("X-Fill", "f" * (total - line - len("node")))])


def test_a_head_at_the_api_gateway_limit_is_served_and_one_byte_over_is_431(node):
    with Connection(node.port) as conn:
        conn.send(head_of(MAX_HEAD))
        assert conn.reply().status == 200
        conn.send(head_of(MAX_HEAD + 1))
        body = assert_json_error(conn.reply(), 431, "RequestHeaderFieldsTooLarge")
        assert "10240 bytes" in body["message"]
        assert conn.closed_within(2) is not None
    served(node)


def test_header_names_do_not_count_but_the_field_count_is_capped(node):
    with Connection(node.port) as conn:
        conn.send(request("/ok", headers=[(f"X-Header-{i:03d}", "v") for i in range(99)]))  # + Host = 100
        assert conn.reply().status == 200
        conn.send(request("/ok", headers=[(f"X-Header-{i:03d}", "v") for i in range(100)]))
        assert "101" not in assert_json_error(conn.reply(), 431, "RequestHeaderFieldsTooLarge")["message"]
    served(node)


def test_huge_streamed_headers_are_refused_early_and_do_not_grow_the_node(node):
    """The attack of the issue: 20 requests with a 32 MB header each took the node from
    71 MB to 2 GB. Now each is cut off after about twice the limit has arrived."""
    before = rss_kb(node.process.pid)
    chunk = b"a" * 65536
    for _ in range(20):
        sent = 0
        with connect(node.port) as sock:
            sock.sendall(b"GET /ok HTTP/1.1\r\nHost: node\r\nX-Huge: ")
            try:
                while sent < 32 * 1024 * 1024:
                    sock.sendall(chunk)
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
        assert sent < 4 * 1024 * 1024, "the node read on far past the limit"
    growth_mb = (rss_kb(node.process.pid) - before) / 1024
    assert growth_mb < 30, f"node RSS grew {growth_mb:.0f} MB"
    served(node)


def test_a_huge_header_in_one_complete_head_is_431(node):
    with Connection(node.port) as conn:
        conn.send(request("/ok", headers=[("X-Huge", "h" * 200_000)]))
        assert_json_error(conn.reply(), 431, "RequestHeaderFieldsTooLarge")


# ---- timeouts ----------------------------------------------------------------------------


def trickle(conn: Connection, piece: bytes, until: float) -> None:
    """Send `piece` every 0.1 s until `until` (monotonic time): a slow but steady client."""
    while time.monotonic() < until:
        conn.send(piece)
        time.sleep(0.1)


def assert_cut_off(conn: Connection) -> None:
    """The node answered 408 with its JSON body and closed the connection."""
    assert_json_error(conn.reply(), 408, "RequestTimeout")
    assert conn.closed_within(1) is not None


def test_slowloris_is_answered_408_and_closed_after_the_header_timeout(node):
    """A head sent a byte at a time never completes: the node gives up on it after the
    header timeout, however steadily the bytes come, and serves others meanwhile."""
    with Connection(node.port) as conn:
        start = time.monotonic()
        conn.send(b"GET /ok HTTP/1.1\r\nX-Slow: ")
        trickle(conn, b"s", until=start + HEADER_TIMEOUT * 0.8)
        served(node)
        assert_cut_off(conn)
        assert HEADER_TIMEOUT - 0.2 < time.monotonic() - start < HEADER_TIMEOUT + 1


def test_a_connection_that_never_sends_is_closed_after_the_header_timeout(node):
    with Connection(node.port) as conn:
        closed = conn.closed_within(HEADER_TIMEOUT + 2)
    assert closed is not None and HEADER_TIMEOUT - 0.2 < closed < HEADER_TIMEOUT + 1


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(node):
    with Connection(node.port) as conn:
        conn.send(request("/ok"))
        assert conn.reply().status == 200
        closed = conn.closed_within(IDLE_TIMEOUT + 2)
    assert closed is not None and IDLE_TIMEOUT - 0.2 < closed < IDLE_TIMEOUT + 1


def test_a_kept_alive_connection_in_use_stays_open(node):
    """The idle timeout counts from the last response, not from the connection."""
    with Connection(node.port) as conn:
        for _ in range(4):
            conn.send(request("/ok"))
            assert conn.reply().status == 200
            time.sleep(IDLE_TIMEOUT / 2)


# ---- HTTP details (item 16) ----------------------------------------------------------------


def test_an_encoded_slash_stays_encoded_in_its_path_parameter(node):
    with node.client(timeout=5) as client:
        event = client.get("/items/a%2Fb%20c").json()
        assert event["pathParameters"] == {"id": "a%2Fb c"}  # other escapes are decoded
        assert event["rawPath"] == "/items/a%2Fb c"
        assert client.get("/items/a%2fb").json()["pathParameters"] == {"id": "a%2Fb"}
        assert client.get("/items/a/b").status_code == 404  # a real slash still separates segments
        assert client.get("/files/x%2Fy/z").json()["pathParameters"] == {"proxy": "x%2Fy/z"}


def test_an_unknown_expectation_is_417_and_the_connection_stays_usable(node):
    with Connection(node.port) as conn:
        conn.send(request("/ok", "POST", [("Expect", "bogus")], b"body"))
        assert "bogus" in assert_json_error(conn.reply("POST"), 417, "ExpectationFailed")["message"]
        conn.send(request("/ok", "POST", [("Expect", "100-continue")], b"sent"))
        assert conn.reply("POST").json() == {"body": "sent"}


# ---- the connection cap --------------------------------------------------------------------


@pytest.fixture
def capped(tmp_path):
    app_path = write_app(tmp_path, APP)
    with NodeProcess(app_path, backend=f"sqlite:///{tmp_path}/state.db", extra=["--max-connections", "3"]) as running:
        yield running


def test_connections_beyond_max_connections_get_503_and_are_closed(capped):
    held = [Connection(capped.port) for _ in range(3)]
    try:
        held[0].send(request("/ok"))
        assert held[0].reply().status == 200  # the node is up, and the three are accepted
        time.sleep(0.1)
        with Connection(capped.port) as extra:
            extra.send(request("/ok"))
            body = assert_json_error(extra.reply(), 503, "TooManyConnections")
            assert "3 connections" in body["message"]
            assert extra.closed_within(1) is not None
        for conn in held:  # those within the cap are served throughout
            conn.send(request("/ok"))
            assert conn.reply().status == 200
        held.pop().close()
        time.sleep(0.2)
        with Connection(capped.port) as replacement:
            replacement.send(request("/ok"))
            assert replacement.reply().status == 200
    finally:
        for conn in held:
            conn.close()


@pytest.mark.parametrize("option, value", [("--max-connections", "0"), ("--header-timeout", "0"),
                                           ("--idle-timeout", "-1")])
def test_bad_limits_are_one_line_errors(tmp_path, option, value):
    done = squall("run", str(write_app(tmp_path, APP)), option, value, cwd=tmp_path, timeout=30)
    assert done.returncode == 2 and option in done.stderr and "Traceback" not in done.stderr
