"""A queue's entry in the backend's queue registry, and its one serialisation.

The registry is read by nodes and the CLI of other versions than the one that wrote it (a
rolling upgrade, an old CLI on a new state file), so the stored form is a flat JSON object
whose unknown keys are ignored and whose missing keys take the defaults below. The records
of the first release have exactly this form: `{"dlq", "function", "max_receive_count",
"visibility_timeout"}` for a user queue, `{"dlq_of"}` for a dead-letter queue, either with
`"internal": true` for the platform's own queues.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from squall.errors import ConfigError


@dataclass(frozen=True)
class QueueConfig:
    """What the registry records for one queue. Every field is optional."""

    #: the dead-letter queue messages move to after `max_receive_count` receives
    dlq: str | None = None
    #: set on a dead-letter queue: the queue it holds the failures of
    dlq_of: str | None = None
    #: the function that consumes the queue
    function: str | None = None
    max_receive_count: int | None = None
    visibility_timeout: float | None = None
    #: a platform queue (asynchronous invocations), hidden from users
    internal: bool = False
    #: a FIFO queue whose sends without a deduplication id use the body's SHA-256
    content_based_deduplication: bool = False

    @property
    def is_dlq(self) -> bool:
        return self.dlq_of is not None

    def to_json(self) -> str:
        """The stored form: only the fields that are set, keys sorted."""
        fields = {name: value for name, value in asdict(self).items() if value is not None and value is not False}
        return json.dumps(fields, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, name: str, text: str) -> QueueConfig:
        """Parse a stored entry of queue `name`, written by this or any earlier version."""
        try:
            data: Any = json.loads(text)
        except ValueError as e:
            raise ConfigError(f"registry entry of queue {name!r} is not JSON: {e}") from e
        if not isinstance(data, dict):
            raise ConfigError(f"registry entry of queue {name!r} is not a JSON object: {text[:100]!r}")

        def text_field(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) and value else None

        def number_field(key: str) -> float | None:
            value = data.get(key)
            return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

        receives = number_field("max_receive_count")
        timeout = number_field("visibility_timeout")
        return cls(dlq=text_field("dlq"), dlq_of=text_field("dlq_of"), function=text_field("function"),
                   max_receive_count=None if receives is None else int(receives),
                   visibility_timeout=None if timeout is None else float(timeout),
                   internal=data.get("internal") is True,
                   content_based_deduplication=data.get("content_based_deduplication") is True)
