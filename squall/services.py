"""Platform services a function reaches through `ctx`: tables, queues and buckets.

The same clients serve handlers (inside instances), the CLI (`squall send`) and the test
harness, so limits and errors are the same everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from squall.backends import Backend, Item
from squall.backends.fifo import FifoEntry, check_fifo_id, content_dedup_id, is_fifo
from squall.core.checks import TABLE_NAME, check_name, check_queue_name
from squall.errors import ConfigError, PayloadTooLarge, QueueNotFound
from squall.objects import Listing, ObjectStore, StoredObject, check_bucket
from squall.observability.context import TRACE_ATTRIBUTE, trace_attribute

if TYPE_CHECKING:
    from squall.runtime.tracing import InvocationTrace

#: SQS limits.
MAX_MESSAGE_BYTES = 256 * 1024
MAX_DELAY_SECONDS = 900
#: MessageGroupId and MessageDeduplicationId: alphanumeric and punctuation characters
#: message attribute names SQS reserves for itself (any case)
RESERVED_PREFIXES = ("aws.", "amazon.")


class Table:
    """A key-value table. Values are anything JSON can encode."""

    def __init__(self, backend: Backend, name: str, feed: bool = False):
        self.backend = backend
        self.name = check_name("table", name, TABLE_NAME)
        self.feed = feed

    def get(self, key: str, default: Any = None) -> Any:
        item = self.backend.table_get(self.name, self._key(key))
        return default if item is None else item.value

    def get_item(self, key: str) -> Item | None:
        """The item with its version, for a read-modify-write with `put(..., if_version=)`."""
        return self.backend.table_get(self.name, self._key(key))

    def put(self, key: str, value: Any, *, if_version: int | None = None, if_absent: bool = False) -> int:
        """Write `value`; returns the new version. Conditions raise ConditionFailed."""
        _check_json(value, f"value for {self.name}[{key!r}]")
        return self.backend.table_put(self.name, self._key(key), value, if_version=if_version,
                                      if_absent=if_absent, feed=self.feed).version

    def delete(self, key: str, *, if_version: int | None = None) -> Any:
        """Delete; returns the old value (None if there was none)."""
        old = self.backend.table_delete(self.name, self._key(key), if_version=if_version, feed=self.feed)
        return None if old is None else old.value

    def scan(self, prefix: str = "", limit: int | None = None) -> Iterator[tuple[str, Any]]:
        """(key, value) pairs in key order, fetched page by page."""
        after: str | None = None
        remaining = limit
        while remaining is None or remaining > 0:
            page = 1000 if remaining is None else min(1000, remaining)
            items = self.backend.table_scan(self.name, prefix=prefix, start_after=after, limit=page)
            for item in items:
                yield item.key, item.value
            if len(items) < page:
                return
            after = items[-1].key
            if remaining is not None:
                remaining -= len(items)

    def _key(self, key: Any) -> str:
        if isinstance(key, bool) or not isinstance(key, (str, int)) or key == "":
            raise ConfigError(f"invalid key {key!r} for table {self.name!r}: must be a non-empty string")
        return str(key)


class Bucket:
    """A bucket of objects (S3 semantics: put replaces, get returns bytes). Keys are S3's:
    any 1 to 1,024 bytes of UTF-8, '/' only by convention a separator."""

    def __init__(self, store: ObjectStore, name: str):
        self.store = store
        self.name = check_bucket(name)

    def put(self, key: str, data: bytes | str, content_type: str | None = None,
            metadata: dict[str, str] | None = None) -> StoredObject:
        if isinstance(data, str):
            data, content_type = data.encode(), content_type or "text/plain; charset=utf-8"
        if not isinstance(data, (bytes, bytearray)):
            raise ConfigError(f"object data must be bytes or str, not {type(data).__name__}")
        return self.store.put(self.name, key, bytes(data), content_type or "application/octet-stream", metadata)

    def get(self, key: str) -> bytes:
        """The object's bytes; NotFound if there is none."""
        return self.store.get(self.name, key).data or b""

    def head(self, key: str) -> StoredObject:
        return self.store.get(self.name, key)

    def delete(self, key: str) -> bool:
        return self.store.delete(self.name, key)

    def list(self, prefix: str = "") -> list[str]:
        """Every key that starts with `prefix`, in S3's order (UTF-8 byte order)."""
        return self.store.list(self.name, prefix).keys

    def list_objects(self, prefix: str = "", delimiter: str = "") -> Listing:
        """ListObjectsV2: the objects under `prefix` (key, size, etag) and, with a delimiter,
        the common prefixes of the keys that have it after the prefix, each listed once:
        `list_objects("2024/", "/")` is one level of a folder view."""
        return self.store.list(self.name, prefix, delimiter)


@dataclass(frozen=True)
class SendEntry:
    """One message of `Queue.send_batch` (SendMessageBatch's entry): on a FIFO queue with
    its group and, unless the queue deduplicates by content, its deduplication id."""

    body: str
    group_id: str | None = None
    dedup_id: str | None = None
    attributes: dict[str, Any] | None = None


class Queue:
    """Send side of a declared queue (SQS SendMessage semantics and limits).

    With the invocation's `trace` (a handler's `ctx.queue`), a send is a PRODUCER span and
    each message carries its context as the system attribute `AWSTraceHeader`, which
    neither counts against the message's size nor shows among its message attributes.

    A FIFO queue (a name ending in `.fifo`) takes SQS's FIFO parameters: every message needs
    a `group_id`, and a `dedup_id` unless the queue was declared with
    `content_based_deduplication` (then the body's SHA-256 is the id); a duplicate within
    five minutes stores nothing and returns the original's id."""

    def __init__(self, backend: Backend, name: str, known: set[str] | None = None,
                 trace: InvocationTrace | None = None, lineage: str = ""):
        """`lineage`: the chain the sending invocation is part of (squall.observability.lineage),
        carried in the same system attribute as the trace context."""
        self.backend = backend
        self.trace = trace
        self.lineage = lineage
        self.name = check_queue_name(name)
        self.fifo = is_fifo(name)
        self._content_dedup: bool | None = None  # read from the registry when first needed
        if known is None or name not in known:
            if backend.queue_config(name) is None:
                configs = {q: backend.queue_config(q) for q in backend.queue_names()}
                user = [q for q, config in configs.items() if config is not None and not config.internal]
                raise QueueNotFound(f"unknown queue {name!r} (queues: {', '.join(user) or 'none'})")
            if known is not None:
                known.add(name)

    def send(self, body: str, delay_seconds: float = 0, attributes: dict[str, Any] | None = None, *,
             group_id: str | None = None, dedup_id: str | None = None) -> str:
        """Enqueue `body`; returns the message id once it is committed (on a FIFO queue,
        the original's for a duplicate)."""
        return self._send([self._entry(body, delay_seconds, attributes, group_id, dedup_id)])[0]

    def send_batch(self, entries: Sequence[str | SendEntry]) -> list[str]:
        """Enqueue several messages (bodies, or `SendEntry`s) in one commit."""
        return self._send([self._entry(e, 0, None, None, None) if isinstance(e, str)
                           else self._entry(e.body, 0, e.attributes, e.group_id, e.dedup_id) for e in entries])

    def _entry(self, body: Any, delay_seconds: Any, attributes: dict[str, Any] | None, group_id: str | None,
               dedup_id: str | None) -> tuple[str, dict[str, Any], float] | FifoEntry:
        """A checked message: what the backend's enqueue of this kind of queue takes."""
        body, checked, delay = check_message(body, delay_seconds, attributes)
        if not self.fifo:
            for parameter, value in (("group_id", group_id), ("dedup_id", dedup_id)):
                if value is not None:
                    raise ConfigError(f"{parameter} {value!r} is not valid for standard queue {self.name!r}: "
                                      "only FIFO queues (named *.fifo) take it, as on SQS")
            return body, checked, delay
        if delay:
            raise ConfigError(f"delay_seconds {delay_seconds!r} is not valid for FIFO queue {self.name!r}: "
                              "SQS delays a FIFO queue's messages only as a whole")
        if group_id is None:
            raise ConfigError(f"FIFO queue {self.name!r} needs a group_id (MessageGroupId) on every message")
        check_fifo_id("group_id", group_id)
        if dedup_id is None:
            if not self._deduplicates_content():
                raise ConfigError(f"FIFO queue {self.name!r} needs a dedup_id (MessageDeduplicationId) unless it is "
                                  "declared with content_based_deduplication=True")
            dedup_id = content_dedup_id(body)
        check_fifo_id("dedup_id", dedup_id)
        return FifoEntry(body, checked, group_id, dedup_id)

    def _deduplicates_content(self) -> bool:
        if self._content_dedup is None:
            config = self.backend.queue_config(self.name)
            self._content_dedup = config is not None and config.content_based_deduplication
        return self._content_dedup

    def _send(self, entries: list[Any]) -> list[str]:
        if self.trace is None:
            if self.lineage:
                attribute = trace_attribute(None, self.lineage)
                for entry in entries:
                    entry[1][TRACE_ATTRIBUTE] = attribute
            return self._enqueue(entries)
        with self.trace.producer(self.name, len(entries)) as span:
            attribute = trace_attribute(span.context(self.trace.context.sampled), self.lineage)
            for entry in entries:
                entry[1][TRACE_ATTRIBUTE] = attribute  # the attributes, of either kind of entry
            ids = self._enqueue(entries)
            if len(ids) == 1:
                span.attributes["messaging.message.id"] = ids[0]
        return ids

    def _enqueue(self, entries: list[Any]) -> list[str]:
        if self.fifo:
            return self.backend.enqueue_fifo(self.name, entries)
        return self.backend.enqueue_batch(self.name, entries)


def check_message(body: Any, delay_seconds: Any = 0, attributes: dict[str, Any] | None = None
                  ) -> tuple[str, dict[str, Any], float]:
    """Validate a message as SQS would; returns (body, attributes, delay)."""
    if not isinstance(body, str):
        raise ConfigError(f"message body must be a string, not {type(body).__name__} (use json.dumps)")
    if body == "":
        raise ConfigError("message body must not be empty")
    if isinstance(delay_seconds, bool) or not isinstance(delay_seconds, (int, float)) \
            or not 0 <= delay_seconds <= MAX_DELAY_SECONDS:
        raise ConfigError(f"invalid delay_seconds {delay_seconds!r}: must be 0 to {MAX_DELAY_SECONDS}")
    attributes = attributes or {}
    if not isinstance(attributes, dict):
        raise ConfigError("message attributes must be a dict of name -> value")
    for name in attributes:
        if not isinstance(name, str) or name.lower().startswith(RESERVED_PREFIXES):
            raise ConfigError(f"invalid message attribute name {name!r}: names starting with 'AWS.' or 'Amazon.' "
                              "are reserved, as on SQS")
    size = len(body.encode()) + sum(len(k.encode()) + len(json.dumps(v)) for k, v in attributes.items())
    if size > MAX_MESSAGE_BYTES:
        raise PayloadTooLarge(f"message is {size} bytes; the limit is {MAX_MESSAGE_BYTES} bytes (256 KiB)")
    return body, {k: message_attribute(k, v) for k, v in attributes.items()}, float(delay_seconds)


def message_attribute(name: str, value: Any) -> dict[str, Any]:
    """An SQS messageAttributes entry: plain values are typed String or Number."""
    if isinstance(value, dict) and "dataType" in value:
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"message attribute {name!r} must be a string or number, not {type(value).__name__}")
    data_type = "String" if isinstance(value, str) else "Number"
    return {"stringValue": str(value), "stringListValues": [], "binaryListValues": [], "dataType": data_type}


def _check_json(value: Any, what: str) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what} is not JSON-serialisable: {exc}") from None
