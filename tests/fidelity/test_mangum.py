"""FastAPI behind Mangum, unmodified: in the test harness and on a real `squall run` node.

Mangum drives the ASGI app with `asyncio.get_event_loop()`, as much Lambda code does: a
Lambda process's handler thread has a current event loop. The harness runs handlers on
worker threads, so each of them must have one too, reused across invocations and closed
with the harness.
"""

from __future__ import annotations

import asyncio
import runpy
import textwrap
import threading
from pathlib import Path

from squall import App
from squall.testing import Harness
from tests.support import NodeProcess, write_app

#: A FastAPI app with its Lambda entry point, as its author deploys it to Lambda.
API_MODULE = """
    from fastapi import FastAPI
    from fastapi.responses import RedirectResponse
    from mangum import Mangum
    from pydantic import BaseModel

    api = FastAPI()


    class Item(BaseModel):
        name: str
        price: float


    @api.get("/items/{item_id}")
    def read_item(item_id: int, q: str | None = None):
        return {"item_id": item_id, "q": q}


    @api.post("/items", status_code=201)
    def create_item(item: Item):
        return {"name": item.name, "price": item.price}


    @api.get("/old")
    def old():
        return RedirectResponse("/items/7?q=moved", status_code=307)


    handler = Mangum(api, lifespan="off")
"""


def exercise(client) -> None:
    """What the FastAPI app answers, the same in the harness and on a node."""
    response = client.get("/items/42", params={"q": "tea"})
    assert response.status_code == 200
    assert response.json() == {"item_id": 42, "q": "tea"}

    response = client.post("/items", json={"name": "Tea", "price": 4.5})
    assert response.status_code == 201
    assert response.json() == {"name": "Tea", "price": 4.5}

    response = client.post("/items", json={"name": "Tea"})
    assert response.status_code == 422  # FastAPI's own validation, not the gateway's
    assert response.json()["detail"][0]["loc"] == ["body", "price"]

    response = client.get("/items/not-a-number")
    assert response.status_code == 422

    response = client.get("/nothing/here")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}  # FastAPI's 404: the catch-all route reached it

    response = client.get("/old")
    assert response.status_code == 307
    assert response.headers["location"] == "/items/7?q=moved"


def test_harness_runs_a_mangum_app_built_per_invocation(tmp_path: Path):
    from mangum import Mangum

    api = runpy.run_path(str(write_app(tmp_path, API_MODULE, "fastapi_api.py")))["api"]

    loops: list[tuple[int, asyncio.AbstractEventLoop]] = []
    app = App("mangum-harness")

    @app.http("ANY", "/{proxy+}")
    def proxy(event, context):
        loops.append((threading.get_ident(), asyncio.get_event_loop()))
        return Mangum(api, lifespan="off")(event, context)

    with Harness(app) as h:
        exercise(h)
        # each worker thread keeps its one loop from call to call
        assert len(set(loops)) == len({thread for thread, _ in loops}) < len(loops)
        assert not any(loop.is_closed() for _, loop in loops)
    assert all(loop.is_closed() for _, loop in loops)  # the harness closed its threads' loops


def test_a_handler_thread_keeps_a_current_loop_and_the_harness_closes_it():
    app = App("loops")
    pending: list[asyncio.Task] = []

    @app.function()
    def current(event, context):
        loop = asyncio.get_event_loop()
        if event.get("leave"):
            pending.append(loop.create_task(asyncio.sleep(3600)))  # as Mangum's lifespan task is left
            return "left"
        if event.get("close"):
            loop.close()  # whatever a handler does to it, the next invocation has a usable loop
            return "closed"
        if event.get("run"):
            return asyncio.run(asyncio.sleep(0, "ran"))  # leaves no current loop behind it
        return loop.run_until_complete(asyncio.sleep(0, id(loop)))

    with Harness(app) as h:
        first = h.invoke("current", {})
        assert h.invoke("current", {"run": True}) == "ran"
        assert h.invoke("current", {}) == first
        assert h.invoke("current", {"close": True}) == "closed"
        assert isinstance(h.invoke("current", {}), int)
        assert h.invoke("current", {"leave": True}) == "left"
    assert pending[0].cancelled()  # closing the harness cancelled it, as asyncio.run would


def test_node_runs_a_fastapi_app_behind_mangum_unmodified(tmp_path: Path):
    write_app(tmp_path, API_MODULE, "fastapi_api.py")
    app_path = write_app(tmp_path, """
        from squall import App

        app = App("mangum-node")
        app.http("ANY", "/{proxy+}", "fastapi_api.handler", name="api")
    """)
    with NodeProcess(app_path) as node, node.client(timeout=10) as client:
        exercise(client)
        response = client.get("/old", follow_redirects=True)
        assert response.status_code == 200
        assert response.json() == {"item_id": 7, "q": "moved"}
    assert "Traceback" not in node.log(), textwrap.shorten(node.log(), 2000)
