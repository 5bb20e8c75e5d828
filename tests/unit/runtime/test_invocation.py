"""Invocation (outcome, metering record, billing, REPORT line), run_handler and the typed
invocation errors with their HTTP status."""

from __future__ import annotations

import json
from decimal import Decimal
from types import SimpleNamespace

import pytest

from squall import errors
from squall.errors import (
    FunctionError,
    FunctionTimeout,
    InstanceCrashed,
    InvocationError,
    Outcome,
    OutOfMemory,
    Throttled,
)
from squall.runtime.invocation import error_from_dict, run_handler
from tests.unit.support import invocation

ERRORS = [
    (FunctionError("boom", "ValueError"), Outcome.ERROR, 500, "Internal Server Error"),
    (FunctionTimeout("Task timed out after 3.00 seconds", "Sandbox.Timedout"), Outcome.TIMEOUT, 504,
     "Endpoint request timed out"),
    (OutOfMemory("over 128 MB", "Runtime.OutOfMemory"), Outcome.OOM, 502, "Internal Server Error"),
    (InstanceCrashed("exit 3", "Runtime.ExitError"), Outcome.CRASH, 502, "Internal Server Error"),
    (Throttled("no instance", "TooManyRequestsException"), Outcome.THROTTLED, 429, "Too Many Requests"),
]


@pytest.mark.parametrize("error, outcome, status, message", ERRORS)
def test_outcome_and_http_status_per_error_class(error, outcome, status, message):
    inv = invocation(error=error)
    assert not inv.ok and inv.outcome is outcome
    assert (error.outcome, error.http_status, error.http_message) == (outcome, status, message)


def test_a_successful_invocation():
    inv = invocation({"a": 1})
    assert inv.ok and inv.outcome is Outcome.SUCCESS and inv.unwrap() == {"a": 1}


def all_subclasses(cls: type) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *all_subclasses(direct))]


def test_every_invocation_error_has_an_outcome_and_an_http_status():
    classes = [InvocationError, *all_subclasses(InvocationError)]
    assert {FunctionError, FunctionTimeout, OutOfMemory, InstanceCrashed, Throttled} <= set(classes)
    for cls in classes:
        assert isinstance(cls.outcome, Outcome), cls
        assert isinstance(cls.http_status, int) and 400 <= cls.http_status <= 599, cls
        assert isinstance(cls.http_message, str) and cls.http_message, cls
        assert issubclass(cls, errors.SquallError)


def test_invocation_error_payload():
    error = FunctionError("bad input", "ValueError", ["  File x, line 1"])
    assert error.to_dict() == {"errorMessage": "bad input", "errorType": "ValueError",
                               "stackTrace": ["  File x, line 1"]}
    assert InvocationError("x").to_dict() == {"errorMessage": "x", "errorType": "Error", "stackTrace": []}
    with pytest.raises(FunctionError, match="bad input"):
        invocation(error=error).unwrap()


RECORD_KEYS = {"requestId", "function", "trigger", "start", "durationMs", "billedMs", "cold", "initMs", "memoryMb",
               "maxMemoryMb", "outcome", "gbSeconds", "node", "errorType"}


def test_record_of_a_successful_cold_invocation():
    inv = invocation({"big": "result"}, duration_ms=12.34567, memory_mb=512, cold=True, init_ms=101.23456,
                     max_memory_mb=60, node="n1")
    record = inv.record()
    assert record.keys() == RECORD_KEYS
    assert record == {"requestId": "req-1", "function": "f", "trigger": "queue", "start": 1_700_000_000.0,
                      "durationMs": 12.346, "billedMs": 13, "cold": True, "initMs": 101.235, "memoryMb": 512,
                      "maxMemoryMb": 60, "outcome": "success", "gbSeconds": 13 / 1000 * 512 / 1024, "node": "n1",
                      "errorType": None}
    assert type(record["outcome"]) is str  # a plain string, not the enum
    json.dumps(record)


@pytest.mark.parametrize("error, outcome", [(e, o) for e, o, _, _ in ERRORS])
def test_record_of_a_failed_invocation(error, outcome):
    record = invocation(error=error).record()
    assert record["outcome"] == outcome.value and type(record["outcome"]) is str
    assert record["errorType"] == error.error_type
    assert record["initMs"] is None
    assert json.loads(json.dumps(record))["outcome"] == outcome.value


@pytest.mark.parametrize("duration_ms, billed", [
    (0.0, 1), (0.0001, 1), (0.999, 1), (1.0, 1), (1.0001, 2), (1.5, 2), (99.999, 100), (100.0, 100),
    (3000.2, 3001), (12.0, 12),
])
def test_billed_ms_rounds_up_to_the_next_millisecond(duration_ms, billed):
    inv = invocation(duration_ms=duration_ms, memory_mb=1024)
    assert inv.billed_ms == billed
    assert inv.gb_seconds == pytest.approx(billed / 1000)


def test_report_line_of_a_success():
    line = invocation(duration_ms=12.345, memory_mb=256, max_memory_mb=40).report_line()
    assert line == ("REPORT RequestId: req-1\tDuration: 12.35 ms\tBilled Duration: 13 ms\tMemory Size: 256 MB\t"
                    "Max Memory Used: 40 MB")


def test_report_line_of_a_cold_start():
    line = invocation(cold=True, init_ms=250.5).report_line()
    assert line.endswith("\tInit Duration: 250.50 ms")


@pytest.mark.parametrize("error, status", [
    (FunctionError("boom"), None),  # Lambda prints no Status for a handler error
    (FunctionTimeout("slow", "Sandbox.Timedout"), "timeout"),
    (OutOfMemory("big", "Runtime.OutOfMemory"), "error\tError Type: Runtime.OutOfMemory"),
    (InstanceCrashed("dead", "Runtime.ExitError"), "error\tError Type: Runtime.ExitError"),
])
def test_report_line_status(error, status):
    line = invocation(error=error, init_ms=5.0).report_line()
    if status is None:
        assert "Status" not in line
    else:
        assert line.endswith(f"\tStatus: {status}")
        assert "\tInit Duration: 5.00 ms\t" in line


CONTEXT = SimpleNamespace(memory_limit_in_mb=128)


def ran(handler, event) -> tuple[bool, object]:
    """run_handler's outcome, its JSON payload decoded."""
    outcome = run_handler(handler, event, CONTEXT)
    if outcome.error is not None:  # the error logged is the one the caller gets
        assert json.loads(outcome.payload) == outcome.error.to_dict()
    return outcome.ok, json.loads(outcome.payload)


def test_run_handler_returns_the_result_as_json():
    assert run_handler(lambda event, ctx: {"got": event}, {"n": 1}, CONTEXT) == (b'{"got":{"n":1}}', None)
    assert ran(lambda event, ctx: None, {}) == (True, None)
    assert ran(lambda event, ctx: ("a", 1), {}) == (True, ["a", 1])  # what a JSON round trip gives, as on Lambda


def test_run_handler_turns_an_exception_into_lambdas_error_shape():
    def handler(event, ctx):
        raise KeyError("missing")

    ok, error = ran(handler, {})
    assert not ok
    assert error.keys() == {"errorMessage", "errorType", "stackTrace"}
    assert (error["errorMessage"], error["errorType"]) == ("'missing'", "KeyError")
    assert len(error["stackTrace"]) == 1 and "in handler" in error["stackTrace"][0]  # from the handler down


def test_run_handler_gives_an_empty_message_as_the_runtime_does():
    def handler(event, ctx):
        raise RuntimeError

    error = ran(handler, {})[1]
    assert (error["errorMessage"], error["errorType"]) == ("", "RuntimeError")


def test_run_handler_encodes_decimals_as_the_numbers_they_are():
    """boto3 reads every DynamoDB number as a Decimal; Lambda's runtime returns it as a number."""
    item = {"price": Decimal("4.50"), "count": Decimal("3"), "big": Decimal("12345678901234567890"),
            "exp": Decimal("1E+2"), "nested": [Decimal("-0.001")]}
    ok, result = ran(lambda event, ctx: item, {})
    assert ok and result == {"price": 4.5, "count": 3, "big": 12345678901234567890, "exp": 100.0,
                             "nested": [-0.001]}
    assert isinstance(result["big"], int)
    ok, error = ran(lambda event, ctx: {"nan": Decimal("NaN")}, {})
    assert not ok and error["errorType"] == "Runtime.MarshalError"


def test_run_handler_out_of_memory():
    def handler(event, ctx):
        raise MemoryError

    ok, error = ran(handler, {})
    assert not ok and error["errorType"] == "Runtime.OutOfMemory" and "128 MB" in error["errorMessage"]
    assert isinstance(run_handler(handler, {}, CONTEXT).error, OutOfMemory)


@pytest.mark.parametrize("result", [object(), {1, 2}, {"nan": b"bytes"}, float("nan"), "\ud800"])
def test_run_handler_rejects_a_result_that_is_not_json(result):
    ok, error = ran(lambda event, ctx: result, {})
    assert not ok and error["errorType"] == "Runtime.MarshalError"
    assert error["errorMessage"].startswith("Unable to marshal response")


@pytest.mark.parametrize("payload, cls, message, error_type", [
    ({"errorMessage": "big", "errorType": "Runtime.OutOfMemory", "stackTrace": []}, OutOfMemory, "big",
     "Runtime.OutOfMemory"),
    ({"errorMessage": "bad", "errorType": "ValueError", "stackTrace": ["x"]}, FunctionError, "bad", "ValueError"),
    ({}, FunctionError, "", "Error"),
])
def test_error_from_dict(payload, cls, message, error_type):
    error = error_from_dict(payload)
    assert type(error) is cls and str(error) == message and error.error_type == error_type
    assert error.stack == payload.get("stackTrace", [])
