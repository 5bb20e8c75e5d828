"""Lineage: how many times each function has run in one chain of events, as Lambda's
recursive loop detection counts it.

Lambda carries the count in the `Lineage` field of the X-Ray trace header
(`Root=...;Parent=...;Sampled=1;Lineage=a87bd80c:1|68fd508a:5`): one `<key>:<count>` entry
per function the chain went through, the key an 8-hex-digit hash of the function. Squall
carries it the same way: as `InvokeRequest.headers["lineage"]` (the field's value) into an
invocation, and in the `AWS.TraceHeader` system attribute of every message the
invocation's events travel in (queue sends, asynchronous invocations, destination records,
topic and bus deliveries), so it costs no user attribute and no size.

A hop is one invocation of a function that sends an event on: when an invocation of `f`
sends (a queue message, `ctx.invoke`, `ctx.invoke_async`, a destination record), the event
carries the invocation's lineage with `f`'s count one higher. An event from outside (an
HTTP request, the CLI, `squall send`) starts a chain with no lineage, and retries of an
event carry the lineage it was sent with. An invocation whose event says its function
already ran `MAX_INVOCATIONS` times in the chain is not run (`squall.core.recursion`).

Pure string work, imported by the node and by every instance: the standard library only.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

#: the invocation header carrying the lineage of the event that started it
LINEAGE = "lineage"
#: the X-Ray header's field
FIELD = "Lineage="
#: Lambda stops a function's invocation once the chain has run it this many times
MAX_INVOCATIONS = 16
#: the most functions one lineage tracks (the header stays small; the least run go first)
MAX_ENTRIES = 32

_HEX = frozenset("0123456789abcdef")


def function_key(function: str) -> str:
    """The 8 hex digits a function is known by in a lineage (CRC-32 of its name)."""
    return f"{zlib.crc32(function.encode()):08x}"


def parse(value: str | None) -> dict[str, int]:
    """The counts a lineage value holds, by function key; entries that are not
    `<8 hex>:<count>` are ignored (a malformed header costs its entries, never the event)."""
    counts: dict[str, int] = {}
    if not value:
        return counts
    for entry in value.split("|"):
        key, _, count = entry.partition(":")
        if len(key) == 8 and _HEX.issuperset(key) and count.isdigit() and len(count) <= 6:
            counts[key] = max(counts.get(key, 0), int(count))
    return counts


def encode(counts: dict[str, int]) -> str:
    """The lineage value of `counts`, the most run first, at most MAX_ENTRIES of them."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:MAX_ENTRIES]
    return "|".join(f"{key}:{count}" for key, count in ranked)


def invocations(value: str | None, function: str) -> int:
    """How many times `function` has run in the chain this lineage describes."""
    if not value:
        return 0
    key = function_key(function)
    # the function's own entry, without parsing the others (this runs on every chained invocation)
    start = value.find(key + ":")
    while start > 0 and value[start - 1] != "|":
        start = value.find(key + ":", start + 1)
    if start < 0:
        return 0
    count = value[start + 9:].partition("|")[0]
    return int(count) if count.isdigit() and len(count) <= 6 else 0


def hop(value: str | None, function: str) -> str:
    """The lineage an event sent by an invocation of `function` carries."""
    counts = parse(value)
    key = function_key(function)
    counts[key] = counts.get(key, 0) + 1
    return encode(counts)


def merge(values: Iterable[str]) -> str:
    """One lineage for events handled together (a batch): the highest count of each function."""
    counts: dict[str, int] = {}
    for value in values:
        for key, count in parse(value).items():
            counts[key] = max(counts.get(key, 0), count)
    return encode(counts)


def from_xray(header: str | None) -> str:
    """The `Lineage` field of an X-Ray header ('' without one)."""
    if not header:
        return ""
    start = header.find(FIELD)
    if start < 0 or (start and header[start - 1] not in "; "):
        return ""
    start += len(FIELD)
    end = header.find(";", start)
    return header[start:] if end < 0 else header[start:end]
