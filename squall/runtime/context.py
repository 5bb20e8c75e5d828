"""The `ctx` a handler receives: what a Lambda context offers, plus the platform services."""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from squall import aws
from squall.backends import Backend
from squall.backends.deadline import bind as deadline_bound
from squall.errors import ConfigError, PayloadTooLarge
from squall.objects import ObjectStore
from squall.runtime import wire
from squall.services import Bucket, Queue, Table
from squall.sources.async_invoke import async_queue

if TYPE_CHECKING:
    from squall.app import App

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})
DAY = 86400


@functools.lru_cache(maxsize=2)
def _utc_date(day: int) -> str:
    """The UTC date Lambda names log streams by, formatted once a day, not per invocation."""
    return time.strftime("%Y/%m/%d", time.gmtime(day * DAY))

#: Lambda's payload limits for synchronous and asynchronous invocations.
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD = 256 * 1024


class Caller(Protocol):
    """Runs a synchronous invocation on behalf of a handler (`ctx.invoke`), carrying the
    current invocation's headers."""

    def __call__(self, function: str, payload: str, headers: Mapping[str, str]) -> Any:
        """Run `function` with `payload` (JSON text); its result, or raise its error."""


class Logger:
    """Structured JSON log lines (Lambda's JSON log format) carrying the request id."""

    def __init__(self, function: str, request_id: str, stream: TextIO | None = None):
        self.function = function
        self.request_id = request_id
        self.stream = stream or sys.stdout

    def __call__(self, message: Any) -> None:
        """`context.log(msg)`, as the Python Lambda context has it: the text, as is, to the
        function's log."""
        text = str(message)
        self.stream.write(text if text.endswith("\n") else text + "\n")
        self.stream.flush()

    def log(self, level: str, message: str, **fields: Any) -> None:
        line = {"timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "level": level, "message": message, "function": self.function, "requestId": self.request_id}
        line.update(fields)
        self.stream.write(json.dumps(line, default=str) + "\n")
        self.stream.flush()

    def debug(self, message: str, **fields: Any) -> None:
        self.log("DEBUG", message, **fields)

    def info(self, message: str, **fields: Any) -> None:
        self.log("INFO", message, **fields)

    def warning(self, message: str, **fields: Any) -> None:
        self.log("WARN", message, **fields)

    def error(self, message: str, **fields: Any) -> None:
        self.log("ERROR", message, **fields)


class Context:
    """Passed as the second argument of every handler.

    Lambda attributes: `aws_request_id`, `function_name`, `function_version`,
    `memory_limit_in_mb`, `invoked_function_arn`, `get_remaining_time_in_millis()`.
    Services: `table(name)`, `queue(name)`, `objects(bucket)`, `invoke(...)`, `invoke_async(...)`, `log`.
    `invocation_headers` is the invocation's context map, set by the platform's
    interceptors (a trace context, for one); nested `ctx.invoke` calls carry it on.
    """

    function_version = "$LATEST"

    def __init__(self, app: App, function: str, request_id: str, deadline: float,
                 backend: Callable[[], Backend], caller: Caller, known_queues: set[str],
                 objects: Callable[[], ObjectStore], headers: Mapping[str, str] | None = None,
                 log_stream: str | None = None):
        config = app.config(function)
        self.app = app
        self.function_name = function
        self.aws_request_id = request_id
        self.memory_limit_in_mb = config.memory_mb
        self.invoked_function_arn = aws.arn("lambda", f"function:{function}")
        self.log_group_name = f"/aws/lambda/{function}"
        #: the instance's log stream (the inline runtime has none: one of the same form per call)
        self.log_stream_name = log_stream or f"{_utc_date(int(time.time()) // DAY)}/[$LATEST]{request_id[:8]}"
        self.invocation_headers: Mapping[str, str] = _NO_HEADERS if not headers else MappingProxyType(headers)
        self.log = Logger(function, request_id)
        self._deadline = deadline
        # every ctx call gives up by the invocation's deadline, so a backend that cannot
        # answer is the handler's error (HTTP 500), not the invocation's timeout (504)
        self._backend = deadline_bound(backend, deadline)
        self._caller = caller
        self._known_queues = known_queues
        self._objects = objects

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))

    def table(self, name: str) -> Table:
        return Table(self._backend, name)

    def queue(self, name: str) -> Queue:
        return Queue(self._backend, name, known=self._known_queues)

    def objects(self, bucket: str) -> Bucket:
        return Bucket(self._objects(), bucket)

    def invoke(self, function: str, payload: Any = None) -> Any:
        """Invoke a function synchronously and return its result (raises FunctionError)."""
        self.app.config(function)
        body = _check_payload(payload, MAX_SYNC_PAYLOAD, "synchronous")
        return self._caller(function, body, self.invocation_headers)

    def invoke_async(self, function: str, payload: Any = None) -> str:
        """Queue an asynchronous invocation (retried twice on failure); returns its id."""
        self.app.config(function)
        body = _check_payload(payload, MAX_ASYNC_PAYLOAD, "asynchronous")
        return self._backend.enqueue(async_queue(function), body)


def _check_payload(payload: Any, limit: int, kind: str) -> str:
    try:
        body = wire.dumps(payload).decode()
    except wire.WireError as exc:
        raise ConfigError(f"{kind} invocation payload cannot be sent as JSON: {exc}") from None
    if len(body) > limit:
        raise PayloadTooLarge(f"{kind} invocation payload is {len(body)} bytes; the limit is {limit} bytes")
    return body
