"""Argument checks shared by declarations and services: names and numbers as AWS limits
them, each failure a `ConfigError` that names the value and the rule."""

from __future__ import annotations

import re
from typing import Any

from squall.errors import ConfigError

FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")


def check_name(kind: str, name: Any, pattern: re.Pattern[str]) -> str:
    """Return `name` if it matches `pattern`, else raise a ConfigError that says why."""
    if not isinstance(name, str) or not pattern.fullmatch(name):
        raise ConfigError(f"invalid {kind} name {name!r}: must match {pattern.pattern}")
    return name


def check_queue_name(name: Any) -> str:
    """Queue names as SQS allows them; FIFO queues end in `.fifo` (within the 80 characters)."""
    base = name[:-5] if isinstance(name, str) and name.endswith(".fifo") else name
    check_name("queue", base, QUEUE_NAME)
    if len(name) > 80:
        raise ConfigError(f"invalid queue name {name!r}: at most 80 characters, '.fifo' included")
    return str(name)


def check_number(what: str, value: Any, low: float, high: float, integer: bool = False) -> None:
    """`value` must be a number (an int with `integer`) from `low` to `high`; bools are not numbers."""
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        raise ConfigError(f"invalid {what} {value!r}: must be a{'n integer' if integer else ' number'} "
                          f"from {low:g} to {high:g}")
