"""What crosses the wire between instances and their node, attacked after issue 8 was
worked: integers JSON holds but orjson does not, and a message naming a function the
node does not know.

Results, nested payloads and asynchronous payloads are JSON since results stopped being
pickles; orjson silently decodes an integer beyond 64 bits as a float, so a handler that
returned 2**70 reached its caller as 1.1805916207174113e+21 (Lambda's runtime, `json`,
keeps it exact).
"""

from __future__ import annotations

import json

import pytest

from squall.backends import open_backend
from tests.support import NodeProcess, platform_tracebacks, squall, wait_until, write_app

APP = """
    import gc
    import json
    import struct

    from squall import App
    from squall.runtime import instance

    app = App("wire")

    BIG = [2**70, -(2**63) - 1, 2**64, -(10**40), 12345678901234567890123]


    @app.http("GET", "/big")
    def big(event, ctx):
        return {"values": BIG, "text": "12345678901234567890123", "float": 1.5e30}


    @app.function()
    def echo(event, ctx):
        return event


    @app.http("GET", "/nested")
    def nested(event, ctx):
        back = ctx.invoke("echo", {"values": BIG})
        return {"exact": back["values"] == BIG and all(type(v) is int for v in back["values"])}


    @app.function()
    def check(event, ctx):
        ctx.table("seen").put("async", {"exact": event["values"] == BIG})


    @app.http("GET", "/async")
    def send_async(event, ctx):
        return {"id": ctx.invoke_async("check", {"values": BIG})}


    @app.http("GET", "/call-unknown")
    def call_unknown(event, ctx):
        # what an instance whose app differs from the node's (a zygote restarted on a changed
        # file) or a handler writing on its socket sends: a Call for a function the node lacks
        sock = next(o for o in gc.get_objects() if isinstance(o, instance._Instance)).sock
        data = json.dumps([2, "added_since", {}, {}]).encode()
        sock.sendall(struct.pack("!I", len(data)) + data)
        (size,) = struct.unpack("!I", sock.recv(4))
        reply = json.loads(sock.recv(size))
        return {"reply": reply}


    @app.http("GET", "/forge")
    def forge(event, ctx):
        # a result written on the socket ahead of the real one: the real one is then stale
        sock = next(o for o in gc.get_objects() if isinstance(o, instance._Instance)).sock
        data = json.dumps([1, ctx.aws_request_id, True, {"forged": True}, 0.0, 0]).encode()
        sock.sendall(struct.pack("!I", len(data)) + data)
        return {"forged": False}
"""


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    directory = tmp_path_factory.mktemp("attack-wire")
    app_path = write_app(directory, APP)
    with NodeProcess(app_path, backend=f"sqlite:///{directory}/state.db") as running:
        running.directory = directory
        yield running


BIG = [2**70, -(2**63) - 1, 2**64, -(10**40), 12345678901234567890123]


def test_a_result_with_integers_beyond_64_bits_arrives_exact(node):
    with node.client() as client:
        response = client.get("/big")
    assert response.status_code == 200
    assert json.loads(response.text) == {"values": BIG, "text": "12345678901234567890123", "float": 1.5e30}
    assert "e+" not in response.text.split('"float"')[0]


def test_a_nested_invoke_carries_big_integers_exactly_both_ways(node):
    with node.client() as client:
        assert client.get("/nested").json() == {"exact": True}


def test_an_async_payload_carries_big_integers_exactly(node):
    with node.client() as client:
        assert client.get("/async").status_code == 200
    backend = open_backend(f"sqlite:///{node.directory}/state.db")
    try:
        item = wait_until(lambda: backend.table_get("seen", "async"), timeout=15, message="the async invocation")
        assert item.value == {"exact": True}
    finally:
        backend.close()


def test_invoke_prints_big_integers_exactly(node):
    result = squall("invoke", str(node.app_path), "echo", "--data", json.dumps({"n": 2**70}),
                    "--backend", f"sqlite:///{node.directory}/state.db")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"n": 2**70}


def test_a_call_for_a_function_the_node_does_not_know_fails_the_call_not_the_request(node):
    with node.client() as client:
        response = client.get("/call-unknown")
    assert response.status_code == 200, response.text
    reply = response.json()["reply"]
    assert reply[0] == 3 and reply[1] is False  # a Reply: the call failed...
    assert reply[2]["errorType"] == "ResourceNotFoundException" and "added_since" in reply[2]["errorMessage"]
    assert platform_tracebacks(node.log()) == 0  # ...and nothing escaped into the node


def test_a_stale_result_on_an_instances_socket_replaces_the_instance(node):
    """The forged result answers its own request (same function, same caller); the real one
    arrives late, names the wrong request, and the instance is replaced, not believed."""
    with node.client() as client:
        assert client.get("/forge").json() == {"forged": True}
        stale = client.get("/forge")  # the warm instance: its socket holds the stale result
        assert stale.status_code == 502
        assert client.get("/forge").json() == {"forged": True}  # a fresh instance
