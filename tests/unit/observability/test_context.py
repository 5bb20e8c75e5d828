"""Trace context formats (W3C traceparent, X-Ray), sampling, and the span record's checks."""

from __future__ import annotations

import time

import pytest

from squall.backends import Message
from squall.errors import ConfigError
from squall.events.sqs import sqs_event
from squall.observability.context import (
    TRACE_ATTRIBUTE,
    SpanContext,
    message_context,
    new_trace,
    parse_traceparent,
    parse_xray,
    trace_attribute,
)
from squall.observability.sampling import Sampler
from squall.observability.spans import SpanKind, SpanRecord, Status
from squall.services import check_message

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def test_traceparent_round_trips_and_keeps_the_sampled_flag():
    context = parse_traceparent(f"00-{TRACE}-{SPAN}-01")
    assert context == SpanContext(TRACE, SPAN, True)
    assert context.traceparent() == f"00-{TRACE}-{SPAN}-01"
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-00").sampled is False
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-03").sampled is True  # other flag bits ignored


@pytest.mark.parametrize("value", [
    None, "", f"00-{TRACE}-{SPAN}", f"00-{'0' * 32}-{SPAN}-01", f"00-{TRACE}-{'0' * 16}-01",
    f"ff-{TRACE}-{SPAN}-01", f"00-{TRACE.upper()}-{SPAN}-01", f"00-{TRACE}-{SPAN}-01-extra",
    f"00_{TRACE}-{SPAN}-01",
])
def test_malformed_traceparents_start_a_new_trace(value):
    assert parse_traceparent(value) is None


def test_a_future_version_is_read_by_its_first_fields():
    assert parse_traceparent(f"01-{TRACE}-{SPAN}-01-whatever") == SpanContext(TRACE, SPAN, True)


def test_xray_header_is_the_same_ids():
    context = SpanContext(TRACE, SPAN, True)
    header = context.xray()
    assert header == f"Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent={SPAN};Sampled=1"
    assert parse_xray(header) == context
    assert parse_xray(f"Parent={SPAN};Sampled=0;Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Lineage=a:1") == \
        SpanContext(TRACE, SPAN, False)
    assert parse_xray("Root=1-4bf92f35-77b34da6;Parent=x") is None
    assert parse_xray(None) is None


def test_new_traces_are_xray_roots_of_now_with_a_valid_root_span():
    now = time.time_ns()
    trace_id, span_id = new_trace(now)
    assert len(trace_id) == 32 and parse_xray(SpanContext(trace_id, span_id, True).xray()) is not None
    assert int(trace_id[:8], 16) == now // 1_000_000_000
    assert parse_traceparent(SpanContext(trace_id, span_id, True).traceparent()) == (trace_id, span_id, True)
    assert len({new_trace(now) for _ in range(100)}) == 100  # the same second: still random ids


def test_samplers_from_the_standard_variables():
    parent_off = SpanContext(TRACE, SPAN, False)
    default = Sampler.from_environ({})
    assert default.sampled(TRACE, None) and not default.sampled(TRACE, parent_off)
    assert not Sampler.from_environ({"OTEL_TRACES_SAMPLER": "always_off"}).sampled(TRACE, None)
    assert Sampler.from_environ({"OTEL_TRACES_SAMPLER": "always_on"}).sampled(TRACE, parent_off)
    half = Sampler.from_environ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"})
    # the SDK's rule: the low 64 bits under ratio * 2**64
    assert half.sampled("0" * 16 + "7fffffffffffffff", None)
    assert not half.sampled("0" * 16 + "8000000000000000", None)
    with pytest.raises(ConfigError, match="'xray'"):
        Sampler.from_environ({"OTEL_TRACES_SAMPLER": "xray"})
    with pytest.raises(ConfigError, match="'1.5'"):
        Sampler.from_environ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"})


def test_span_records_from_an_instance_are_checked():
    record = SpanRecord(TRACE, SPAN, "", "work", SpanKind.INTERNAL, 1, 2, {"n": [1, 2]}, Status.OK, "",
                        [SpanContext(TRACE, "1" * 16, True)])
    assert SpanRecord.decode(record.encode()) == record
    for bad in (None, [], record.encode()[:10]):
        assert SpanRecord.decode(bad) is None
    for index, value in ((0, "xyz"), (4, 9), (4, True), (5, -1), (7, {"a": {"nested": 1}}), (8, 7),
                         (10, [["bad"]])):
        raw = record.encode()
        raw[index] = value
        assert SpanRecord.decode(raw) is None, (index, value)


def test_the_trace_header_is_a_system_attribute_of_the_sqs_record():
    context = SpanContext(TRACE, SPAN, True)
    _, attributes, _ = check_message("hi", 0, {"kind": "order"})
    attributes[TRACE_ATTRIBUTE] = trace_attribute(context)
    message = Message("id-1", "orders", "hi", attributes, "r", 1, 1.0, 1.0)
    assert message_context(message.attributes) == context
    (record,) = sqs_event([message])["Records"]
    assert record["attributes"]["AWSTraceHeader"] == context.xray()
    assert set(record["messageAttributes"]) == {"kind"}
    untraced = sqs_event([message._replace(attributes={k: v for k, v in attributes.items() if k == "kind"})])
    assert record["md5OfMessageAttributes"] == untraced["Records"][0]["md5OfMessageAttributes"]
    assert "AWSTraceHeader" not in untraced["Records"][0]["attributes"]


@pytest.mark.parametrize("name", ["AWS.TraceHeader", "aws.x", "Amazon.y"])
def test_reserved_attribute_names_are_refused_as_on_sqs(name):
    with pytest.raises(ConfigError, match="reserved"):
        check_message("hi", 0, {name: "x"})
