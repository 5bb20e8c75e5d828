"""The span stream: read back, and capped by count by the retention leader."""

from __future__ import annotations

import asyncio
import time

import orjson

from squall.core.retention import Retention
from squall.observability.batching import count_of, read_batch
from squall.observability.spans import SpanKind, SpanRecord
from squall.observability.store import SPANS_STREAM, SpanCap, read_spans
from squall.observability.tracing import Tracer


def spans(count: int, start_ns: int) -> str:
    return orjson.dumps([SpanRecord(f"{i + 1:032x}", f"{i + 1:016x}", "", "s", SpanKind.SERVER, start_ns, start_ns + 1)
                         .encode() for i in range(count)]).decode()


def test_spans_read_back_since_a_time(sqlite, clock):
    sqlite.stream_append(SPANS_STREAM, "node-a", spans(3, 1_000))
    sqlite.stream_append(SPANS_STREAM, "node-b", spans(2, 5_000_000_000))
    assert len(list(read_spans(sqlite))) == 5
    assert len(list(read_spans(sqlite, since=4.0))) == 2


def test_retention_trims_the_span_stream_to_its_count(sqlite, clock):
    retention = Retention(sqlite, "leader", {SPANS_STREAM: 3600.0}, caps=[SpanCap(max_spans=10)])
    for _ in range(4):  # four seconds of four spans each
        sqlite.stream_append(SPANS_STREAM, "node-a", spans(4, 1))
        clock.advance(1)
    asyncio.run(retention.step())
    assert len(list(read_spans(sqlite))) == 8  # the two oldest records went: at most 10 spans kept
    sqlite.stream_append(SPANS_STREAM, "node-a", spans(1, 1))
    asyncio.run(retention.step())
    assert len(list(read_spans(sqlite))) == 9  # counted once each: the new record fits
    clock.advance(3601)
    asyncio.run(retention.step())
    assert list(read_spans(sqlite)) == []  # and by age


def test_a_tracer_batch_is_counted_without_decoding_and_read_back_whole(sqlite, clock):
    tracer = Tracer(sqlite, "node-a")
    for i in range(5):
        tracer.add(SpanRecord(f"{i + 1:032x}", f"{i + 1:016x}", "", "GET /x", SpanKind.SERVER, 1, 2,
                              {"faas.name": "charge", "faas.max_memory": 134217728}))
    tracer.flush()
    [record] = sqlite.stream_read(SPANS_STREAM, 0, 0)
    assert record.data.startswith('[5,{"shapes":[]},[')
    assert count_of(record.data) == 5 and len(read_batch(record.data).records) == 5
    assert count_of(spans(3, 1)) == 3  # a record written before batches were counted
    assert count_of("[]") == 0
    read = list(read_spans(sqlite))
    assert len(read) == 5
    # what follows from the function's name is not stored, and is there when read
    assert "cloud.resource_id" not in record.data
    assert read[0].attributes["cloud.resource_id"] == "arn:aws:lambda:us-east-1:000000000000:function:charge"
    assert read[0].attributes["faas.version"] == "$LATEST" and read[0].attributes["faas.max_memory"] == 134217728
    retention = Retention(sqlite, "leader", {SPANS_STREAM: 3600.0}, caps=[SpanCap(max_spans=4)])
    asyncio.run(retention.step())
    assert list(read_spans(sqlite)) == []  # 5 spans in one record: over the cap of 4, the record goes


def test_invocation_spans_share_their_shape_once_per_record_and_read_back_whole(sqlite, clock):
    from squall.core.pipeline import InvokeRequest, chain
    from squall.errors import FunctionError
    from squall.observability.context import SpanContext
    from squall.observability.metering import Meter, Metering
    from squall.observability.sampling import Sampler
    from squall.observability.spans import FaasTrigger, SpanShape, Status
    from squall.observability.tracing import Tracing
    from squall.runtime.invocation import Invocation

    shape = SpanShape("process q", SpanKind.CONSUMER, FaasTrigger.PUBSUB, {"messaging.destination.name": "q"})
    tracer = Tracer(sqlite, "node-a")
    tracing = Tracing(tracer, {"queue": lambda request, invocation: shape}, Sampler(), lambda function: 256)
    link = SpanContext("ab" * 16, "cd" * 8, True)

    async def run(request: InvokeRequest, fail: bool) -> None:
        async def terminal(request: InvokeRequest) -> Invocation:
            return Invocation(request.request_id, request.function, request.trigger, 1.0, 2.0, 256,
                              error=FunctionError("no", "ValueError") if fail else None)
        await chain([Metering(Meter(sqlite, "node-a"), [tracing.close]), tracing], terminal)(request)

    for i in range(3):
        asyncio.run(run(InvokeRequest("worker", {}, "queue", "q", links=(link,)), fail=i == 2))
    asyncio.run(run(InvokeRequest("other", {}, "invoke"), fail=False))
    tracer.flush()
    [record] = sqlite.stream_read(SPANS_STREAM, 0, 0)
    batch = read_batch(record.data)
    assert count_of(record.data) == 4
    assert [name for name, _, _ in batch.header["shapes"]] == ["process q", "other"]  # each stored once
    assert record.data.count("messaging.destination.name") == 1
    spans = sorted(read_spans(sqlite), key=lambda span: span.start_ns)
    assert [span.name for span in spans] == ["process q", "process q", "process q", "other"]
    first, _, failed, plain = spans
    assert first.kind is SpanKind.CONSUMER and first.links == [link]
    assert first.attributes["faas.trigger"] == "pubsub" and first.attributes["faas.max_memory"] == 256 * 1048576
    assert first.attributes["messaging.destination.name"] == "q" and first.attributes["faas.coldstart"] is False
    assert failed.status is Status.ERROR and failed.attributes["error.type"] == "ValueError"
    assert failed.status_message and "error.type" not in first.attributes
    assert plain.kind is SpanKind.SERVER and plain.attributes["faas.trigger"] == "other" and plain.links == []
    assert len({span.attributes["faas.invocation_id"] for span in spans}) == 4


def test_the_span_opens_before_the_runtime_and_closes_with_the_metering_record(sqlite):
    from squall.core.pipeline import InvokeRequest, chain
    from squall.observability.metering import Meter, Metering
    from squall.observability.sampling import Sampler
    from squall.observability.tracing import Tracing
    from squall.runtime.invocation import Invocation

    meter = Meter(sqlite, "node-a")
    seen: list[int] = []

    async def terminal(request: InvokeRequest) -> Invocation:
        seen.append(time.time_ns())
        return Invocation(request.request_id, request.function, request.trigger, 1.0, 2.0, 256)

    for sampler, expected in ((Sampler(), 1), (Sampler(parent_based=False, ratio=0.0), 0)):
        tracer = Tracer(sqlite, "node-a")
        tracing = Tracing(tracer, {}, sampler, lambda function: 256)
        request = InvokeRequest("f", {})
        asyncio.run(chain([Metering(meter, [tracing.close]), tracing], terminal)(request))
        assert len(tracer.batch.spans) == expected and request.trace_id  # a trace id either way
        assert (request.span is not None) == bool(expected)  # an unsampled invocation opens no span
        if expected:
            start, end = tracer.batch.spans[0][4:6]
            assert start <= seen[-1] <= end
    assert len(meter._buffer) == 2  # both metered
