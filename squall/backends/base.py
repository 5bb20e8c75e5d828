"""The backend protocol: the few durable primitives every Squall service is built from.

A backend is synchronous and thread-safe: the node calls it from worker threads, function
instances open their own after fork. Every method that changes state has committed the
change when it returns (for SQLite: the transaction is in the WAL; for Redis: the command
was executed by the server). Time comes from `self.clock` (seconds since the epoch) so
tests can drive it; Redis scripts get `now` as an argument rather than reading TIME.

Primitives:
- queues: enqueue, claim with a visibility timeout, ack, release (change visibility),
  dead-letter, redrive, stats, peek, a registry of declared queues;
- tables: key -> JSON value with a version for conditional writes, and an optional
  change feed written atomically with the change (a stream named `change_stream(table)`);
- streams: partitioned append-only logs with per-consumer, per-shard checkpoints;
- timers: keyed durable timers, claimed with a lease and acked;
- leases: named leases with a holder and a TTL (leader election, shard ownership);
- slots: counting semaphores with expiring holders (cluster-wide reserved concurrency);
- nodes: a registry of live nodes, each with a heartbeat TTL and an info dict.
"""

from __future__ import annotations

import json
import time
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

Clock = Callable[[], float]


@dataclass(frozen=True)
class Message:
    """One received queue message. `receipt` is valid until the message is received again."""

    id: str
    queue: str
    body: str
    attributes: dict[str, Any]
    receipt: str
    receive_count: int
    sent_at: float
    first_received_at: float


@dataclass(frozen=True)
class QueueConfig:
    """A queue's entry in the registry (provisional: replaced by the backend split)."""

    dlq: str | None = None
    dlq_of: str | None = None
    function: str | None = None
    max_receive_count: int | None = None
    visibility_timeout: float | None = None
    internal: bool = False

    @property
    def is_dlq(self) -> bool:
        return self.dlq_of is not None

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in self.__dict__.items() if v is not None and v is not False})

    @classmethod
    def from_json(cls, name: str, text: str) -> "QueueConfig":
        data = json.loads(text)
        return cls(**{k: data[k] for k in ("dlq", "dlq_of", "function", "max_receive_count",
                                           "visibility_timeout", "internal") if k in data})


class Watch:
    """A subscription to enqueue notifications (provisional: a no-op)."""

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class QueueStats:
    visible: int
    in_flight: int
    delayed: int

    @property
    def total(self) -> int:
        return self.visible + self.in_flight + self.delayed


@dataclass(frozen=True)
class Item:
    key: str
    value: Any
    version: int


@dataclass(frozen=True)
class StreamRecord:
    stream: str
    shard: int
    seq: int
    partition_key: str
    data: str
    timestamp: float


@dataclass(frozen=True)
class Timer:
    group: str
    key: str
    due: float
    payload: str
    receipt: str


@dataclass
class NodeInfo:
    node_id: str
    info: dict[str, Any] = field(default_factory=dict)
    seen: float = 0.0


def change_stream(table: str) -> str:
    """The stream a table's change feed is written to."""
    return f"table-changes.{table}"


def change_record(event_name: str, key: str, old: Item | None, new: Item | None, at: float) -> str:
    """The JSON data of one change-feed record (the DynamoDB Streams vocabulary).

    event_name is INSERT, MODIFY or REMOVE; images are the item values.
    """
    return json.dumps({
        "eventName": event_name,
        "key": key,
        "oldImage": old.value if old else None,
        "newImage": new.value if new else None,
        "version": (new or old).version if (new or old) else 0,
        "timestamp": at,
    }, separators=(",", ":"))


def shard_for(partition_key: str, shards: int) -> int:
    """Stable shard of a partition key (the same on every node and backend)."""
    return zlib.crc32(partition_key.encode()) % shards


class Backend(ABC):
    """Abstract base of the SQLite and Redis backends. See the module docstring."""

    #: the URL the backend was opened with; function instances reopen it after fork
    url: str
    #: True when several nodes may share this backend (cluster-wide limits apply)
    distributed: bool = False

    def __init__(self, url: str, clock: Clock | None = None):
        self.url = url
        self.clock: Clock = clock or time.time

    def close(self) -> None:
        """Release connections. The backend is not used afterwards."""

    # ---- queues -------------------------------------------------------------------

    @abstractmethod
    def queue_declare(self, name: str, config: QueueConfig) -> None:
        """Create or update a queue's entry in the registry (config: dlq, visibility...)."""

    @abstractmethod
    def queue_config(self, name: str) -> QueueConfig | None:
        """The declared config of a queue, or None if it was never declared."""

    def queues_next_visible(self, queues: list[str]) -> dict[str, float]:
        """Provisional: per queue holding messages, the earliest visible time."""
        found = {}
        for queue in queues:
            stats = self.queue_stats(queue)
            if stats.total:
                found[queue] = self.clock() if stats.visible else self.clock() + 1
        return found

    def watch_enqueues(self, callback: Callable[[str | None], None]) -> Watch:
        """Provisional: no notifications."""
        return Watch()

    @abstractmethod
    def queue_names(self) -> list[str]:
        """Declared queue names, sorted."""

    @abstractmethod
    def enqueue(self, queue: str, body: str, attributes: dict[str, Any] | None = None,
                delay: float = 0.0) -> str:
        """Append a message, visible after `delay` seconds. Returns its id."""

    @abstractmethod
    def enqueue_batch(self, queue: str, entries: list[tuple[str, dict[str, Any] | None, float]]) -> list[str]:
        """Append (body, attributes, delay) entries in one commit. Returns their ids."""

    @abstractmethod
    def claim(self, queue: str, max_messages: int, visibility_timeout: float, *,
              max_receives: int | None = None, dlq: str | None = None) -> list[Message]:
        """Receive up to `max_messages` visible messages, oldest first.

        Each gets a fresh receipt, its receive count goes up by one and it stays invisible
        for `visibility_timeout` seconds. When `max_receives` and `dlq` are given, a
        message that was already received `max_receives` times is moved to `dlq`
        (keeping id, body, attributes and sent time) instead of being returned, as SQS
        does with a redrive policy.
        """

    @abstractmethod
    def ack(self, queue: str, receipts: list[str]) -> int:
        """Delete the messages whose current receipt is given. Returns how many."""

    @abstractmethod
    def release(self, queue: str, receipt: str, delay: float = 0.0) -> bool:
        """Make an in-flight message visible again after `delay` seconds.

        False if the receipt is stale (the message was received again or deleted)."""

    @abstractmethod
    def dead_letter(self, queue: str, receipt: str, dlq: str) -> bool:
        """Move an in-flight message to `dlq` atomically. False if the receipt is stale."""

    @abstractmethod
    def redrive(self, source: str, target: str, limit: int | None = None) -> int:
        """Move messages from `source` (a DLQ) back to `target`, receive counts reset."""

    @abstractmethod
    def queue_stats(self, queue: str) -> QueueStats:
        """Counts of visible, in-flight and delayed (never received, not yet visible)."""

    @abstractmethod
    def peek(self, queue: str, limit: int = 10) -> list[Message]:
        """Messages in send order without receiving them (receipt is empty)."""

    @abstractmethod
    def purge(self, queue: str) -> int:
        """Delete every message in the queue. Returns how many."""

    # ---- tables -------------------------------------------------------------------

    @abstractmethod
    def table_get(self, table: str, key: str) -> Item | None:
        """The item, or None."""

    @abstractmethod
    def table_put(self, table: str, key: str, value: Any, *, if_version: int | None = None,
                  if_absent: bool = False, feed: bool = False) -> Item:
        """Write a JSON-serialisable value; version goes up by one (first version is 1).

        `if_version` requires the current version to equal it; `if_absent` requires no
        item. Otherwise `ConditionFailed` is raised and nothing changes. With `feed`, a
        change record (`change_record(...)`) is appended to `change_stream(table)`, with the
        key as partition key, in the same commit.
        """

    @abstractmethod
    def table_delete(self, table: str, key: str, *, if_version: int | None = None,
                     feed: bool = False) -> Item | None:
        """Delete; returns the old item (None if there was none)."""

    @abstractmethod
    def table_scan(self, table: str, *, prefix: str = "", start_after: str | None = None,
                   limit: int = 1000) -> list[Item]:
        """Items in key order, keys starting with `prefix`, after `start_after`."""

    # ---- streams ------------------------------------------------------------------

    @abstractmethod
    def stream_create(self, stream: str, shards: int) -> int:
        """Create a stream with `shards` shards if it does not exist. Returns its shard count."""

    @abstractmethod
    def stream_names(self) -> list[str]:
        """Every stream's name, sorted."""

    @abstractmethod
    def stream_shards(self, stream: str) -> int:
        """Shard count; 0 if the stream does not exist."""

    @abstractmethod
    def stream_append(self, stream: str, partition_key: str, data: str) -> tuple[int, int]:
        """Append to shard `shard_for(partition_key, shards)`. Returns (shard, seq).

        Sequence numbers are positive and increase within a shard. A stream that does
        not exist is created with one shard."""

    @abstractmethod
    def stream_read(self, stream: str, shard: int, after_seq: int, limit: int = 100) -> list[StreamRecord]:
        """Records of one shard with seq > after_seq, in order."""

    @abstractmethod
    def stream_trim(self, stream: str, before: float) -> int:
        """Delete records older than `before` (retention). Returns how many."""

    @abstractmethod
    def checkpoint_get(self, stream: str, consumer: str, shard: int) -> int:
        """Last processed seq of a consumer on a shard; 0 if none."""

    @abstractmethod
    def checkpoint_set(self, stream: str, consumer: str, shard: int, seq: int) -> None:
        """Record the last processed seq."""

    # ---- timers -------------------------------------------------------------------

    @abstractmethod
    def timer_set(self, group: str, key: str, due: float, payload: str) -> None:
        """Create or replace the timer `key` in `group`."""

    @abstractmethod
    def timer_cancel(self, group: str, key: str) -> bool:
        """Delete a timer. False if there was none."""

    @abstractmethod
    def timers_claim(self, group: str, limit: int, lease: float) -> list[Timer]:
        """Timers with due <= now, earliest first; each becomes invisible for `lease` s."""

    @abstractmethod
    def timer_ack(self, group: str, key: str, receipt: str) -> bool:
        """Delete a fired timer if it was not replaced since it was claimed."""

    # ---- leases -------------------------------------------------------------------

    @abstractmethod
    def lease_acquire(self, name: str, holder: str, ttl: float) -> bool:
        """Take the lease if free or expired, or renew it if `holder` has it."""

    @abstractmethod
    def lease_release(self, name: str, holder: str) -> bool:
        """Give up the lease if `holder` has it. False if it had expired or is another's."""

    @abstractmethod
    def lease_holder(self, name: str) -> str | None:
        """The current unexpired holder."""

    # ---- slots --------------------------------------------------------------------

    @abstractmethod
    def slot_acquire(self, key: str, limit: int, holder: str, ttl: float) -> str | None:
        """Take one of `limit` slots for `ttl` seconds. Returns a token, or None if full."""

    @abstractmethod
    def slot_release(self, key: str, token: str) -> None:
        """Give a slot back."""

    @abstractmethod
    def slot_count(self, key: str) -> int:
        """Slots held and unexpired."""

    # ---- nodes --------------------------------------------------------------------

    @abstractmethod
    def node_heartbeat(self, node_id: str, info: dict[str, Any], ttl: float) -> None:
        """Register or refresh a live node."""

    @abstractmethod
    def node_remove(self, node_id: str) -> None:
        """Deregister a node (clean shutdown)."""

    @abstractmethod
    def nodes(self) -> list[NodeInfo]:
        """Live (unexpired) nodes, sorted by id."""
