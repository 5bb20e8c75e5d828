"""A function's log, as Lambda's Python runtime writes it.

Nearly every real handler logs through the `logging` module
(`logging.getLogger().setLevel(logging.INFO)`, then `logger.info(...)`), which prints
nothing without a handler on the root logger. Lambda's runtime installs one before it
imports the function's code; so does the zygote, before it imports the app (a module's own
`logging.basicConfig()` is then a no-op, as on Lambda). Each line carries the request id
of the invocation it belongs to, and each invocation is framed by the platform's `START`,
`END` and `REPORT` lines — written by the instance itself, on its own CPU, so the node's
throughput does not pay for them.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from squall.runtime.invocation import report_line

#: the request id lines are attributed to (set by the instance for each invocation)
_current_request_id = ""


class LambdaFormatter(logging.Formatter):
    """`[LEVEL]\\t<ISO time>Z\\t<request id>\\t<message>`, Lambda's text format."""

    converter = staticmethod(time.gmtime)  # UTC: the Z of the format

    def __init__(self) -> None:
        super().__init__("[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
                         "%Y-%m-%dT%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        record.aws_request_id = _current_request_id
        return super().format(record)


def install(stream: TextIO | None = None) -> None:
    """Give the root logger Lambda's handler (in the zygote, before the app is imported)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(LambdaFormatter())
    logging.getLogger().addHandler(handler)


class InvocationLog:
    """The platform's lines around one instance's invocations."""

    def __init__(self, memory_mb: int, init_ms: float, stream: TextIO | None = None):
        self.memory_mb = memory_mb
        self.init_ms: float | None = init_ms  # reported with the first invocation only
        self.stream = stream or sys.stdout

    def start(self, request_id: str) -> None:
        global _current_request_id
        _current_request_id = request_id
        self.stream.write(f"START RequestId: {request_id} Version: $LATEST\n")

    def error(self, error_type: str, message: str, stack: list[str]) -> None:
        """A failed invocation, as Lambda logs it: `[ERROR] Type: message` and the trace."""
        lines = [f"[ERROR] {error_type}: {message}"]
        if stack:
            lines += ["Traceback (most recent call last):", *stack]
        self.stream.write("\n".join(lines) + "\n")

    def end(self, request_id: str, duration_ms: float, max_memory_mb: int) -> None:
        global _current_request_id
        report = report_line(request_id, duration_ms, self.memory_mb, max_memory_mb, self.init_ms)
        self.init_ms = None
        self.stream.write(f"END RequestId: {request_id}\n{report}\n")
        self.stream.flush()
        _current_request_id = ""
