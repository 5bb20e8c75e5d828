"""Argument checks and condition semantics shared by every backend.

Both backends call these before they touch their store, so a bad argument fails the same
way (same class, same text) on SQLite and on Redis, and nothing is written. They are cheap:
plain comparisons on the caller's thread, no round trip.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from squall.backends.fifo import FIFO_SUFFIX, SEQUENCE_PLACEHOLDER, SEQUENCE_WIDTH, FifoEntry, PublishOnce, is_fifo
from squall.backends.protocol import Consumed, DeadLetter, FanOutEntry, Item, Release
from squall.errors import ConditionFailed, ConfigError

#: the most shards a stream may have (a shard is a row, or a Redis key, created up front)
MAX_SHARDS = 1024


def count(name: str, value: int, minimum: int = 0) -> int:
    """An integer >= `minimum` (a bool is not a count)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def optional_count(name: str, value: int | None, minimum: int = 0) -> int | None:
    return None if value is None else count(name, value, minimum)


def seconds(name: str, value: float, *, positive: bool = False) -> float:
    """A finite duration, >= 0 (or > 0 when `positive`)."""
    if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
            or value < 0 or (positive and value == 0)):
        raise ConfigError(f"{name} must be a finite number of seconds {'>' if positive else '>='} 0, got {value!r}")
    return float(value)


def instant(name: str, value: float) -> float:
    """A finite time (seconds since the epoch)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite time in seconds, got {value!r}")
    return float(value)


def distinct_queues(queue: str, other: str, role: str) -> None:
    """A message can move only to another queue of the same kind (FIFO or standard), as SQS
    requires of a dead-letter queue and a redrive."""
    if queue == other:
        raise ConfigError(f"queue {queue!r} cannot be its own {role}")
    if is_fifo(queue) != is_fifo(other):
        kind = "a FIFO" if is_fifo(queue) else "a standard"
        raise ConfigError(f"the {role} {other!r} of {queue!r} must be {kind} queue too")


def standard_queue(queue: str) -> None:
    """A FIFO queue takes messages with their group and deduplication id only."""
    if is_fifo(queue):
        raise ConfigError(f"queue {queue!r} is a FIFO queue: its messages need a group (enqueue_fifo)")


def fifo_entries(queue: str, entries: Sequence[FifoEntry], delay: float) -> float:
    """Check a FIFO send; its delay."""
    if not is_fifo(queue):
        raise ConfigError(f"queue {queue!r} is not a FIFO queue (its name does not end in {FIFO_SUFFIX!r})")
    for entry in entries:
        if not entry.group or not entry.dedup_id:
            raise ConfigError(f"a message to FIFO queue {queue!r} needs a group and a deduplication id")
    return seconds("delay", delay)


def fan_out(entries: Sequence[FanOutEntry], counters: str, counts: Mapping[str, int], once: PublishOnce | None,
            consumed: Consumed | None) -> dict[str, int]:
    """Check a fan-out (its attributes are checked as each backend writes them out, before
    it writes anything). Each distinct consumed receipt with its index, in order."""
    if counts and not counters:
        raise ConfigError("a fan-out with counts needs the table of its counters")
    receipts: dict[str, int] = {}
    if consumed is not None:
        if once is not None:
            raise ConfigError("a fan-out that consumes claimed messages cannot be a FIFO publish")
        for receipt in consumed.receipts:
            receipts.setdefault(receipt, len(receipts))
    source = consumed.queue if consumed is not None else None
    for entry in entries:
        if entry.queue.endswith(FIFO_SUFFIX):
            fifo_entries(entry.queue, [FifoEntry(entry.body, None, entry.group or "", entry.dedup_id or "")], 0.0)
        elif entry.group is not None or entry.dedup_id is not None:
            raise ConfigError(f"queue {entry.queue!r} is a standard queue: its messages have no group or "
                              f"deduplication id")
        at = entry.sequence_at
        if at is not None and (once is None or entry.body[at:at + SEQUENCE_WIDTH] != SEQUENCE_PLACEHOLDER):
            raise ConfigError(f"a fan-out entry to {entry.queue!r} has no sequence number placeholder at {at} "
                              f"(or the fan-out is no FIFO publish)")
        if entry.queue == source:
            raise ConfigError(f"a fan-out consuming from queue {entry.queue!r} cannot append to it")
        if entry.receipt is not None and entry.receipt not in receipts:
            raise ConfigError(f"a fan-out entry to {entry.queue!r} names receipt {entry.receipt!r}, which the "
                              f"fan-out does not consume")
    return receipts


def shard_count(stream: str, shards: int) -> int:
    if not isinstance(shards, int) or isinstance(shards, bool) or not 1 <= shards <= MAX_SHARDS:
        raise ConfigError(f"stream {stream!r}: shard count must be an integer from 1 to {MAX_SHARDS}, got {shards!r}")
    return shards


def json_text(what: str, value: Any) -> str:
    """The compact JSON text of a value, or ConfigError if it has none."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{what} must be JSON-serialisable: {e}") from e


# ---- table conditions -------------------------------------------------------------------


def condition(if_version: int | None, if_absent: bool) -> None:
    """Check a write condition's arguments (see `Tables`)."""
    optional_count("if_version", if_version)
    if if_absent and if_version is not None:
        raise ConfigError("if_absent and if_version cannot be combined: an absent item has no version")


def require(table: str, key: str, current: Item | None, *, if_version: int | None = None,
            if_absent: bool = False) -> None:
    """Raise ConditionFailed unless `current` (None: no item) is what the condition expects."""
    if if_absent and current is not None:
        expected = "no item"
    elif if_version is not None and (current is None or current.version != if_version):
        expected = f"version {if_version}"
    else:
        return
    found = f"version {current.version}" if current else "no item"
    raise ConditionFailed(f"table {table!r} key {key!r}: expected {expected}, found {found}")


def next_version(current: Item | None) -> int:
    return current.version + 1 if current else 1


# ---- queues -----------------------------------------------------------------------------


def claim(queue: str, max_messages: int, visibility_timeout: float, max_receives: int | None,
          dlq: str | None) -> tuple[float, tuple[int, str] | None]:
    """Check a claim's arguments; (visibility timeout, redrive policy): the policy is
    (max receives, DLQ) when both are given, else None (the claim moves nothing)."""
    count("max_messages", max_messages)
    timeout = seconds("visibility_timeout", visibility_timeout)
    optional_count("max_receives", max_receives, 1)
    if dlq is not None:
        distinct_queues(queue, dlq, "dead-letter queue")
    return timeout, (max_receives, dlq) if max_receives is not None and dlq is not None else None


def settle(queue: str, releases: Sequence[Release], dead_letters: Sequence[DeadLetter], dlq: str | None,
           claim_count: int, visibility_timeout: float,
           max_receives: int | None) -> tuple[list[float], list[str | None], float, tuple[int, str] | None]:
    """Check a `Queues.settle`'s arguments: (each release's delay, each dead letter's added
    attributes as a JSON object or None, the claim's visibility timeout and redrive policy)."""
    timeout, policy = claim(queue, claim_count, visibility_timeout, max_receives, dlq)
    delays = [seconds("delay", release.delay) for release in releases]
    if dead_letters and dlq is None:
        raise ConfigError(f"queue {queue!r}: dead letters need a dead-letter queue")
    added = [json_text("message attributes", entry.attributes) if entry.attributes else None
             for entry in dead_letters]
    return delays, added, timeout, policy
