"""Frameworks behind Mangum build their absolute URLs from the x-forwarded-* headers API
Gateway adds: on a plain-HTTP node they must say http, or a redirect leads nowhere."""

from __future__ import annotations

from tests.support import NodeProcess, write_app

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
