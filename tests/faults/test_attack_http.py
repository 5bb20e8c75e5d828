"""Hostile clients found after issue 8 was worked: a slowloris on the request body.

The head is bounded by --header-timeout, but once a head is in, a client that declares a
body and never sends it (or trickles it) held its connection for ever: a thousand of them
fill --max-connections and every later client gets 503.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.rawhttp import Connection, request
from tests.faults.test_http_limits import APP, assert_cut_off, served, trickle
from tests.support import NodeProcess, squall, write_app

BODY_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    directory = tmp_path_factory.mktemp("attack-http")
    app_path = write_app(directory, APP)
    with NodeProcess(app_path, backend=f"sqlite:///{directory}/state.db",
                     extra=["--body-timeout", str(BODY_TIMEOUT), "--header-timeout", "5"]) as running:
        yield running


def test_a_body_that_never_comes_is_408_and_closed_after_the_body_timeout(node):
    with Connection(node.port) as conn:
        start = time.monotonic()
        conn.send(b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
        served(node)
        assert_cut_off(conn)
        assert BODY_TIMEOUT - 0.2 < time.monotonic() - start < BODY_TIMEOUT + 1.5


def test_a_trickled_body_is_cut_off_however_steadily_it_comes(node):
    with Connection(node.port) as conn:
        start = time.monotonic()
        conn.send(b"POST /ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        trickle(conn, b"1\r\nx\r\n", until=start + BODY_TIMEOUT * 0.8)
        assert_cut_off(conn)


def test_a_body_sent_in_time_is_served_and_the_connection_kept(node):
    with Connection(node.port) as conn:
        for _ in range(3):  # the timer of one request does not fire into the next
            conn.send(b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
            time.sleep(BODY_TIMEOUT * 0.5)
            conn.send(b"cd")
            reply = conn.reply()
            assert reply.status == 200 and reply.json()["body"] == "abcd"
        time.sleep(BODY_TIMEOUT + 0.3)
        conn.send(request("/ok"))
        assert conn.reply().status == 200


def test_a_bad_body_timeout_is_one_line(tmp_path):
    app = write_app(tmp_path, APP)
    result = squall("run", str(app), "--body-timeout", "0", timeout=30)
    assert result.returncode != 0 and "Traceback" not in result.stderr and "--body-timeout" in result.stderr
