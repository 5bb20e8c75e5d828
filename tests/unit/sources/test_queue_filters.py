"""`on_queue(..., filters=...)`: checked at declaration, carried by the manifest, applied to
the record as Lambda shapes it."""

from __future__ import annotations

import json

import pytest

from squall import App, InvalidEventPattern
from squall.backends import Message
from squall.errors import ConfigError
from squall.manifest import describe, restore
from squall.sources.filters import RecordFilter
from squall.sources.queues import QueueTrigger, record_document


def declare(filters):
    app = App("f")

    @app.on_queue("q", filters=filters)
    def handler(event, ctx):
        return None

    return app


def test_filters_are_kept_as_canonical_json_and_survive_the_manifest():
    app = declare([{"body": {"kind": ["paid"]}}, '{"attributes": {"ApproximateReceiveCount": ["1"]}}'])
    (trigger,) = app.triggers
    assert trigger.filters == ('{"body":{"kind":["paid"]}}', '{"attributes":{"ApproximateReceiveCount":["1"]}}')
    (restored,) = restore(json.loads(json.dumps(describe(app)))).triggers
    assert restored == trigger


@pytest.mark.parametrize(("filters", "error", "message"), [
    ([{}] * 6, ConfigError, "queue 'q' has 6 filters; an event source mapping takes at most 5"),
    ({"body": ["x"]}, ConfigError, "filters of queue 'q' must be a list of event patterns"),
    ([{"body": ["x"]}, {"body": {"n": [{"numeric": ["<"]}]}}], InvalidEventPattern,
     "filter 1 of queue 'q': Event pattern is not valid. Reason: Value of < must be numeric (at body.n[0].numeric)"),
])
def test_bad_filters_fail_at_declaration(filters, error, message):
    with pytest.raises(error) as caught:
        declare(filters)
    assert message in str(caught.value)


def message(body: str, attributes=None) -> Message:
    return Message("m1", "q", body, attributes or {}, "r1", 1, 1_700_000_000.0, 1_700_000_000.0)


def test_a_record_is_matched_with_its_body_parsed_only_when_it_is_a_json_object():
    assert record_document(message('{"kind": "paid"}'))["body"] == {"kind": "paid"}
    assert record_document(message("[1, 2]"))["body"] == "[1, 2]"
    assert record_document(message('{"kind": '))["body"] == '{"kind": '
    record = record_document(message("x"))
    assert record["eventSource"] == "aws:sqs" and record["attributes"]["ApproximateReceiveCount"] == "1"
    trigger = QueueTrigger(queue="q", filters=({"body": {"kind": ["paid"]}}, {"body": ["ping"]}))
    accept = RecordFilter("queue 'q'", trigger.filters, record_document)
    assert [accept(message(b)) for b in ('{"kind": "paid"}', '{"kind": "free"}', "ping", "pong")] == \
        [True, False, True, False]
