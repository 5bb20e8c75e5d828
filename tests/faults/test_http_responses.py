"""Hostile and broken handler responses through a real `squall run` node (issue 8, item 8).

Every malformed Lambda proxy response is a 502 with the gateway's JSON body, nothing a
handler returns can break the HTTP framing of the connection it is sent on (each probe
sends a second request on the same connection, read strictly by h11), and a response
over Lambda's 6 MB synchronous limit is refused as Lambda refuses it.
"""

from __future__ import annotations

import pytest

from tests.faults.rawhttp import Connection, request
from tests.support import NodeProcess, write_app

APP = """
    import base64

    from squall import App

    app = App("responses")

    LIMIT = 6_291_556  # Lambda's synchronous response payload limit

    RESPONSES = {
        "ok": "ok",
        "over-limit": "x" * (LIMIT + 1),
        # the whole result, as JSON, is LIMIT bytes: Lambda's limit is on the payload
        "at-limit": {"statusCode": 200, "body": "y" * (LIMIT - len('{"statusCode":200,"body":""}'))},
        "proxy-over-limit": {"statusCode": 200, "body": "y" * (LIMIT + 1)},
        "binary-over-limit": {"statusCode": 200, "isBase64Encoded": True,
                              "body": base64.b64encode(b"b" * (LIMIT // 4 * 3 + 3)).decode()},
        "204-with-body": {"statusCode": 204, "body": "stray bytes"},
        "304-with-body": {"statusCode": 304, "body": "stray bytes", "headers": {"ETag": '"v1"'}},
        "hop-by-hop": {"statusCode": 200, "body": "whole",
                       "headers": {"Transfer-Encoding": "chunked", "Connection": "close", "Keep-Alive": "timeout=1",
                                   "Upgrade": "websocket", "TE": "trailers", "Trailer": "X-T",
                                   "Proxy-Authenticate": "Basic", "Content-Length": "999", "X-Kept": "yes"},
                       "multiValueHeaders": {"transfer-encoding": ["gzip"], "X-Multi": ["1", "2"]}},
        "crlf-value": {"statusCode": 200, "headers": {"X-Injected": "1\\r\\nSet-Cookie: evil=1"}},
        "crlf-name": {"statusCode": 200, "headers": {"X-A\\r\\nSet-Cookie: evil": "1"}},
        "crlf-cookie": {"statusCode": 200, "cookies": ["a=1\\r\\nX-Evil: 1"]},
        "bad-base64": {"statusCode": 200, "body": "not base64!", "isBase64Encoded": True},
        "non-ascii-base64": {"statusCode": 200, "body": "caf\u00e9", "isBase64Encoded": True},
        "base64-flag-string": {"statusCode": 200, "body": "eA==", "isBase64Encoded": "yes"},
        "multi-as-list": {"statusCode": 200, "multiValueHeaders": [["X-M", "1"]]},
        "multi-string-value": {"statusCode": 200, "multiValueHeaders": {"X-M": "one"}},
        "multi-object-value": {"statusCode": 200, "multiValueHeaders": {"X-M": [{"a": 1}]}},
        "cookies-string": {"statusCode": 200, "cookies": "a=1"},
        "header-list-value": {"statusCode": 200, "headers": {"X-A": ["1", "2"]}},
        "status-100": {"statusCode": 100},
        "status-101": {"statusCode": 101, "headers": {"Upgrade": "websocket"}},
        "status-103": {"statusCode": 103},
        "status-600": {"statusCode": 600},
        "status-string": {"statusCode": "200"},
    }


    @app.http("GET", "/r/{kind}", memory_mb=256)
    def respond(event, ctx):
        if event["pathParameters"]["kind"] == "pid":
            import os
            return {"pid": os.getpid()}
        return RESPONSES[event["pathParameters"]["kind"]]
"""

LIMIT = 6_291_556


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    directory = tmp_path_factory.mktemp("responses")
    app_path = write_app(directory, APP)
    with NodeProcess(app_path, backend=f"sqlite:///{directory}/state.db") as running:
        yield running


@pytest.fixture
def conn(node):
    with Connection(node.port) as connection:
        yield connection


def get(conn: Connection, kind: str):
    conn.send(request(f"/r/{kind}"))
    return conn.reply()


def still_in_step(conn: Connection) -> None:
    """The same connection carries the next response intact."""
    reply = get(conn, "ok")
    assert (reply.status, reply.body) == (200, b"ok")


def assert_502(reply, complaint: str) -> dict:
    assert reply.status == 502, reply.body[:200]
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert complaint in body["message"], body
    assert "Traceback" not in body["message"]
    return body


# ---- size ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["over-limit", "proxy-over-limit", "binary-over-limit"])
def test_a_response_over_6_mb_is_502_response_size_too_large(conn, kind):
    body = assert_502(get(conn, kind), f"maximum allowed payload size ({LIMIT} bytes)")
    assert body["error"] == "Function.ResponseSizeTooLarge" and body["requestId"]
    still_in_step(conn)


def test_a_response_over_the_limit_fails_the_invocation_not_the_instance(conn):
    """As on Lambda, the execution environment stays: the next call is served by the same
    instance (the limit is checked in the instance, before anything is sent)."""
    before = get(conn, "pid")
    assert_502(get(conn, "over-limit"), "Response payload size")
    assert get(conn, "pid").body == before.body


def test_a_response_at_the_limit_is_sent_whole(conn):
    reply = get(conn, "at-limit")
    assert reply.status == 200 and reply.body == b"y" * (LIMIT - len('{"statusCode":200,"body":""}'))
    still_in_step(conn)


# ---- framing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, status", [("204-with-body", 204), ("304-with-body", 304)])
def test_a_204_or_304_carries_no_body_and_keeps_the_connection_in_step(conn, kind, status):
    reply = get(conn, kind)
    assert (reply.status, reply.body) == (status, b"")
    assert "content-length" not in reply.headers and "transfer-encoding" not in reply.headers
    still_in_step(conn)


def test_hop_by_hop_headers_set_by_a_handler_are_dropped(conn):
    reply = get(conn, "hop-by-hop")
    assert reply.status == 200 and reply.body == b"whole"
    names = [name for name, _ in reply.raw_headers]
    for hop in ("transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer", "proxy-authenticate"):
        assert hop not in names
    assert names.count("content-length") == 1 and reply.headers["content-length"] == "5"
    assert reply.headers["x-kept"] == "yes"
    assert [v for n, v in reply.raw_headers if n == "x-multi"] == ["1", "2"]
    still_in_step(conn)  # the handler's `Connection: close` did not close it


@pytest.mark.parametrize("kind", ["crlf-value", "crlf-name", "crlf-cookie"])
def test_cr_lf_in_a_header_is_502_not_a_dropped_connection_or_an_injected_header(conn, kind):
    reply = get(conn, kind)
    assert_502(reply, "malformed Lambda proxy response")
    assert "set-cookie" not in reply.headers and "x-evil" not in reply.headers
    still_in_step(conn)


# ---- shapes and types --------------------------------------------------------------------------


@pytest.mark.parametrize("kind, complaint", [
    ("bad-base64", "not base64"),
    ("non-ascii-base64", "not base64"),
    ("base64-flag-string", "isBase64Encoded must be a boolean"),
    ("multi-as-list", "multiValueHeaders must be an object of lists"),
    ("multi-string-value", "multiValueHeaders must be an object of lists"),
    ("multi-object-value", "multiValueHeaders values must be strings"),
    ("cookies-string", "cookies must be a list of strings"),
    ("header-list-value", "headers values must be strings"),
    ("status-100", "statusCode must be an integer from 200 to 599"),
    ("status-101", "statusCode must be an integer from 200 to 599"),
    ("status-103", "statusCode must be an integer from 200 to 599"),
    ("status-600", "statusCode must be an integer from 200 to 599"),
    ("status-string", "statusCode must be an integer from 200 to 599"),
])
def test_a_malformed_proxy_response_is_502_with_the_json_body(conn, kind, complaint):
    assert_502(get(conn, kind), complaint)
    still_in_step(conn)
