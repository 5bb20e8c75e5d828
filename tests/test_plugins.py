"""The core's extension points, used as the next trigger kinds and features will use them:
a source defined only here plugs in without touching `squall/`, and an interceptor sees
every invocation whatever its trigger, with headers that cross into the instance."""

from __future__ import annotations

import asyncio
import os
import sys

import httpx
import pytest

from squall.backends import open_backend
from squall.core.pipeline import Interceptor, InvokeRequest
from squall.loader import load_app
from squall.node import Node, NodeSettings
from squall.services import Queue, Table
from squall.testing import Harness
from tests.support import NodeProcess, squall, wait_until, write_app

#: A trigger kind of its own: invoke a function every `every` seconds. A source runs in
#: the node, which never imports the app, so it is installed code: a module on the path
#: (PYTHONPATH here), not in the app's directory.
PLUGIN = '''
import asyncio
from dataclasses import dataclass
from typing import ClassVar

from squall import App
from squall.core.checks import check_number
from squall.core.lifecycle import PeriodicService, Progress
from squall.core.pipeline import InvokeRequest
from squall.sources import Source, Trigger, register


@dataclass(frozen=True, kw_only=True)
class Tick(Trigger):
    kind: ClassVar[str] = "tick"
    every: float

    def __post_init__(self):
        check_number("tick interval", self.every, 0.01, 3600)

    def describe(self):
        return f"tick every {self.every}s -> {self.function}"


class Ticker(PeriodicService):
    def __init__(self, node, trigger):
        super().__init__()
        self.node, self.trigger, self.interval, self.count = node, trigger, trigger.every, 0
        self.name = f"ticker:{trigger.function}"

    async def step(self):
        self.count += 1
        invocation = await self.node.invoke(InvokeRequest(self.trigger.function, {"tick": self.count}, "tick"))
        return Progress(1, int(invocation.ok), int(not invocation.ok))


@register
class TickSource(Source):
    kind = "tick"
    trigger = Tick

    def provision(self, backend):
        for t in self.triggers:  # idempotent: every node and restart writes the same thing
            backend.table_put("tick-registry", t.function, {"every": t.every})

    def services(self, node):
        return [Ticker(node, t) for t in self.triggers]


'''

TICKS = '''
from squall import App
from tickplugin import Tick

app = App("ticking")


@app.trigger(Tick(every=0.05))
def heartbeat(event, ctx):
    ctx.table("beats").put("last", event["tick"])


@app.function()
def echo(event, ctx):
    return {"headers": dict(ctx.invocation_headers)}


@app.function()
def nested(event, ctx):
    return ctx.invoke("echo", {})


@app.on_queue("hops", batch_size=1)
def hop(event, ctx):
    ctx.table("hops").put(event["Records"][0]["body"], dict(ctx.invocation_headers))


@app.http("GET", "/echo")
def http_echo(event, ctx):
    return dict(ctx.invocation_headers)


@app.function()
def fire_and_forget(event, ctx):
    return ctx.invoke_async("hop_async", {"n": 1})


@app.function()
def hop_async(event, ctx):
    ctx.table("hops").put("async", dict(ctx.invocation_headers))
'''


@pytest.fixture
def plugin_path(tmp_path_factory, monkeypatch):
    """The tick plugin installed where this process and the nodes it starts find it
    (outside the app's directory)."""
    plugins = tmp_path_factory.mktemp("plugins")
    write_app(plugins, PLUGIN, name="tickplugin.py")
    monkeypatch.syspath_prepend(str(plugins))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")])))
    return plugins


@pytest.fixture(autouse=True)
def _forget_plugin():
    yield
    sys.modules.pop("tickplugin", None)


def test_a_source_defined_outside_squall_runs_in_the_harness(tmp_path, plugin_path):
    app = load_app(str(write_app(tmp_path, TICKS)))
    with Harness(app) as h:
        assert h.table("tick-registry").get("heartbeat") == {"every": 0.05}
        assert h.table("beats").get("last") is None
        h.step()
        h.step()
        assert h.table("beats").get("last") == 2


def test_a_source_defined_outside_squall_runs_on_a_real_node(tmp_path, plugin_path):
    app = write_app(tmp_path, TICKS)
    with NodeProcess(app) as node:
        state = open_backend(f"sqlite:///{tmp_path}/.squall/state.db")
        try:
            beats = Table(state, "beats")
            wait_until(lambda: (beats.get("last") or 0) >= 5, timeout=20, message="ticks")
            assert Table(state, "tick-registry").get("heartbeat") == {"every": 0.05}
        finally:
            state.close()
        assert "tick every 0.05s -> heartbeat" in node.log()  # the source's own start-up line


class Hops(Interceptor):
    """Counts every invocation it sees and stamps it with a header."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def __call__(self, request, call_next):
        self.seen.append((request.function, request.trigger))
        request.headers["x-hop"] = str(len(self.seen))
        invocation = await call_next(request)
        if invocation.ok and request.function == "echo":
            invocation.result["intercepted"] = True  # the chain may also rewrite what comes back
        return invocation


def test_an_interceptor_sees_every_trigger_and_its_headers_reach_the_instance(tmp_path, plugin_path):
    """On the process runtime: the headers cross the wire into a forked instance."""
    app_path = write_app(tmp_path, TICKS)
    hops = Hops()

    async def scenario() -> None:
        backend = open_backend(f"sqlite:///{tmp_path}/state.db")
        node = await Node.load(str(app_path), backend, str(tmp_path / "objects"), NodeSettings(interceptors=[hops]))
        await node.start()
        try:
            echo = await node.invoke(InvokeRequest("echo", {}))
            # beside the trace context tracing puts there (the invocation's own span)
            headers = echo.result["headers"]
            assert headers.pop("traceparent").startswith("00-")
            assert echo.result == {"headers": {"x-hop": "1"}, "intercepted": True}

            nested = await node.invoke(InvokeRequest("nested", {}))
            # the nested call carries the caller's headers on, and is stamped again
            assert nested.result["headers"]["x-hop"] == str(hops.seen.index(("echo", "invoke"), 1) + 1)

            from squall.gateway import build_gateway

            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_gateway(node)),
                                         base_url="http://node") as client:
                response = await client.get("/echo")
            assert response.json()["x-hop"] == str(hops.seen.index(("http_echo", "http")) + 1)

            await asyncio.to_thread(Queue(backend, "hops").send, "q-1")
            await node.invoke(InvokeRequest("fire_and_forget", {}))
            hops_table = Table(backend, "hops")
            for _ in range(200):
                if hops_table.get("q-1") and hops_table.get("async"):
                    break
                await asyncio.sleep(0.05)
            assert hops_table.get("q-1")["x-hop"] == str(hops.seen.index(("hop", "queue")) + 1)
            assert hops_table.get("async")["x-hop"] == str(hops.seen.index(("hop_async", "async")) + 1)
        finally:
            await node.stop()
            backend.close()

    asyncio.run(scenario())
    triggers = {trigger for _, trigger in hops.seen}
    assert {"invoke", "http", "queue", "async", "tick"} <= triggers


def test_the_startup_log_lists_every_source(tmp_path, plugin_path):
    app = write_app(tmp_path, TICKS)
    with NodeProcess(app) as node:
        wait_until(lambda: "hops" in node.log(), timeout=10, message="start-up log")
        log = node.log()
    assert "route GET     /echo -> http_echo" in log
    assert "queue hops -> hop (batch 1, dlq hops-dlq)" in log
    assert "tick every 0.05s -> heartbeat" in log


class Broken(Interceptor):
    """An interceptor with a bug: it raises for one function."""

    async def __call__(self, request, call_next):
        if request.function in ("echo", "hop"):
            raise RuntimeError("interceptor bug")
        return await call_next(request)


def test_an_interceptor_that_raises_fails_its_invocation_not_the_node(tmp_path, plugin_path):
    """The request gets the gateway's JSON 500, the queue message is retried (not lost),
    the failure is metered, and the node serves other functions on."""
    app_path = write_app(tmp_path, TICKS)

    async def scenario() -> None:
        from squall.gateway import build_gateway
        from squall.observability.metering import read_records

        backend = open_backend(f"sqlite:///{tmp_path}/state.db")
        node = Node(load_app(str(app_path)), backend, str(tmp_path / "objects"), NodeSettings(interceptors=[Broken()]))
        await node.start(background=False)
        try:
            failed = await node.invoke(InvokeRequest("echo", {}))
            assert failed.error is not None and failed.error.error_type == "Squall.PipelineError"
            assert "interceptor bug" in str(failed.error)
            assert (await node.invoke(InvokeRequest("nested", {}))).error is not None  # its nested echo fails
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_gateway(node)),
                                         base_url="http://node") as client:
                ok = await client.get("/echo")
            assert ok.status_code == 200  # http_echo is another function: served
            await asyncio.to_thread(Queue(backend, "hops").send, "q-1")
            consumer = next(s for s in node.services.all if "hops" in s.consumes)
            progress = await consumer.step()
            assert (progress.invocations, progress.failed) == (1, 1)
            stats = backend.queue_stats("hops")
            assert stats.total == 1 and stats.visible == 0  # waiting for its retry, not lost
            await node.meter.step()
            outcomes = [r["outcome"] for r in read_records(backend) if r["function"] == "echo"]
            assert outcomes[:1] == ["error"]
        finally:
            await node.stop()
            backend.close()

    asyncio.run(scenario())


def test_a_source_defined_in_the_app_directory_is_refused_by_the_node(tmp_path):
    """Sources run in the node; the node runs no code of the app's: one clear line."""
    write_app(tmp_path, PLUGIN, name="tickplugin.py")
    app = write_app(tmp_path, TICKS)
    result = squall("invoke", str(app), "echo", cwd=tmp_path)
    assert result.returncode == 1
    assert "trigger kind 'tick' is defined in the app (tickplugin.py)" in result.stderr
    assert "Traceback" not in result.stderr
