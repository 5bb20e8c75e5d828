"""Typed errors. Every failure Squall raises on purpose is a `SquallError`.

The CLI prints `str(error)` as one line and exits non-zero; the gateway maps each
class to an HTTP status with a JSON body. Nothing here carries a stack trace to
the caller.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """How an invocation ended, as metering records it."""

    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"
    OOM = "oom"
    CRASH = "crash"
    THROTTLED = "throttled"


class SquallError(Exception):
    """Base class of every error Squall raises on purpose."""


class ConfigError(SquallError, ValueError):
    """A declaration or argument is invalid (bad name, negative timeout, ...)."""


class AppLoadError(SquallError):
    """The app file could not be loaded (missing, syntax error, no `App` in it)."""


class NotFound(SquallError, LookupError):
    """A named thing (function, queue, route) does not exist."""


class FunctionNotFound(NotFound):
    pass


class QueueNotFound(NotFound):
    pass


class PayloadTooLarge(SquallError):
    """A payload is over the limit AWS sets for the same operation."""


class ConditionFailed(SquallError):
    """A conditional table write found the item in another state."""


class BackendUnavailable(SquallError):
    """The backend (SQLite file or Redis server) cannot be reached."""


class InvocationError(SquallError):
    """An invocation did not return a result.

    `error_type` follows Lambda's names (`Runtime.ExitError`, `Sandbox.Timedout`...)
    or is the handler's exception class name; `outcome` is the metering outcome, and
    `http_status` / `http_message` what API Gateway answers for it. Each subclass sets
    all three, so a new kind of failure cannot leave a caller without a status.
    """

    outcome = Outcome.ERROR
    http_status = 500
    http_message = "Internal Server Error"
    #: False when running the same event again cannot succeed (a queue dead-letters it at once)
    retryable = True
    #: True when the platform failed, not the function (a queue gives the receive back)
    platform = False

    def __init__(self, message: str, error_type: str = "Error", stack: list[str] | None = None):
        super().__init__(message)
        self.error_type = error_type
        self.stack = stack or []

    def to_dict(self) -> dict[str, object]:
        """The payload Lambda returns for a failed invocation."""
        return {"errorMessage": str(self), "errorType": self.error_type, "stackTrace": self.stack}


class FunctionError(InvocationError):
    """The handler raised an exception."""


class FunctionTimeout(InvocationError):
    """The invocation ran over the function's timeout; its instance was killed."""

    outcome = Outcome.TIMEOUT
    http_status = 504
    http_message = "Endpoint request timed out"


class OutOfMemory(InvocationError):
    """The handler went over `memory_mb`; its instance was replaced."""

    outcome = Outcome.OOM
    http_status = 502


class ResponseTooLarge(InvocationError):
    """The result is over Lambda's 6 MB synchronous response limit; it was never read."""

    http_status = 502


class InitFailed(InvocationError):
    """The function's instance could not initialise: its handler module raised at import,
    has a syntax error, or lacks the handler (Lambda's `Runtime.ImportModuleError`,
    `Runtime.UserCodeSyntaxError`, `Runtime.HandlerNotFound`, or the module's own
    exception). API Gateway answers a Lambda init failure with 502."""

    http_status = 502


class InstanceCrashed(InvocationError):
    """The instance process died (os._exit, a signal) before returning."""

    outcome = Outcome.CRASH
    http_status = 502


class InvalidPayload(InvocationError):
    """The event cannot be handed to a function (JSON cannot hold it, or it is nested
    deeper than JSON decoders go): trying again cannot help."""

    http_status = 400
    http_message = "Bad Request"
    retryable = False


class RecursiveInvocation(InvocationError):
    """The event's chain already ran the function `MAX_INVOCATIONS` times
    (squall.observability.lineage): the invocation was stopped before it ran, as Lambda's
    recursive loop detection stops it (`RecursiveInvocationException`, HTTP 400). Running
    the event again would loop again, so it is not retried."""

    http_status = 400
    http_message = "Bad Request"
    retryable = False


class RuntimeUnavailable(InvocationError):
    """The node's runtime cannot start instances now (its zygote is down and restarting)."""

    outcome = Outcome.CRASH
    http_status = 503
    http_message = "Service Unavailable"
    platform = True


class Throttled(InvocationError):
    """No instance became free within the allowed wait (reserved concurrency)."""

    outcome = Outcome.THROTTLED
    http_status = 429
    http_message = "Too Many Requests"


class InvalidEventPattern(ConfigError):
    """An EventBridge event pattern (or a TestEventPattern event) AWS would refuse, with its reason."""


class InvalidFilterPolicy(ConfigError):
    """An SNS subscription filter policy AWS would refuse, with its reason."""
