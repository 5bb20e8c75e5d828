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
from squall.observability import lineage
from squall.observability.context import TRACE_ATTRIBUTE, TRACEPARENT, trace_attribute
from squall.runtime import wire
from squall.services import Bucket, Queue, Table
from squall.sources.async_invoke import queue_async
from squall.sources.events import put_events
from squall.sources.publishing import Publisher, PublishResult
from squall.sources.topics import app_topic

if TYPE_CHECKING:
    from squall.app import App
    from squall.runtime.tracing import InvocationTrace

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


#: the invocation header carrying the invoker's client context (JSON text), as Lambda's
#: runtime API hands it to the runtime (`Lambda-Runtime-Client-Context`); taken off the
#: headers by the context, so a nested `ctx.invoke` does not carry it on (Lambda does not)
CLIENT_CONTEXT_HEADER = "lambda-runtime-client-context"


class CognitoIdentity:
    """`context.identity`: the Amazon Cognito identity of a mobile SDK caller. Squall has no
    such callers, so both are None, as in a Lambda invoked any other way."""

    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self) -> None:
        self.cognito_identity_id: str | None = None
        self.cognito_identity_pool_id: str | None = None

    def __repr__(self) -> str:
        return (f"CognitoIdentity([cognito_identity_id={self.cognito_identity_id},"
                f"cognito_identity_pool_id={self.cognito_identity_pool_id}])")


class Client:
    """`context.client_context.client`: the invoking app, as the mobile SDKs describe it."""

    __slots__ = ("installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name")

    def __init__(self, fields: Mapping[str, Any]):
        for name in self.__slots__:
            setattr(self, name, fields.get(name))

    def __repr__(self) -> str:
        return "Client([" + ",".join(f"{name}={getattr(self, name)}" for name in self.__slots__) + "])"


class ClientContext:
    """`context.client_context`, built from the invoker's JSON as Lambda's runtime builds it:
    `custom` and `env` as given (None when absent), `client` a `Client` (or None)."""

    __slots__ = ("custom", "env", "client")

    def __init__(self, fields: Mapping[str, Any]):
        self.custom: Any = fields.get("custom")
        self.env: Any = fields.get("env")
        client = fields.get("client")
        self.client: Client | None = Client(client) if isinstance(client, dict) else None

    def __repr__(self) -> str:
        return f"ClientContext([custom={self.custom},env={self.env},client={self.client}])"


def client_context(text: str | None) -> ClientContext | None:
    """The client context of an invocation from its JSON text; None without one (or for
    text that is not a JSON object: the CLI checks what it sends)."""
    if not text:
        return None
    try:
        fields = json.loads(text)
    except ValueError:
        return None
    return ClientContext(fields) if isinstance(fields, dict) else None


class Context:
    """Passed as the second argument of every handler.

    Lambda attributes, as the runtime interface client's `LambdaContext` has them:
    `aws_request_id`, `function_name`, `function_version`, `memory_limit_in_mb` (a string:
    the runtime reads it from the environment), `invoked_function_arn`, `log_group_name`,
    `log_stream_name`, `identity`, `client_context`, `tenant_id`,
    `get_remaining_time_in_millis()`, `log(msg)`.
    Services: `table(name)`, `queue(name)`, `publish(topic, ...)`, `objects(bucket)`, `invoke(...)`,
    `invoke_async(...)`, `put_events(entries)`, `log`.
    `invocation_headers` is the invocation's context map, set by the platform's
    interceptors (a trace context, for one); nested `ctx.invoke` calls carry it on.
    """

    function_version = "$LATEST"

    def __init__(self, app: App, function: str, request_id: str, deadline: float,
                 backend: Callable[[], Backend], caller: Caller, known_queues: set[str],
                 objects: Callable[[], ObjectStore], headers: Mapping[str, str] | None = None,
                 log_stream: str | None = None, trace: InvocationTrace | None = None):
        """`trace`: the invocation's trace context, which sends and calls carry on (and
        record spans of) — an instance's; None where nothing collects spans."""
        config = app.config(function)
        self.app = app
        self.function_name = function
        self.aws_request_id = request_id
        self.memory_limit_in_mb = str(config.memory_mb)
        self.invoked_function_arn = aws.arn("lambda", f"function:{function}")
        self.log_group_name = f"/aws/lambda/{function}"
        #: the instance's log stream (the inline runtime has none: one of the same form per call)
        self.log_stream_name = log_stream or f"{_utc_date(int(time.time()) // DAY)}/[$LATEST]{request_id[:8]}"
        self.identity = CognitoIdentity()
        self.client_context: ClientContext | None = None
        self.tenant_id: str | None = None
        if headers and CLIENT_CONTEXT_HEADER in headers:
            headers = dict(headers)
            self.client_context = client_context(headers.pop(CLIENT_CONTEXT_HEADER))
        self.invocation_headers: Mapping[str, str] = _NO_HEADERS if not headers else MappingProxyType(headers)
        self.log = Logger(function, request_id)
        self._deadline = deadline
        # every ctx call gives up by the invocation's deadline, so a backend that cannot
        # answer is the handler's error (HTTP 500), not the invocation's timeout (504)
        self._backend = deadline_bound(backend, deadline)
        self._caller = caller
        self._known_queues = known_queues
        self._objects = objects
        self._trace = trace
        self._lineage: str | None = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))

    @property
    def lineage(self) -> str:
        """The lineage every event this invocation sends carries (squall.observability.lineage):
        the chain's, with this function's count one higher. Made at the first send."""
        if self._lineage is None:
            self._lineage = lineage.hop(self.invocation_headers.get(lineage.LINEAGE), self.function_name)
        return self._lineage

    def table(self, name: str) -> Table:
        return Table(self._backend, name)

    def queue(self, name: str) -> Queue:
        return Queue(self._backend, name, known=self._known_queues, trace=self._trace, lineage=self.lineage)

    def objects(self, bucket: str) -> Bucket:
        return Bucket(self._objects(), bucket)

    def put_events(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """EventBridge's PutEvents: `[{"Source", "DetailType", "Detail", "EventBusName",
        "Resources", "Time"}, ...]` (1 to 10, 256 KB in all); returns `{"FailedEntryCount",
        "Entries": [{"EventId"} | {"ErrorCode", "ErrorMessage"}]}`. Durable once it returns."""
        return put_events(self._backend, entries, self._known_queues, self._trace)

    def publish(self, topic: str, message: str, attributes: Mapping[str, Any] | None = None,
                subject: str | None = None, group_id: str | None = None, dedup_id: str | None = None
                ) -> PublishResult:
        """Publish `message` to `topic` (SNS's Publish); its MessageId once every
        subscription's delivery is committed (a str, whose `sequence_number` is a FIFO
        topic's SequenceNumber)."""
        return Publisher(self._backend, self._trace).publish(app_topic(self.app, topic), message, attributes,
                                                             subject, group_id, dedup_id)

    def invoke(self, function: str, payload: Any = None) -> Any:
        """Invoke a function synchronously and return its result (raises FunctionError)."""
        self.app.config(function)
        body = check_payload(payload, MAX_SYNC_PAYLOAD, "synchronous")
        headers = {**self.invocation_headers, lineage.LINEAGE: self.lineage}
        if self._trace is not None:  # called inside a span of the handler's own: under that span
            current = self._trace.current()
            if current != self._trace.context:
                headers[TRACEPARENT] = current.traceparent()
        return self._caller(function, body, headers)

    def invoke_async(self, function: str, payload: Any = None) -> str:
        """Queue an asynchronous invocation (retried twice on failure); returns its id."""
        self.app.config(function)
        # every attempt at it (the retries too) continues the caller's trace and chain
        context = None if self._trace is None else self._trace.current()
        return queue_async(self._backend, function, payload, {TRACE_ATTRIBUTE: trace_attribute(context, self.lineage)})


def check_payload(payload: Any, limit: int, kind: str) -> str:
    try:
        body = wire.dumps(payload).decode()
    except wire.WireError as exc:
        raise ConfigError(f"{kind} invocation payload cannot be sent as JSON: {exc}") from None
    if len(body) > limit:
        raise PayloadTooLarge(f"{kind} invocation payload is {len(body)} bytes; the limit is {limit} bytes")
    return body
