"""What one invocation produced and cost: the metering record and Lambda's REPORT line."""

from __future__ import annotations

import decimal
import json
import math
import traceback
from dataclasses import dataclass
from typing import Any, NamedTuple

from squall.aws import MAX_RESPONSE_BYTES
from squall.errors import FunctionError, InvocationError, Outcome, OutOfMemory, ResponseTooLarge
from squall.runtime import wire


@dataclass(slots=True)
class Invocation:
    """The outcome of one invocation, successful or not.

    `result` is the handler's return value (already checked to be JSON-serialisable);
    `error` is set when there is none. Durations are milliseconds.
    """

    request_id: str
    function: str
    trigger: str
    start: float
    duration_ms: float
    memory_mb: int
    cold: bool = False
    init_ms: float | None = None
    max_memory_mb: int = 0
    result: Any = None
    error: InvocationError | None = None
    node: str = ""
    #: the spans the instance handed back with its result (untrusted JSON: the tracer checks them)
    spans: list[Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def outcome(self) -> Outcome:
        return Outcome.SUCCESS if self.error is None else self.error.outcome

    @property
    def billed_ms(self) -> int:
        """Lambda bills duration rounded up to the next millisecond."""
        return billed_ms(self.duration_ms)

    @property
    def gb_seconds(self) -> float:
        return gb_seconds(self.billed_ms, self.memory_mb)

    def unwrap(self) -> Any:
        """The result, or raise the error."""
        if self.error is not None:
            raise self.error
        return self.result

    def report_line(self, init_ms: float | None = None) -> str:
        """Lambda's REPORT log line: a `Status` only for an invocation the platform ended
        (`timeout`, or `error` with the error type for a crash or running out of memory);
        `init_ms` if given, else the cold start's."""
        error, status = self.error, None
        if error is not None and error.outcome is not Outcome.ERROR:
            status = "timeout" if error.outcome is Outcome.TIMEOUT else f"error\tError Type: {error.error_type}"
        return report_line(self.request_id, self.duration_ms, self.memory_mb, self.max_memory_mb,
                           self.init_ms if init_ms is None else init_ms, status)

    def record(self) -> dict[str, Any]:
        """The metering record kept by the backend (no payloads). The outcome is read as
        `_value_`: `.value` is a descriptor call, and this runs on every invocation."""
        billed = self.billed_ms
        return {
            "requestId": self.request_id, "function": self.function, "trigger": self.trigger,
            "start": self.start, "durationMs": round(self.duration_ms, 3), "billedMs": billed,
            "cold": self.cold, "initMs": None if self.init_ms is None else round(self.init_ms, 3),
            "memoryMb": self.memory_mb, "maxMemoryMb": self.max_memory_mb, "outcome": self.outcome._value_,
            "gbSeconds": gb_seconds(billed, self.memory_mb), "node": self.node,
            "errorType": None if self.error is None else self.error.error_type,
        }


def report_line(request_id: str, duration_ms: float, memory_mb: int, max_memory_mb: int,
                init_ms: float | None = None, status: str | None = None) -> str:
    """Lambda's REPORT line for one invocation (Lambda bills up to the next millisecond)."""
    line = (f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {billed_ms(duration_ms)} ms\tMemory Size: {memory_mb} MB\t"
            f"Max Memory Used: {max_memory_mb} MB")
    if init_ms is not None:
        line += f"\tInit Duration: {init_ms:.2f} ms"
    if status is not None:
        line += f"\tStatus: {status}"
    return line


def billed_ms(duration_ms: float) -> int:
    """Lambda bills duration rounded up to the next millisecond."""
    return max(1, math.ceil(duration_ms))


def gb_seconds(billed_ms: int, memory_mb: int) -> float:
    """What Lambda bills: billed seconds times the memory size in GB."""
    return billed_ms / 1000 * memory_mb / 1024


class HandlerOutcome(NamedTuple):
    """What one call of a handler gave: the result as JSON; or, with `error`, Lambda's
    error dict as JSON (the payload the caller gets) and the error itself (what the
    instance logs)."""

    payload: bytes
    error: InvocationError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def run_handler(handler: Any, event: Any, context: Any) -> HandlerOutcome:
    """Call a handler the way the Lambda runtime does.

    Returns the result as JSON, or Lambda's `errorMessage/errorType/stackTrace` dict as
    JSON. The result is encoded here, once, as Lambda's runtime encodes it: a `Decimal`
    (every number boto3 reads from DynamoDB) as the number it is, and what JSON cannot
    hold a `Runtime.MarshalError` (NaN included, which Lambda's runtime writes as `NaN`). Used by both the
    process runtime (inside an instance) and the inline runtime (in tests), so both hand
    the caller what a JSON round trip gives.
    """
    try:
        result = handler(event, context)
    except MemoryError:
        return _error(OutOfMemory(f"function exceeded its memory limit ({context.memory_limit_in_mb} MB)",
                                  "Runtime.OutOfMemory"))
    except Exception as exc:  # noqa: BLE001 - a handler may raise anything; it becomes the error
        frames = traceback.extract_tb(exc.__traceback__)[1:]  # from the handler down, as Lambda shows
        return _error(FunctionError(_text(exc), type(exc).__name__,
                                    [line.rstrip("\n") for line in traceback.format_list(frames)]))
    try:
        payload = wire.dumps(result, default=_number)
    except wire.WireError as exc:
        return _error(FunctionError(f"Unable to marshal response: {exc}", "Runtime.MarshalError"))
    if len(payload) > MAX_RESPONSE_BYTES:  # refused here: the instance stays healthy, as on Lambda
        return _error(too_large(len(payload)))
    return HandlerOutcome(payload)


def too_large(size: int) -> ResponseTooLarge:
    """Lambda's error for a result over its synchronous response limit."""
    return ResponseTooLarge(f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
                            f"({MAX_RESPONSE_BYTES} bytes).", "Function.ResponseSizeTooLarge")


def _number(value: Any) -> Any:
    """A finite Decimal as the JSON number its text is (the runtime interface client writes
    `str(value)` raw, so a caller decodes 4.50 as 4.5 and a 20-digit integer exactly)."""
    if isinstance(value, decimal.Decimal) and value.is_finite():
        return json.loads(str(value))
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _text(exc: BaseException) -> str:
    """The exception's message: empty for `raise ValueError()`, as the runtime gives it."""
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - a hostile __str__
        return type(exc).__name__


def _error(error: InvocationError) -> HandlerOutcome:
    fields = error.to_dict()
    try:
        payload = wire.to_json(fields)
    except wire.WireError:  # text that is not Unicode (lone surrogates)
        error = type(error)(_clean(str(error)), _clean(error.error_type), [_clean(line) for line in error.stack])
        payload = wire.to_json(error.to_dict())
    return HandlerOutcome(payload, error)


def _clean(text: str) -> str:
    return text.encode("utf-8", "replace").decode()


#: the error types an instance reports that are not the handler's own exception
_KINDS: dict[str, type[InvocationError]] = {"Runtime.OutOfMemory": OutOfMemory,
                                            "Function.ResponseSizeTooLarge": ResponseTooLarge}


def error_from_dict(payload: Any, kind: type[InvocationError] | None = None) -> InvocationError:
    """The typed exception for an error payload produced by `run_handler` (or, with
    `kind`, by an instance's initialisation). The payload came from an instance: only its
    string fields are read."""
    fields = payload if isinstance(payload, dict) else {}
    message, error_type, stack = fields.get("errorMessage"), fields.get("errorType"), fields.get("stackTrace")
    cls = kind or (_KINDS.get(error_type, FunctionError) if isinstance(error_type, str) else FunctionError)
    return cls(message if isinstance(message, str) else "", error_type if isinstance(error_type, str) else "Error",
               [line for line in stack if isinstance(line, str)] if isinstance(stack, list) else [])
