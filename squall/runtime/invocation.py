"""What one invocation produced and cost: the metering record and Lambda's REPORT line."""

from __future__ import annotations

import json
import math
import traceback
from dataclasses import dataclass
from typing import Any

from squall.errors import FunctionError, InvocationError, Outcome, OutOfMemory


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

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def outcome(self) -> Outcome:
        return Outcome.SUCCESS if self.error is None else self.error.outcome

    @property
    def billed_ms(self) -> int:
        """Lambda bills duration rounded up to the next millisecond."""
        return max(1, math.ceil(self.duration_ms))

    @property
    def gb_seconds(self) -> float:
        return gb_seconds(self.billed_ms, self.memory_mb)

    def unwrap(self) -> Any:
        """The result, or raise the error."""
        if self.error is not None:
            raise self.error
        return self.result

    def report_line(self) -> str:
        """Lambda's REPORT log line."""
        line = (f"REPORT RequestId: {self.request_id}\tDuration: {self.duration_ms:.2f} ms\t"
                f"Billed Duration: {self.billed_ms} ms\tMemory Size: {self.memory_mb} MB\t"
                f"Max Memory Used: {self.max_memory_mb} MB")
        if self.init_ms is not None:
            line += f"\tInit Duration: {self.init_ms:.2f} ms"
        if self.error is not None and self.outcome is not Outcome.ERROR:
            line += f"\tStatus: {self.outcome}"
        return line

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


def gb_seconds(billed_ms: int, memory_mb: int) -> float:
    """What Lambda bills: billed seconds times the memory size in GB."""
    return billed_ms / 1000 * memory_mb / 1024


def run_handler(handler: Any, event: Any, context: Any) -> tuple[bool, Any]:
    """Call a handler the way the Lambda runtime does.

    Returns (True, result) with the result checked to be JSON-serialisable, or
    (False, error dict) in Lambda's `errorMessage/errorType/stackTrace` shape. Used by
    both the process runtime (inside an instance) and the inline runtime (in tests).
    """
    try:
        result = handler(event, context)
    except MemoryError:
        return False, {"errorMessage": f"function exceeded its memory limit ({context.memory_limit_in_mb} MB)",
                       "errorType": "Runtime.OutOfMemory", "stackTrace": []}
    except Exception as exc:  # noqa: BLE001 - a handler may raise anything; it becomes the error
        frames = traceback.extract_tb(exc.__traceback__)[1:]  # from the handler down, as Lambda shows
        return False, {"errorMessage": str(exc) or type(exc).__name__, "errorType": type(exc).__name__,
                       "stackTrace": [line.rstrip("\n") for line in traceback.format_list(frames)]}
    try:
        json.dumps(result)
    except (TypeError, ValueError) as exc:
        return False, {"errorMessage": f"Unable to marshal response: {exc}", "errorType": "Runtime.MarshalError",
                       "stackTrace": []}
    return True, result


def error_from_dict(payload: dict[str, Any]) -> InvocationError:
    """The typed exception for an error payload produced by `run_handler`."""
    cls = OutOfMemory if payload.get("errorType") == "Runtime.OutOfMemory" else FunctionError
    return cls(payload.get("errorMessage", ""), payload.get("errorType", "Error"), payload.get("stackTrace"))
