"""Typed errors. Every failure Squall raises on purpose is a `SquallError`.

The CLI prints `str(error)` as one line and exits non-zero; the gateway maps each
class to an HTTP status with a JSON body. Nothing here carries a stack trace to
the caller.
"""

from __future__ import annotations


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
    or is the handler's exception class name; `outcome` is the metering outcome.
    """

    outcome = "error"

    def __init__(self, message: str, error_type: str = "Error", stack: list[str] | None = None):
        super().__init__(message)
        self.error_type = error_type
        self.stack = stack or []

    def to_dict(self) -> dict:
        """The payload Lambda returns for a failed invocation."""
        return {"errorMessage": str(self), "errorType": self.error_type, "stackTrace": self.stack}


class FunctionError(InvocationError):
    """The handler raised an exception."""


class FunctionTimeout(InvocationError):
    outcome = "timeout"


class OutOfMemory(InvocationError):
    outcome = "oom"


class InstanceCrashed(InvocationError):
    """The instance process died (os._exit, a signal) before returning."""

    outcome = "crash"


class Throttled(InvocationError):
    """No instance became free within the allowed wait (reserved concurrency)."""

    outcome = "throttled"
