"""Frameworks behind Mangum build their absolute URLs from the x-forwarded-* headers API
Gateway adds: on a plain-HTTP node they must say http, or a redirect leads nowhere."""

from __future__ import annotations

import pytest

from tests.support import NodeProcess, squall, write_app

APP = """
    from fastapi import FastAPI
    from mangum import Mangum

    from squall import App

    api = FastAPI()


    @api.get("/things/")
    def things():
        return {"things": []}


    app = App("forwarded")
    app.http("ANY", "/{proxy+}", Mangum(api, lifespan="off"), name="api")
"""


def test_a_framework_redirect_on_a_plain_http_node_can_be_followed(tmp_path):
    with NodeProcess(write_app(tmp_path, APP)) as node, node.client() as client:
        redirect = client.get("/things")  # FastAPI redirects to the trailing slash, absolute
        assert redirect.status_code == 307
        assert redirect.headers["location"] == f"http://127.0.0.1:{node.port}/things/"
        assert client.get("/things", follow_redirects=True).json() == {"things": []}


ECHO = """
    from squall import App

    app = App("proxied")


    @app.http("GET", "/whoami")
    def whoami(event, ctx):
        headers = event["headers"]
        return {"for": headers["x-forwarded-for"], "proto": headers["x-forwarded-proto"],
                "sourceIp": event["requestContext"]["http"]["sourceIp"]}
"""

PROXY_HEADERS = {"x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https"}


@pytest.mark.parametrize(("trusted", "seen"), [
    (None, {"for": "203.0.113.7", "proto": "https", "sourceIp": "203.0.113.7"}),  # loopback is trusted by default
    ("10.0.0.0/8", {"for": "203.0.113.7, 127.0.0.1", "proto": "http", "sourceIp": "127.0.0.1"}),
], ids=["trusted", "untrusted"])
def test_a_trusted_proxys_forwarded_headers_are_believed(tmp_path, trusted, seen):
    """Behind a trusted reverse proxy the event names the real client and scheme; from any
    other address the headers are the client's own claim: API Gateway appends the address
    it saw, and the scheme is how the node was reached."""
    extra = ["--forwarded-allow-ips", trusted] if trusted else []
    with NodeProcess(write_app(tmp_path, ECHO), extra=extra) as node, node.client() as client:
        assert client.get("/whoami", headers=PROXY_HEADERS).json() == seen


def test_forwarded_allow_ips_are_checked(tmp_path):
    result = squall("run", str(write_app(tmp_path, ECHO)), "--forwarded-allow-ips", "127.0.0.1,nope", cwd=tmp_path)
    assert result.returncode == 2
    assert "'nope' is not an IP address, a network or '*'" in result.stderr
