"""Traces end to end: real `squall run` nodes, real HTTP, the `squall traces` CLI, a real
OTLP/HTTP receiver, and two nodes on one Redis."""

from __future__ import annotations

import http.server
import json
import threading
import uuid

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from squall.backends import open_backend
from squall.observability.lineage import hop
from squall.observability.store import SPANS_STREAM
from tests.support import NodeProcess, squall, wait_until, write_app

INCOMING_TRACE = "0af7651916cd43dd8448eb211c80319c"
INCOMING_SPAN = "b7ad6b7169203331"

#: the hops of the issue's example: gateway -> queue -> consumer -> asynchronous invocation,
#: with a child span the handler makes with the plain OpenTelemetry API
FRONT = '''
import json
import os

from opentelemetry import trace

from squall import App

app = App("shop")
tracer = trace.get_tracer(__name__)


@app.http("POST", "/orders/{id}")
def place(event, ctx):
    with tracer.start_as_current_span("validate order") as span:
        span.set_attribute("order.id", event["pathParameters"]["id"])
    ctx.queue("orders").send(event["body"], attributes={"kind": "order"})
    return {"statusCode": 201, "body": json.dumps({"traceparent": ctx.invocation_headers.get("traceparent"),
                                                   "xray": os.environ["_X_AMZN_TRACE_ID"]})}


@app.http("GET", "/boom")
def boom(event, ctx):
    raise RuntimeError("boom")
'''

BACK = '''
import os

from squall import App

app = App("shop")


@app.on_queue("orders", batch_size=10)
def consume(event, ctx):
    for record in event["Records"]:
        # the trace context is SQS's system attribute, not one of the message's own
        assert set(record["messageAttributes"]) == {"kind"}, record["messageAttributes"]
        ctx.invoke_async("notify", {"traceHeader": record["attributes"].get("AWSTraceHeader")})


@app.function
def notify(event, ctx):
    ctx.table("seen").put(ctx.aws_request_id, {"xray": os.environ["_X_AMZN_TRACE_ID"],
                                               "traceHeader": event["traceHeader"]})
'''


#: ctx.invoke inside a span of the handler's own, and an asynchronous invocation retried once
CALLS = '''

@app.http("GET", "/chain")
def chain(event, ctx):
    with tracer.start_as_current_span("prepare"):
        ctx.invoke("lookup", {})
    ctx.invoke_async("flaky", {})
    return {"ok": True}


@app.function
def lookup(event, ctx):
    return 1


@app.function
def flaky(event, ctx):
    if not ctx.table("flaky").get("tried"):
        ctx.table("flaky").put("tried", True)
        raise RuntimeError("the first attempt fails")
'''


#: both halves in one app, for one node
SHOP = FRONT + BACK.replace('app = App("shop")\n', "").replace("import os\n", "")


def show(trace_id: str, cwd, backend: str | None = None) -> list[dict]:
    args = ["traces", "show", trace_id, "--json"] + (["--backend", backend] if backend else [])
    result = squall(*args, cwd=cwd)
    return [json.loads(line) for line in result.stdout.splitlines()] if result.returncode == 0 else []


def full_trace(trace_id: str, cwd, backend: str | None = None, count: int = 5) -> dict[str, dict]:
    """The trace's spans by name once all `count` have been flushed."""
    spans = wait_until(lambda: (found := show(trace_id, cwd, backend)) and len(found) >= count and found,
                       timeout=20, message=f"{count} spans of trace {trace_id}")
    assert len(spans) == count, [s["name"] for s in spans]
    return {span["name"]: span for span in spans}


def check_hops(spans: dict[str, dict], trace_id: str, http_parent: str) -> None:
    """Parentage, kinds, links and conventions of the five spans of one order."""
    assert {s["traceId"] for s in spans.values()} == {trace_id}
    http, validate, send = spans["POST /orders/{id}"], spans["validate order"], spans["send orders"]
    process, notify = spans["process orders"], spans["notify"]
    assert http["parentSpanId"] == http_parent
    assert http["kind"] == "SERVER"
    assert http["attributes"]["faas.trigger"] == "http"
    assert http["attributes"]["faas.name"] == "place"
    assert http["attributes"]["http.request.method"] == "POST"
    assert http["attributes"]["http.route"] == "/orders/{id}"
    assert http["attributes"]["url.path"] == "/orders/o1"
    assert http["attributes"]["http.response.status_code"] == 201
    assert isinstance(http["attributes"]["faas.coldstart"], bool)
    assert http["attributes"]["faas.invocation_id"]
    assert validate["parentSpanId"] == http["spanId"] and validate["kind"] == "INTERNAL"
    assert validate["attributes"] == {"order.id": "o1"}
    assert send["parentSpanId"] == http["spanId"] and send["kind"] == "PRODUCER"
    assert send["attributes"]["messaging.system"] == "aws_sqs"
    assert send["attributes"]["messaging.operation.type"] == "send"
    assert send["attributes"]["messaging.destination.name"] == "orders"
    assert process["kind"] == "CONSUMER" and process["parentSpanId"] == send["spanId"]
    assert process["links"] == [{"traceId": trace_id, "spanId": send["spanId"]}]
    assert process["attributes"]["faas.trigger"] == "pubsub"
    assert process["attributes"]["messaging.operation.type"] == "process"
    assert process["attributes"]["messaging.destination.name"] == "orders"
    assert process["attributes"]["messaging.message.id"] == send["attributes"]["messaging.message.id"]
    assert notify["parentSpanId"] == process["spanId"] and notify["kind"] == "SERVER"
    assert notify["attributes"]["faas.trigger"] == "other" and notify["attributes"]["faas.name"] == "notify"


def logged_functions(trace_id: str, cwd, backend: str | None = None) -> set[str]:
    """The functions with lines in `squall logs --trace-id`, once all three hops have some."""
    args = ["logs", "--trace-id", trace_id, "--since", "10m"] + (["--backend", backend] if backend else [])

    def functions() -> set[str]:
        lines = squall(*args, cwd=cwd).stdout.splitlines()
        return {line.split()[1] for line in lines if "START RequestId" in line}

    return wait_until(lambda: (found := functions()) >= {"place", "consume", "notify"} and found, timeout=10,
                      message=f"the log lines of trace {trace_id}")


def xray(trace_id: str, span_id: str) -> str:
    return f"Root=1-{trace_id[:8]}-{trace_id[8:]};Parent={span_id};Sampled=1"


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """One node on SQLite serving both halves of the shop."""
    directory = tmp_path_factory.mktemp("shop")
    app = write_app(directory, SHOP + CALLS)
    with NodeProcess(app) as node:
        yield node, directory


def test_one_trace_follows_the_order_through_every_hop(shop):
    node, directory = shop
    with node.client() as client:
        response = client.post("/orders/o1", content='{"id": "o1"}',
                               headers={"traceparent": f"00-{INCOMING_TRACE}-{INCOMING_SPAN}-01"})
    assert response.status_code == 201
    seen = response.json()
    spans = full_trace(INCOMING_TRACE, directory)
    check_hops(spans, INCOMING_TRACE, INCOMING_SPAN)
    http, process, notify = spans["POST /orders/{id}"], spans["process orders"], spans["notify"]
    # the runtime ran the handler with its own span's context, and the X-Ray header of it
    assert seen["traceparent"] == f"00-{INCOMING_TRACE}-{http['spanId']}-01"
    assert seen["xray"] == xray(INCOMING_TRACE, http["spanId"])
    backend = open_backend(f"sqlite:///{directory}/.squall/state.db")
    try:
        (row,) = [item.value for item in backend.table_scan("seen")]
    finally:
        backend.close()
    assert row["xray"] == xray(INCOMING_TRACE, notify["spanId"])
    # the AWSTraceHeader of the message `place` sent: its span, and (as on Lambda) the chain's lineage
    assert row["traceHeader"] == xray(INCOMING_TRACE, spans["send orders"]["spanId"]) + f";Lineage={hop(None, 'place')}"
    assert process["attributes"]["faas.name"] == "consume"

    listing = squall("traces", cwd=directory)
    assert listing.returncode == 0, listing.stderr
    (line,) = [line for line in listing.stdout.splitlines() if line.startswith(INCOMING_TRACE)]
    assert "POST /orders/{id}" in line and " 5 " in line and line.rstrip().endswith("ok")

    drawing = squall("traces", "show", INCOMING_TRACE, cwd=directory)
    assert drawing.returncode == 0, drawing.stderr
    rows = {line.split()[0]: line for line in drawing.stdout.splitlines()[2:] if line.strip()}
    assert "place" in rows["POST"] and "http" in rows["POST"] and "cold" in rows["POST"]
    assert "consume" in rows["process"] and "pubsub" in rows["process"]
    assert "notify" in rows["notify"] and "other" in rows["notify"]
    # depth shows as indentation: the consumer under the send, under the request
    indent = {name: len(line) - len(line.lstrip()) for name, line in rows.items()}
    assert indent["POST"] < indent["send"] < indent["process"] < indent["notify"]
    # each function's log lines carry the trace id
    assert logged_functions(INCOMING_TRACE, directory) == {"place", "consume", "notify"}


def test_a_request_without_traceparent_starts_a_sampled_trace_and_errors_are_marked(shop):
    node, directory = shop
    with node.client() as client:
        assert client.get("/boom").status_code == 500
    listing = wait_until(lambda: (r := squall("traces", "--errors", "--function", "boom", cwd=directory))
                         and "GET /boom" in r.stdout and r.stdout, timeout=10, message="the error trace")
    (line,) = [line for line in listing.splitlines() if "GET /boom" in line]
    trace_id = line.split()[0]
    assert trace_id != INCOMING_TRACE and len(trace_id) == 32 and line.rstrip().endswith("error")
    (span,) = show(trace_id, directory)
    assert span["parentSpanId"] == "" and span["status"]["code"] == "ERROR"
    assert span["attributes"]["http.response.status_code"] == 500
    assert span["attributes"]["error.type"] == "RuntimeError"
    # --errors leaves out the successful order of the other test
    assert INCOMING_TRACE not in squall("traces", "--errors", cwd=directory).stdout


def test_ctx_invoke_and_every_retry_of_invoke_async_continue_the_trace(shop):
    node, directory = shop
    trace_id = uuid.uuid4().hex
    with node.client() as client:
        assert client.get("/chain", headers={"traceparent": f"00-{trace_id}-{INCOMING_SPAN}-01"}).json() == {"ok": True}
    spans = wait_until(lambda: (found := show(trace_id, directory)) and len(found) >= 5 and found, timeout=20,
                       message="the chain's spans, the retry's included")
    by_name: dict[str, list[dict]] = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    (root,), (prepare,), (lookup,) = by_name["GET /chain"], by_name["prepare"], by_name["lookup"]
    assert prepare["parentSpanId"] == root["spanId"]
    assert lookup["parentSpanId"] == prepare["spanId"]  # called inside the handler's span
    assert lookup["attributes"]["faas.trigger"] == "other"
    first, retry = sorted(by_name["flaky"], key=lambda s: s["startTimeUnixNano"])
    assert first["parentSpanId"] == retry["parentSpanId"] == root["spanId"]
    assert first["status"]["code"] == "ERROR" and first["attributes"]["error.type"] == "RuntimeError"
    assert retry["status"]["code"] == "UNSET"
    # Lambda retries under the same request id
    assert first["attributes"]["faas.invocation_id"] == retry["attributes"]["faas.invocation_id"]


class Receiver(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver: POST /v1/traces with an ExportTraceServiceRequest."""

    requests: list[ExportTraceServiceRequest] = []

    def do_POST(self) -> None:  # noqa: N802 - the handler's API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces" and self.headers["Content-Type"] == "application/x-protobuf":
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            Receiver.requests.append(request)
            self.send_response(200)
        else:
            self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_an_otlp_receiver_gets_the_spans_squall_traces_shows(tmp_path, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "shop-service")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    app = write_app(tmp_path, SHOP)
    trace_id = uuid.uuid4().hex
    try:
        with NodeProcess(app) as node, node.client() as client:
            assert client.post("/orders/o1", content="{}",
                               headers={"traceparent": f"00-{trace_id}-{INCOMING_SPAN}-01"}).status_code == 201
            stored = full_trace(trace_id, tmp_path)

            def exported() -> dict[str, tuple]:
                spans = {}
                for request in Receiver.requests:
                    for resource_spans in request.resource_spans:
                        resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                        for scope_spans in resource_spans.scope_spans:
                            for span in scope_spans.spans:
                                if span.trace_id.hex() == trace_id:
                                    spans[span.span_id.hex()] = (span, resource)
                return spans if len(spans) >= 5 else {}

            received = wait_until(exported, timeout=15, message="5 spans at the OTLP receiver")
    finally:
        server.shutdown()
    assert set(received) == {span["spanId"] for span in stored.values()}
    for span in stored.values():
        otlp, resource = received[span["spanId"]]
        assert otlp.name == span["name"]
        assert otlp.parent_span_id.hex() == span["parentSpanId"]
        assert otlp.start_time_unix_nano == span["startTimeUnixNano"]
        assert otlp.end_time_unix_nano == span["endTimeUnixNano"]
        assert [(link.trace_id.hex(), link.span_id.hex()) for link in otlp.links] == [
            (link["traceId"], link["spanId"]) for link in span["links"]]
        assert resource["service.name"] == "shop-service"
        assert resource["deployment.environment.name"] == "test"
    process, _ = received[stored["process orders"]["spanId"]]
    assert process.kind == process.SPAN_KIND_CONSUMER
    attributes = {a.key: a.value for a in process.attributes}
    assert attributes["messaging.destination.name"].string_value == "orders"
    assert attributes["faas.coldstart"].HasField("bool_value")


def test_one_trace_spans_two_nodes_on_redis(tmp_path, redis_url):
    """One node serves HTTP only, the other consumes the queue and runs the async
    invocation: `squall traces show` reads the one trace both wrote."""
    (tmp_path / "front").mkdir()
    (tmp_path / "back").mkdir()
    front = write_app(tmp_path / "front", FRONT)
    back = write_app(tmp_path / "back", BACK)
    objects = ["--objects", str(tmp_path / "objects")]
    trace_id = uuid.uuid4().hex
    with NodeProcess(back, backend=redis_url, extra=objects + ["--node-id", "back"]), \
            NodeProcess(front, backend=redis_url, extra=objects + ["--node-id", "front"]) as node, \
            node.client() as client:
        response = client.post("/orders/o1", content="{}", headers={"traceparent": f"00-{trace_id}-{INCOMING_SPAN}-01"})
        assert response.status_code == 201, response.text
        spans = full_trace(trace_id, tmp_path, backend=redis_url)
        assert logged_functions(trace_id, tmp_path, backend=redis_url) == {"place", "consume", "notify"}
    check_hops(spans, trace_id, INCOMING_SPAN)


def test_no_observability_records_no_spans(tmp_path):
    app = write_app(tmp_path, SHOP)
    with NodeProcess(app, extra=["--no-observability"]) as node, node.client() as client:
        response = client.post("/orders/o1", content="{}")
        assert response.status_code == 201 and response.json()["traceparent"] is None
        backend = open_backend(f"sqlite:///{tmp_path}/.squall/state.db")
        try:
            # the async invocation at the end of the chain ran, and metering (flushed once a
            # second, as spans would be) has all three invocations
            wait_until(lambda: list(backend.table_scan("seen")), timeout=10, message="the notify invocation")

            def metered() -> int:
                from squall.observability.metering import read_records

                return sum(1 for _ in read_records(backend))

            wait_until(lambda: metered() >= 3, timeout=10, message="metering of the three invocations")
            assert backend.stream_shards(SPANS_STREAM) == 0 or not backend.stream_read(SPANS_STREAM, 0, 0)
        finally:
            backend.close()
    assert "no trace" in squall("traces", "show", INCOMING_TRACE, cwd=tmp_path).stderr
