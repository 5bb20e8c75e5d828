"""EventBridge event patterns: compiled, checked as EventBridge checks them, and tested.

The full language of EventBridge's content filtering: exact strings, numbers, booleans and
null; arrays as OR; nested objects; `prefix` and `suffix` (each also with
`equals-ignore-case`); `equals-ignore-case`; `anything-but` (a value, a list, `prefix`,
`suffix`, `equals-ignore-case`, `wildcard`); `numeric` (=, <, <=, >, >= and ranges);
`exists`; `cidr` (IPv4 and IPv6); `wildcard`; `$or`. Numbers compare at 6 decimal places
within +-5e9, as event-ruler does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from squall.errors import InvalidEventPattern
from squall.routing.grammar import OPERATORS, Dialect, compile_pattern, load
from squall.routing.tree import Pattern
from squall.routing.values import NumberModel

#: PutRule's limit on EventPattern, in characters
MAX_PATTERN_SIZE = 4096
#: the fields TestEventPattern requires of an event
EVENT_FIELDS = ("id", "account", "source", "time", "region", "resources", "detail-type")

EVENTBRIDGE = Dialect(
    error=InvalidEventPattern,
    prefix="Event pattern is not valid. Reason: ",
    numbers=NumberModel(5e9, 6),
    operators=OPERATORS,
    anything_but=frozenset({"prefix", "suffix", "equals-ignore-case", "wildcard"}),
    affix_ignore_case=True,
    nested=True,
    max_size=MAX_PATTERN_SIZE,
)


def event_pattern(pattern: str | bytes | Mapping[str, Any]) -> Pattern:
    """Compile an event pattern (JSON text or a parsed object); InvalidEventPattern names
    the offending part and EventBridge's reason."""
    data, canonical = load(EVENTBRIDGE, pattern, "the event pattern")
    return compile_pattern(EVENTBRIDGE, data, canonical)


def test_event_pattern(pattern: str | bytes | Mapping[str, Any], event: str | bytes | Mapping[str, Any]) -> bool:
    """Whether `event` matches `pattern`, as EventBridge's TestEventPattern answers.

    Both may be JSON text or parsed objects. As TestEventPattern does, the event must be
    a JSON object with the envelope's mandatory fields (`EVENT_FIELDS`); an invalid
    pattern or event raises InvalidEventPattern.
    """
    compiled = event_pattern(pattern)
    return compiled.matches(_event(event))


test_event_pattern.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _event(event: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(event) if isinstance(event, (str, bytes)) else json.loads(json.dumps(event))
    except (TypeError, ValueError) as exc:
        raise InvalidEventPattern(f"Event is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidEventPattern("Event is not valid: it must be a JSON object")
    missing = [name for name in EVENT_FIELDS if name not in data]
    if missing:
        raise InvalidEventPattern(f"Event is not valid: Parameter(s) {', '.join(missing)} must be specified")
    return data
