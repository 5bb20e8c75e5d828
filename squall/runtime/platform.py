"""The platform's lines in a function's log: what Lambda itself writes around each
invocation, not the function's runtime.

In Lambda's text format these are `START`, `END` and `REPORT` (and, for a timeout, `Task
timed out after ...`); in its JSON format the system records `platform.start`,
`platform.runtimeDone` and `platform.report`, kept at or above the function's
`system_log_level`. The node writes them, as Lambda's platform does: it knows every figure
they carry, including for an invocation whose instance timed out, crashed or ran out of
memory and so could never write its own. An instance whose handler prints nothing sends
no log at all, which keeps a warm invocation to one message each way.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from squall.errors import FunctionTimeout
from squall.runtime.logs import LogFormat, SystemLogLevel

if TYPE_CHECKING:
    from squall.app import FunctionConfig
    from squall.runtime.invocation import Invocation

_SYSTEM_RANK = {SystemLogLevel.DEBUG: 0, SystemLogLevel.INFO: 1, SystemLogLevel.WARN: 2}


class PlatformLog:
    """The platform's lines for one function's invocations (its format chosen once)."""

    def __init__(self, config: FunctionConfig):
        self._json = config.log_format is LogFormat.JSON
        rank = _SYSTEM_RANK[config.system_log_level or SystemLogLevel.INFO]
        self._info = rank <= _SYSTEM_RANK[SystemLogLevel.INFO]
        self._debug = rank <= _SYSTEM_RANK[SystemLogLevel.DEBUG]
        #: whether `end` reports the size of the result (the JSON format's runtimeDone)
        self.counts_bytes = self._json and self._debug

    def start(self, request_id: str) -> str:
        """What precedes the invocation's own output."""
        if not self._json:
            return f"START RequestId: {request_id} Version: $LATEST\n"
        if not self._info:
            return ""
        return _system("platform.start", {"requestId": request_id, "version": "$LATEST"})

    def end(self, invocation: Invocation, init_ms: float | None, produced_bytes: int = 0,
            started: bool = True) -> str:
        """What follows it, once it has ended however it ended (preceded by `start`'s
        lines unless `started`: they were written with its first output). `init_ms` is
        reported with an instance's first invocation, whether it was a cold start or the
        instance was provisioned ahead (as Lambda reports a provisioned environment's init)."""
        error = invocation.error
        request_id = invocation.request_id
        if not self._json:
            lines = "" if started else f"START RequestId: {request_id} Version: $LATEST\n"
            if isinstance(error, FunctionTimeout):  # the platform's own line, before END
                lines += f"{_now()} {request_id} {error}\n"
            return f"{lines}END RequestId: {request_id}\n{invocation.report_line(init_ms)}\n"
        status: dict[str, Any] = {"status": "success"} if error is None else {
            "status": "timeout" if isinstance(error, FunctionTimeout) else "error", "errorType": error.error_type}
        lines = "" if started else self.start(request_id)
        if self._debug:
            lines += _system("platform.runtimeDone", {
                "requestId": request_id, **status,
                "metrics": {"durationMs": round(invocation.duration_ms, 3), "producedBytes": produced_bytes}})
        if self._info:
            metrics: dict[str, Any] = {
                "durationMs": round(invocation.duration_ms, 2), "billedDurationMs": invocation.billed_ms,
                "memorySizeMB": invocation.memory_mb, "maxMemoryUsedMB": invocation.max_memory_mb}
            if init_ms is not None:
                metrics["initDurationMs"] = round(init_ms, 2)
            lines += _system("platform.report", {"requestId": request_id, "metrics": metrics, **status})
        return lines


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _system(kind: str, record: dict[str, Any]) -> str:
    return json.dumps({"time": _now(), "type": kind, "record": record}, separators=(",", ":")) + "\n"
