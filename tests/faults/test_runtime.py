"""Faults of the runtime itself, on real `squall run` nodes: the zygote killed or stopped,
an instance that tries to run code in the node, an app whose import-time code would run
in the node, payloads nested deeper than decoders go."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from squall.backends import open_backend
from tests.support import NodeProcess, free_port, squall, wait_until, write_app

APP = """
    import os
    import pathlib

    from squall import App

    # module-level code: it must run in the zygote only, never in the node
    pathlib.Path(os.environ["MARKS"], f"imported-{os.getpid()}").touch()

    app = App("faults")


    @app.http("GET", "/hello")
    def hello(event, ctx):
        return {"pid": os.getpid()}


    @app.http("GET", "/slow")
    def slow(event, ctx):
        import time
        time.sleep(2.5)
        return {}


    @app.http("GET", "/kill-zygote")
    def kill_zygote(event, ctx):
        os.kill(os.getppid(), 9)
        return {"killed": os.getppid()}


    class Evil(dict):
        def __reduce__(self):
            return (os.system, (f"touch {os.environ['MARKS']}/pwned",))


    @app.http("GET", "/evil")
    def evil(event, ctx):
        return Evil(looks="harmless")


    @app.http("GET", "/deep/{depth}")
    def deep(event, ctx):
        value = []
        for _ in range(int(event["pathParameters"]["depth"])):
            value = [value]
        return value


    @app.http("POST", "/validated", request_schema={"type": "array"})
    def validated(event, ctx):
        return {"length": len(event["body"])}


    @app.on_queue("work", batch_size=1, max_receive_count=2, visibility_timeout=10)
    def work(event, ctx):
        ctx.table("done").put(event["Records"][0]["body"], True)


    @app.function()
    def nest(event, ctx):
        depth = 0
        while isinstance(event, list) and event:
            event, depth = event[0], depth + 1
        ctx.table("nested").put("depth", depth)
        return depth
"""


@pytest.fixture
def marks(tmp_path, monkeypatch):
    directory = tmp_path / "marks"
    directory.mkdir()
    monkeypatch.setenv("MARKS", str(directory))
    return directory


def children(pid: int) -> list[int]:
    """Direct children of a process, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def zygote_of(node: NodeProcess) -> int:
    assert node.process is not None
    for pid in children(node.process.pid):
        try:
            if b"squall.runtime.zygote" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    raise AssertionError("the node has no zygote")


def health(port: int) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)


def test_a_killed_zygote_is_restarted_and_the_node_reports_itself_unhealthy_meanwhile(tmp_path, marks):
    app = write_app(tmp_path, APP)
    admin = free_port()
    with NodeProcess(app, extra=["--admin-port", str(admin), "--keep-alive", "0.1"]) as node, node.client() as client:
        assert client.get("/hello").status_code == 200
        assert health(admin).json()["status"] == "ok"
        first = zygote_of(node)
        os.kill(first, signal.SIGSTOP)  # hold it down long enough to see the outage...
        os.kill(first, signal.SIGKILL)  # ...then kill it, as the OOM killer would
        outage = wait_until(lambda: (r := health(admin)).status_code == 503 and r.json(), timeout=10,
                            message="the node to report the dead zygote")
        assert outage["status"] == "unhealthy" and "zygote" in outage["problems"]["runtime"]
        wait_until(lambda: health(admin).status_code == 200, timeout=10, message="the zygote to be restarted")
        assert zygote_of(node) != first
        assert client.get("/hello").status_code == 200  # served again: no request is a 502 for ever
        nodes = squall("nodes", "--backend", f"sqlite:///{tmp_path}/.squall/state.db")
        assert "ok" in nodes.stdout
    assert "restarting it" in node.log() and "zygote restarted" in node.log()


def test_invocations_in_flight_when_the_zygote_dies_get_503_at_once(tmp_path, marks):
    """Their instances die with the zygote, which can no longer say how: the node answers
    without waiting for an exit notice that cannot come."""
    import concurrent.futures

    app = write_app(tmp_path, APP)
    with NodeProcess(app) as node:
        def call() -> tuple[int, float]:
            response = httpx.get(f"{node.url}/slow", timeout=10)
            return response.status_code, time.monotonic()

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            calls = [pool.submit(call) for _ in range(3)]
            time.sleep(1.0)  # all three are in their handlers
            os.kill(zygote_of(node), signal.SIGKILL)
            killed = time.monotonic()
            answers = [future.result() for future in calls]
    assert [status for status, _ in answers] == [503, 503, 503]
    assert max(at - killed for _, at in answers) < 0.5  # not the 1 s an exit notice was awaited


def test_a_handler_that_kills_its_zygote_does_not_take_the_node_down(tmp_path, marks):
    app = write_app(tmp_path, APP)
    with NodeProcess(app) as node, node.client() as client:
        client.get("/kill-zygote")  # refused by the sandbox, or a crash: either way not the node's end
        wait_until(lambda: client.get("/hello").status_code == 200, timeout=10, message="the node to serve again")


def test_queue_messages_wait_while_the_runtime_is_down_instead_of_dead_lettering(tmp_path, marks):
    url = f"sqlite:///{tmp_path}/.squall/state.db"
    app = write_app(tmp_path, APP)
    with NodeProcess(app, backend=url) as node:
        zygote = zygote_of(node)
        os.kill(zygote, signal.SIGSTOP)  # wedged: no cold start can happen
        squall("send", "work", "during-the-outage", "--backend", url)
        time.sleep(6.5)  # past the fork timeout: the node kills the wedged zygote and restarts it
        backend = open_backend(url)
        try:
            wait_until(lambda: backend.table_get("done", "during-the-outage"), timeout=20,
                       message="the message to be processed once the runtime is back")
            assert backend.queue_stats("work-dlq").total == 0
        finally:
            backend.close()
    assert "did not answer a fork" in node.log()


def test_a_stopped_zygote_fails_cold_starts_within_the_fork_timeout(tmp_path, marks):
    app = write_app(tmp_path, APP)
    with NodeProcess(app) as node, node.client(timeout=30) as client:
        os.kill(zygote_of(node), signal.SIGSTOP)
        began = time.monotonic()
        response = client.get("/hello")
        assert time.monotonic() - began < 8  # not the client's own timeout
        assert response.status_code == 503
        assert response.json()["message"] == "Service Unavailable"
        wait_until(lambda: client.get("/hello").status_code == 200, timeout=15, message="a restarted zygote")


def test_an_instance_cannot_run_code_in_the_node_through_its_result(tmp_path, marks):
    app = write_app(tmp_path, APP)
    with NodeProcess(app) as node, node.client() as client:
        response = client.get("/evil")
        assert response.status_code == 200 and response.json() == {"looks": "harmless"}
    assert not (marks / "pwned").exists()


def test_the_node_never_imports_the_app(tmp_path, marks):
    """Module-level code runs in the zygote (which instances fork from), not in the node;
    a module in the app directory named like a standard one is imported by neither."""
    write_app(tmp_path, """
        import os, pathlib
        pathlib.Path(os.environ["MARKS"], f"shadow-{os.getpid()}").touch()
    """, name="sqlite3.py")
    app = write_app(tmp_path, APP)
    with NodeProcess(app) as node, node.client() as client:
        assert client.get("/hello").status_code == 200
        assert node.process is not None
        zygote = zygote_of(node)
        imported = {p.name for p in marks.iterdir()}
        assert imported == {f"imported-{zygote}"}  # not imported-<node pid>, no shadow-*


@pytest.mark.parametrize("depth, status", [(900, 200), (3000, 500)])  # 500: a function error
def test_a_deep_result_is_returned_or_a_marshal_error_never_a_crash(tmp_path, marks, depth, status):
    app = write_app(tmp_path, APP)
    with NodeProcess(app) as node, node.client() as client:
        response = client.get(f"/deep/{depth}")
        assert response.status_code == status
        if status == 200:
            value, levels = response.json(), 0
            while value:
                value, levels = value[0], levels + 1
            assert levels == depth
        assert client.get("/hello").status_code == 200


def test_deep_json_bodies_pass_through_or_get_a_clear_400_from_a_schema(tmp_path, marks):
    """A body is not parsed on its way to the function; where a route's schema makes the
    gateway parse it, a body nested past 1,024 levels is a quick 400, never a RecursionError."""
    app = write_app(tmp_path, APP)
    deep = b"[" * 5000 + b"]" * 5000
    with NodeProcess(app) as node, node.client() as client:
        response = client.request("GET", "/hello", content=deep, headers={"content-type": "application/json"})
        assert response.status_code == 200, response.text
        for body in (b"[" * 100_000, deep):
            began = time.monotonic()
            response = client.post("/validated", content=body, headers={"content-type": "application/json"})
            assert time.monotonic() - began < 1
            assert response.status_code == 400 and response.json()["error"] == "BadRequestBody"
            assert "depth limit exceeded" in response.json()["detail"]
        assert client.post("/validated", content=b"[[[]]]").json() == {"length": 6}
    assert "RecursionError" not in node.log()


def test_a_poison_async_payload_is_dead_lettered_at_once_with_the_reason(tmp_path, marks):
    """A payload the node cannot decode goes to the DLQ now, not after three attempts."""
    url = f"sqlite:///{tmp_path}/.squall/state.db"
    app = write_app(tmp_path, APP)
    with NodeProcess(app, backend=url) as node:
        backend = open_backend(url)
        try:
            backend.enqueue("async.nest", "[" * 2000 + "]" * 2000)  # deeper than any decoder here goes
            backend.enqueue("async.nest", json.dumps(_nested(900)))  # deep, but fine
            wait_until(lambda: backend.queue_stats("async.nest-dlq").total == 1, timeout=5,
                       message="the poison payload in the DLQ")
            wait_until(lambda: backend.table_get("nested", "depth"), timeout=10, message="the deep payload handled")
            assert backend.table_get("nested", "depth").value == 900
            # The message is deleted once the invocation settles, just after the handler's write.
            wait_until(lambda: backend.queue_stats("async.nest").total == 0, timeout=5,
                       message="the deep payload's message settled")
        finally:
            backend.close()
    assert "cannot be delivered to nest" in node.log()


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def test_an_app_that_exits_at_import_says_so_in_one_line(tmp_path):
    app = write_app(tmp_path, """
        import sys
        sys.exit(3)
    """)
    for command in (["invoke", str(app), "f"], ["dev", str(app), "--port", str(free_port())]):
        result = squall(*command, cwd=tmp_path, timeout=30)
        assert result.returncode == 1
        assert "it called sys.exit(3) at import (app.py:3)" in result.stderr
        assert "Traceback" not in result.stderr


def test_a_config_error_points_at_the_users_line(tmp_path):
    app = write_app(tmp_path, """
        from squall import App

        app = App("bad")


        @app.function(timeout=-1)
        def f(event, ctx):
            return 1
    """)
    result = squall("invoke", str(app), "f", cwd=tmp_path)
    assert result.returncode == 1
    assert "invalid timeout -1" in result.stderr and "(app.py:7)" in result.stderr


def test_names_with_a_trailing_newline_are_refused(tmp_path):
    app = write_app(tmp_path, """
        from squall import App

        app = App("bad")
        app.function(lambda event, ctx: 1, name="ping\\n")
    """)
    result = squall("invoke", str(app), "ping", cwd=tmp_path)
    assert result.returncode == 1 and "invalid function name" in result.stderr


def test_deep_payloads_cross_every_hop(tmp_path):
    """900 levels: through `squall invoke --data` and `ctx.invoke`, into the instance and back."""
    app = write_app(tmp_path, APP + """

    @app.function()
    def relay(event, ctx):
        return ctx.invoke("nest", event)
    """)
    data = json.dumps(_nested(900))
    result = squall("invoke", str(app), "relay", "--data", data, cwd=tmp_path, env={"MARKS": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == 900


def test_a_zygote_that_cannot_restart_is_retried_with_backoff_until_the_app_loads(tmp_path, marks):
    """The app file broken on disk when the zygote dies: restarts fail, further apart each
    time, the node stays up and unhealthy, and heals once the file is fixed."""
    app = write_app(tmp_path, APP)
    admin = free_port()
    with NodeProcess(app, extra=["--admin-port", str(admin)]) as node, node.client() as client:
        assert client.get("/hello").status_code == 200
        good = app.read_text()
        app.write_text("this is not python\n")
        os.kill(zygote_of(node), signal.SIGKILL)
        wait_until(lambda: node.log().count("zygote restart failed") >= 3, timeout=15, message="failed restarts")
        assert client.get("/hello").status_code == 503
        assert health(admin).status_code == 503
        state = f"sqlite:///{tmp_path}/.squall/state.db"
        wait_until(lambda: "unhealthy: runtime: the zygote" in squall("nodes", "--backend", state).stdout,
                   timeout=10, message="squall nodes to show the node unhealthy")
        delays = [float(line.rsplit("in ", 1)[1].rstrip("s")) for line in node.log().splitlines()
                  if "restarting it in" in line]
        assert delays[:3] == [0.1, 0.2, 0.4]  # doubling
        app.write_text(good)
        wait_until(lambda: health(admin).status_code == 200, timeout=15, message="the zygote back")
        assert client.get("/hello").status_code == 200
