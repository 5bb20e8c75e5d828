"""A function's log, as Lambda's Python runtime writes it.

Nearly every real handler logs through the `logging` module
(`logging.getLogger().setLevel(logging.INFO)`, then `logger.info(...)`), which prints
nothing without a handler on the root logger. Lambda's runtime installs one before it
imports the function's code; so does the zygote, before it imports the app (a module's own
`logging.basicConfig()` is then a no-op, as on Lambda). Each line carries the request id
of the invocation it belongs to. The platform's `START`, `END` and `REPORT` lines around
each invocation are the node's (squall.runtime.platform), as on Lambda they are the
platform's: a warm invocation whose handler prints nothing costs the instance no log.

A function declared with `log_format="JSON"` gets Lambda's JSON format instead, set up once
when its instance starts: the root handler writes the runtime interface client's JSON
records, filtered by `application_log_level` (as Lambda filters them). The text path pays
nothing for it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from squall.errors import ConfigError

if TYPE_CHECKING:
    from squall.app import FunctionConfig

E = TypeVar("E", bound=StrEnum)

#: the request id lines are attributed to (set by the instance for each invocation)
_current_request_id = ""
#: the root logger's handler, installed by the zygote and set up per function in its instances
_handler: logging.Handler | None = None


class LogFormat(StrEnum):
    """Lambda's `LoggingConfig.LogFormat`."""

    TEXT = "Text"
    JSON = "JSON"


class ApplicationLogLevel(StrEnum):
    """Lambda's `LoggingConfig.ApplicationLogLevel`: the function's own records kept."""

    TRACE = "TRACE"
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"
    FATAL = "FATAL"


class SystemLogLevel(StrEnum):
    """Lambda's `LoggingConfig.SystemLogLevel`: the platform's records kept."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"


#: each application level as a `logging` level (the runtime interface client reads TRACE as DEBUG)
_PYTHON_LEVELS = {ApplicationLogLevel.TRACE: logging.DEBUG, ApplicationLogLevel.DEBUG: logging.DEBUG,
                  ApplicationLogLevel.INFO: logging.INFO, ApplicationLogLevel.WARN: logging.WARNING,
                  ApplicationLogLevel.ERROR: logging.ERROR, ApplicationLogLevel.FATAL: logging.CRITICAL}

def check_logging(what: str, log_format: Any, application_log_level: Any, system_log_level: Any
                  ) -> tuple[LogFormat, ApplicationLogLevel | None, SystemLogLevel | None]:
    """The three options as Lambda's API takes them (exact values; levels only with the
    JSON format, as Lambda filters by level only there), or a ConfigError naming the bad one."""
    fmt = _member(what, "log_format", LogFormat, log_format)
    application = None if application_log_level is None else _member(what, "application_log_level",
                                                                      ApplicationLogLevel, application_log_level)
    system = None if system_log_level is None else _member(what, "system_log_level", SystemLogLevel,
                                                           system_log_level)
    if fmt is LogFormat.TEXT:
        for name, level in (("application_log_level", application), ("system_log_level", system)):
            if level is not None:
                raise ConfigError(f"{what}: {name}={level.value!r} needs log_format='JSON' (Lambda filters log "
                                  f"levels only in its JSON format)")
    return fmt, application, system


def _member(what: str, option: str, kind: type[E], value: Any) -> E:
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            pass
    allowed = ", ".join(repr(member.value) for member in kind)
    raise ConfigError(f"{what}: invalid {option} {value!r}: must be one of {allowed}")


def application_level(config: FunctionConfig) -> ApplicationLogLevel | None:
    """The level the function's records are filtered at (`AWS_LAMBDA_LOG_LEVEL`): INFO
    unless set, in the JSON format; none in the text format."""
    if config.log_format is not LogFormat.JSON:
        return None
    return config.application_log_level or ApplicationLogLevel.INFO


class LambdaFormatter(logging.Formatter):
    """`[LEVEL]\\t<ISO time>Z\\t<request id>\\t<message>`, Lambda's text format."""

    converter = staticmethod(time.gmtime)  # UTC: the Z of the format

    def __init__(self) -> None:
        super().__init__("[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
                         "%Y-%m-%dT%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        record.aws_request_id = _current_request_id
        return super().format(record)


#: LogRecord attributes that are not a record's extra fields (the runtime interface client's list)
_RESERVED = frozenset({
    "name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module", "exc_info", "exc_text",
    "stack_info", "lineno", "funcName", "created", "msecs", "relativeCreated", "thread", "threadName",
    "processName", "process", "aws_request_id", "tenant_id", "_frame_type",
})
_encode = json.JSONEncoder(ensure_ascii=False).encode


class JsonFormatter(logging.Formatter):
    """One JSON object per record, as the runtime interface client's JsonFormatter writes it:
    `timestamp`, `level`, `message`, `logger`, `requestId`, and for an exception
    `stackTrace`, `errorType`, `errorMessage` and `location`, then the record's extra fields
    (`logger.info("x", extra={"order": 1})`). The level is the record's rounded down to a
    standard one."""

    def format(self, record: logging.LogRecord) -> str:
        record.levelno = min(50, max(0, record.levelno)) // 10 * 10
        record.levelname = logging.getLevelName(record.levelno)
        exc_info = record.exc_info
        result: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "stackTrace": traceback.format_tb(exc_info[2]) if exc_info else None,
            "errorType": exc_info[0].__name__ if exc_info and exc_info[0] else None,
            "errorMessage": str(exc_info[1]) if exc_info else None,
            "requestId": _current_request_id,
            "location": f"{record.pathname}:{record.funcName}:{record.lineno}" if exc_info else None,
        }
        result.update((key, value) for key, value in record.__dict__.items()
                      if key not in _RESERVED and key not in result)
        return _encode({key: value for key, value in result.items() if value is not None})


def install(stream: TextIO | None = None) -> None:
    """Give the root logger Lambda's handler (in the zygote, before the app is imported)."""
    global _handler
    _handler = logging.StreamHandler(stream or sys.stdout)
    _handler.setFormatter(LambdaFormatter())
    logging.getLogger().addHandler(_handler)


def function_log(config: FunctionConfig, stream: TextIO | None = None) -> InvocationLog:
    """Set the instance's log up for its function (before its handler module is imported,
    as Lambda's runtime does): the text format as installed, or the JSON format with the
    root logger at `application_log_level`, as the runtime interface client sets it."""
    level = application_level(config)
    if level is None:
        return InvocationLog(stream)
    python_level = _PYTHON_LEVELS[level]
    if _handler is not None:
        _handler.setFormatter(JsonFormatter())
        _handler.setLevel(python_level)  # what Lambda drops below the level, whatever the logger's own
    logging.getLogger().setLevel(python_level)
    return JsonInvocationLog(python_level, stream)


class InvocationLog:
    """What the runtime itself writes in Lambda's text format: a failed invocation's or
    initialisation's error. It also keeps the request id the log lines carry. (The
    platform's START, END and REPORT are the node's: squall.runtime.platform.)"""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout

    def start(self, request_id: str) -> None:
        global _current_request_id
        _current_request_id = request_id

    def end(self) -> None:
        global _current_request_id
        _current_request_id = ""

    def error(self, error_type: str, message: str, stack: list[str] | None, request_id: str = "") -> None:
        """A failed invocation or initialisation, as the runtime logs it: `[ERROR] Type:
        message`, then the trace (its header even when empty; none without a trace at all)."""
        lines = [f"[ERROR] {error_type}: {message}" if message else f"[ERROR] {error_type}"]
        if stack is not None:
            lines.append("Traceback (most recent call last):")
            lines += [line for element in stack for line in element.splitlines() or [""]]
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()


class JsonInvocationLog(InvocationLog):
    """The runtime's error record in Lambda's JSON format, kept at or above `application_level`."""

    def __init__(self, application_level: int, stream: TextIO | None = None):
        super().__init__(stream)
        self.application_level = application_level

    def error(self, error_type: str, message: str, stack: list[str] | None, request_id: str = "") -> None:
        if self.application_level <= logging.ERROR:
            record = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), "level": "ERROR",
                      "errorMessage": message, "errorType": error_type, "requestId": request_id,
                      "stackTrace": stack or []}
            self.stream.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.stream.flush()
