"""Targets as AWS names them (`function:NAME`, `queue:NAME`, ...): parsed with a clear error
for anything else, and delivered durably to a real backend."""

from __future__ import annotations

import pytest

from squall.backends.queueconfig import QueueConfig
from squall.dispatch.targets import Target, TargetKind, deliver
from squall.errors import ConfigError
from squall.sources.async_invoke import async_queue


@pytest.mark.parametrize("value, kind, name", [("function:charge", TargetKind.FUNCTION, "charge"),
                                               ("queue:orders.fifo", TargetKind.QUEUE, "orders.fifo")])
def test_a_target_names_its_kind_and_name(value, kind, name):
    target = Target.parse("rule 'r'", value)
    assert (target.kind, target.name, str(target)) == (kind, name, value)


@pytest.mark.parametrize("value, complaint", [
    ("charge", "invalid target 'charge': expected 'function:NAME' or 'queue:NAME'"),
    (None, "invalid target None"),
    ("lambda:charge", "invalid target 'lambda:charge'"),
    ("function:", "function"),
    ("function:bad name", "function"),
    ("queue:", "queue"),
    ("bus:default", "invalid target 'bus:default': expected 'function:NAME' or 'queue:NAME'"),
])
def test_a_bad_target_is_refused_naming_it(value, complaint):
    with pytest.raises(ConfigError, match="rule 'r'" if "invalid" in complaint else complaint) as raised:
        Target.parse("rule 'r'", value)
    assert complaint in str(raised.value)


def test_delivery_to_a_queue_and_to_a_function(sqlite):
    sqlite.queue_declare("alerts", QueueConfig())
    sqlite.queue_declare(async_queue("page"), QueueConfig(internal=True))
    deliver(sqlite, Target.parse("x", "queue:alerts"), '{"n": 1}')
    deliver(sqlite, Target.parse("x", "function:page"), '{"n": 2}', {"AWSTraceHeader": "Root=1-a-b"})
    (message,) = sqlite.peek("alerts")
    assert message.body == '{"n": 1}'
    (invocation,) = sqlite.peek(async_queue("page"))
    assert invocation.body == '{"n": 2}' and invocation.attributes == {"AWSTraceHeader": "Root=1-a-b"}
