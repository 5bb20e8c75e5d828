"""aws-xray-sdk in a function, on a real node: `LAMBDA_TASK_ROOT` (set before the app file
is imported) makes it take itself for Lambda; with Lambda's `_X_AMZN_TRACE_ID` and
`AWS_XRAY_*` variables it traces quietly when the trace is unsampled (a caller's
`traceparent` said so) and sends its segments to the daemon's address when the trace is
sampled."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support import NodeProcess, platform_tracebacks, write_app

#: the SDK imported by the app file (in the zygote) and by a handler module (in the instance)
APP = """
    import http.client
    import os

    import boto3
    from aws_xray_sdk.core import patch_all, xray_recorder

    from squall import App

    patch_all()
    app = App("xray")


    def work():
        with xray_recorder.in_subsegment("work") as work:
            work.put_annotation("order", "o1")
        xray_recorder.begin_subsegment("manual")
        xray_recorder.end_subsegment()
        boto3.client("s3", region_name="us-east-1")  # botocore is patched
        connection = http.client.HTTPConnection("127.0.0.1", {upstream})  # httplib is patched
        connection.request("GET", "/")
        return connection.getresponse().status


    @app.http("GET", "/traced", timeout=30)  # a boto3 client at 128 MB's CPU share: slow on a busy machine
    def traced(event, ctx):
        return {{"status": work(), "sampled": os.environ["_X_AMZN_TRACE_ID"].endswith("Sampled=1"),
                "xray": {{k: v for k, v in os.environ.items() if k.startswith("AWS_XRAY_")}}}}


    @app.http("GET", "/sampled", timeout=30)
    def sampled(event, ctx):
        # a sampled invocation, as a caller's trace header will make it once tracing lands
        os.environ["_X_AMZN_TRACE_ID"] = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
        return {{"status": work()}}


    app.http("GET", "/module", handler="traced_module.handler", timeout=30)
"""

MODULE = """
    from aws_xray_sdk.core import patch_all, xray_recorder

    patch_all()


    def handler(event, context):
        with xray_recorder.in_subsegment("in-module"):
            pass
        return {"ok": True}
"""

#: what the SDK logs when it misbehaves: per call, so many calls would flood the log
COMPLAINTS = ("cannot find the current segment", "SegmentNotFoundException", "Unable to write to",
              "discarded", "aws_xray_sdk")


class _Upstream(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def daemon():
    """A UDP socket where the X-Ray daemon would listen."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


@pytest.fixture(scope="module")
def node(tmp_path_factory, daemon):
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    directory = tmp_path_factory.mktemp("xray")
    write_app(directory, MODULE, name="traced_module.py")
    app = write_app(directory, APP.format(upstream=upstream.server_address[1]))
    with pytest.MonkeyPatch.context() as patch:  # the operator's daemon, exported on the node
        patch.setenv("AWS_XRAY_DAEMON_ADDRESS", f"127.0.0.1:{daemon.getsockname()[1]}")
        with NodeProcess(app) as running:
            running.daemon = f"127.0.0.1:{daemon.getsockname()[1]}"
            yield running
    upstream.shutdown()


def _complaints(log: str) -> list[str]:
    return [line for line in log.splitlines() if any(word in line for word in COMPLAINTS)]


#: a caller that does not sample its trace: the invocations it makes are not sampled either
UNSAMPLED = {"traceparent": "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-00"}


def test_untraced_invocations_are_quiet_and_correct(node):
    with node.client(headers=UNSAMPLED) as client:
        for _ in range(5):
            assert client.get("/traced").json() == {"status": 204, "sampled": False, "xray": {
                "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR", "AWS_XRAY_DAEMON_ADDRESS": node.daemon}}
            assert client.get("/module").json() == {"ok": True}
    log = node.log()
    assert _complaints(log) == [], log
    assert platform_tracebacks(log) == 0 and "Traceback" not in log, log


def test_a_sampled_invocation_sends_its_segments_to_the_daemon(node, daemon):
    with node.client() as client:
        assert client.get("/sampled").json() == {"status": 204}
    names = set()
    while "work" not in names:
        header, _, body = daemon.recv(65536).partition(b"\n")
        assert json.loads(header) == {"format": "json", "version": 1}
        segment = json.loads(body)
        assert segment["trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
        names.add(segment["name"])
    assert _complaints(node.log()) == []
