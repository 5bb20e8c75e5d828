"""Asynchronous invocation settings on the harness's clock: event age, retries, records;
and their declarations."""

from __future__ import annotations

import json

import pytest

from squall import App
from squall.errors import ConfigError
from squall.manifest import describe, restore
from squall.sources.async_invoke import async_dlq, async_queue
from squall.testing import Harness


def app_with(**options) -> App:
    app = App("aged")

    @app.function(on_failure="queue:failed", **options)
    def flaky(event, ctx):
        ctx.table("ran").put(ctx.aws_request_id, True)
        raise ValueError("nope")

    app.on_queue("failed", lambda event, ctx: None, name="hold", reserved_concurrency=0)
    return app


def failure_record(harness: Harness) -> dict:
    [message] = harness.backend.claim("failed", 10, 30)
    return json.loads(message.body)


def test_a_retry_that_would_come_after_the_maximum_age_is_not_made():
    with Harness(app_with(maximum_event_age=60)) as harness:
        harness.backend.enqueue(async_queue("flaky"), json.dumps({"n": 1}), None)
        harness.advance(59.5)  # the first attempt fails at 59.5 s: the next (1 s later) would be too late
        harness.drain(async_queue("flaky"))
        record = failure_record(harness)
        assert record["requestContext"]["condition"] == "EventAgeExceeded"
        assert record["requestContext"]["approximateInvokeCount"] == 1
        assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST",
                                             "functionError": "Unhandled"}
        assert record["responsePayload"]["errorMessage"] == "nope"
        assert harness.queue_stats(async_dlq("flaky")).total == 1


def test_within_its_age_an_event_gets_every_retry():
    # the default age is six hours; the harness moves its clock 20 minutes past each backoff
    with Harness(app_with()) as harness:
        harness.backend.enqueue(async_queue("flaky"), json.dumps({"n": 1}), None)
        harness.drain(async_queue("flaky"))
        record = failure_record(harness)
        assert record["requestContext"]["condition"] == "RetriesExhausted"
        assert record["requestContext"]["approximateInvokeCount"] == 3


def test_an_event_found_past_its_age_is_not_run():
    with Harness(app_with(maximum_event_age=60, maximum_retry_attempts=0)) as harness:
        harness.backend.enqueue(async_queue("flaky"), json.dumps({"n": 1}), None)
        harness.advance(60)
        harness.drain(async_queue("flaky"))
        assert list(harness.table("ran").scan()) == []
        record = failure_record(harness)
        assert record["requestContext"]["condition"] == "EventAgeExceeded"
        assert record["requestContext"]["approximateInvokeCount"] == 0
        assert "responseContext" not in record


@pytest.mark.parametrize(("options", "message"), [
    ({"maximum_retry_attempts": 3}, "invalid maximum_retry_attempts for 'f' 3: must be an integer from 0 to 2"),
    ({"maximum_retry_attempts": True}, "maximum_retry_attempts for 'f'"),
    ({"maximum_event_age": 59}, "invalid maximum_event_age for 'f' 59: must be an integer from 60 to 21600"),
    ({"maximum_event_age": 21601}, "invalid maximum_event_age for 'f' 21601"),
    ({"on_success": "sqs:orders"}, "on_success of 'f': invalid target 'sqs:orders': expected 'queue:NAME' or "
                                   "'topic:NAME' or 'bus:NAME' or 'function:NAME'"),
    ({"on_failure": "queue:"}, "invalid queue name ''"),
    ({"on_failure": 7}, "on_failure of 'f': invalid target 7"),
])
def test_bad_settings_fail_at_declaration(options, message):
    app = App("bad")
    with pytest.raises(ConfigError) as failure:
        app.function(lambda event, ctx: None, name="f", **options)
    assert message in str(failure.value)


def test_a_destination_must_name_a_declared_function_or_queue():
    app = App("refs")
    app.function(lambda event, ctx: None, name="f", on_success="function:g", on_failure="queue:later")
    with pytest.raises(ConfigError, match=r"on_success of 'f': unknown function 'g' \(functions: f\)"):
        app.check_destinations()
    app.function(lambda event, ctx: None, name="g")
    with pytest.raises(ConfigError, match=r"on_failure of 'f': unknown queue 'later'"):
        app.check_destinations()
    app.on_queue("later", lambda event, ctx: None, name="h")  # declared after the function: fine
    app.check_destinations()


def test_the_settings_reach_the_node_through_the_manifest():
    app = App("m")
    app.function(lambda event, ctx: None, name="f", maximum_retry_attempts=1, maximum_event_age=120,
                 on_success="function:f", on_failure="queue:q")
    restored = restore(json.loads(json.dumps(describe(app)))).functions["f"]
    assert (restored.maximum_retry_attempts, restored.maximum_event_age) == (1, 120)
    assert (restored.on_success, restored.on_failure) == ("function:f", "queue:q")
    assert str(restored.destination("on_failure")) == "queue:q"
