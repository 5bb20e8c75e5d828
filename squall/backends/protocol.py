"""The backend protocol: the few durable primitives every Squall service is built from.

One narrow protocol per primitive, so a service names the one it uses (a lease keeper needs
`Leases`, a queue consumer `Queues`) and a test can hand it a fake of that one; `Backend` is
their union, what `open_backend` returns. The conformance suite (`tests/conformance/`, one
module per primitive) holds the SQLite and the Redis implementation to every sentence here.

A backend is synchronous and thread-safe: the node calls it from worker threads, function
instances open their own after fork. Every method that changes state has committed the
change when it returns (SQLite: the transaction is in the WAL; Redis: the server ran the
command). Time comes from `clock` (seconds since the epoch) so tests can drive it; Redis
scripts get `now` as an argument rather than reading TIME.

Arguments are checked the same way on both backends (`squall.backends.checks`): a count or a
limit below its minimum, a negative or non-finite duration, is a `ConfigError` with the same
text on both, raised before anything is written. A limit of 0 asks for nothing and gets an
empty answer. A name (queue, table, stream...) that was never written to reads as empty,
never as an error.

Atomic cross-primitive operations
---------------------------------
Some changes must commit together or not at all across two primitives. Each such change is a
*named operation* of the protocol, done as one SQLite transaction and one Redis Lua script,
never a general transaction API: Redis cannot roll back, and a script must declare every key
it touches up front, so only operations whose keys are known before they run can be atomic.
Today:

- a table write and its change record: `Tables.table_put` / `Tables.table_delete` with
  `feed=True` (see `squall.backends.changefeed` for the record and the stream it goes to);
- timers that fire into queues: `Timers.timers_fire` (schedules: the firing's messages
  and the next timer commit together, so a firing is enqueued exactly once).
- a fan-out: `Queues.fan_out` appends messages to several queues with counts added to a
  table, and may consume claimed messages in the same commit. A topic's publish uses it
  with its delivery counts (and, for a FIFO topic, its deduplication and sequence number);
  an event bus's router with the intake events it replaces (one event, one message per
  matched target, an event claimed twice routed once).
- a consumer's turn: `Queues.settle` acks, releases and dead-letters the messages of the
  batches that finished and claims the next ones (one commit per turn, not four).

To add the next one (a workflow step that writes its state, enqueues work and sets a timer):

1. declare it here as one method, on the protocol of the primitive it is about, named for
   what it does (`workflow_step(...)`, `publish(...)`), with its whole effect in the docstring;
2. SQLite: one `with self._write() as conn:` in the primitive's module, calling the
   in-transaction helpers of the primitives it spans (as `tables.py` calls `_append`);
3. Redis: one `lua/<name>.lua` that includes the libraries of the primitives it spans
   (`-- include: _queue.lua`) and gets every key it touches in KEYS, built by `keys.py`;
4. a conformance test that the effect is all-or-nothing (a failed condition changes nothing).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from squall.backends.fifo import FifoEntry, PublishOnce
from squall.backends.queueconfig import QueueConfig

Clock = Callable[[], float]

__all__ = [
    "Backend", "Clock", "Consumed", "DeadLetter", "FanOut", "FanOutEntry", "FifoEntry", "Item", "Leases", "Message",
    "NodeInfo", "Nodes", "PublishOnce", "QueueConfig", "QueueStats", "Queues", "Release", "Slots", "StreamRecord",
    "Streams", "Tables", "Timer", "TimerFiring", "Timers", "Watch", "shard_for",
]


# ---- records --------------------------------------------------------------------------


class Message(NamedTuple):
    """One received queue message. `receipt` is valid until the message is received again.

    A NamedTuple rather than a frozen dataclass: one is built per message claimed, and a
    frozen dataclass sets each field through `object.__setattr__` (four times the cost).
    """

    id: str
    queue: str
    body: str
    attributes: dict[str, Any]
    receipt: str
    receive_count: int
    sent_at: float
    first_received_at: float
    #: FIFO queues only: MessageGroupId, MessageDeduplicationId and SequenceNumber
    group: str | None = None
    dedup_id: str | None = None
    sequence: str | None = None


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


class TimerFiring(NamedTuple):
    """One claimed timer to fire with `Timers.timers_fire`."""

    key: str
    receipt: str
    queue: str
    bodies: Sequence[str]
    next_due: float | None
    next_payload: str = ""
    #: when the bodies become visible in the queue (a firing claimed ahead of its time
    #: waits there, durable, for it); now if earlier
    visible_at: float = 0.0


@dataclass
class NodeInfo:
    node_id: str
    info: dict[str, Any] = field(default_factory=dict)
    seen: float = 0.0


def shard_for(partition_key: str, shards: int) -> int:
    """Stable shard of a partition key (the same on every node and backend)."""
    return zlib.crc32(partition_key.encode()) % shards


class FanOutEntry(NamedTuple):
    """One message of a `Queues.fan_out`."""

    queue: str
    body: str
    attributes: dict[str, Any] | None = None
    #: FIFO queues only (and always there): MessageGroupId and MessageDeduplicationId
    group: str | None = None
    dedup_id: str | None = None
    #: with a `PublishOnce`: where `body` holds `SEQUENCE_PLACEHOLDER`, which the backend
    #: overwrites with the publish's sequence number (known only inside the commit)
    sequence_at: int | None = None
    #: with `Consumed`: the receipt (one of its receipts) of the claimed message this entry
    #: is made from; the entry is written only if that receipt is current
    receipt: str | None = None


class Consumed(NamedTuple):
    """Claimed messages a `Queues.fan_out` deletes in its commit: their queue and receipts."""

    queue: str
    receipts: Sequence[str]


class FanOut(NamedTuple):
    """What a `Queues.fan_out` did."""

    #: the message id of each entry, in entry order (a FIFO queue's original message's for
    #: a deduplication id it had accepted; "" for an entry whose receipt was not current);
    #: empty for a duplicate publish
    ids: list[str]
    #: with a `PublishOnce`: the publish's sequence number (the original's for a duplicate)
    sequence: str | None = None
    #: a duplicate publish (nothing was written): the original publish's message id
    original: str | None = None
    #: with `Consumed`: how many of its (distinct) receipts were current, so deleted
    consumed: int = 0


class Release(NamedTuple):
    """A claimed message `Queues.settle` gives back, as `Queues.release` does: visible again
    after `delay` seconds; with `uncount`, the receive that gave `receipt` does not count."""

    receipt: str
    delay: float = 0.0
    uncount: bool = False


class DeadLetter(NamedTuple):
    """A claimed message `Queues.settle` moves to the dead-letter queue, as
    `Queues.dead_letter` does, with `attributes` added."""

    receipt: str
    attributes: dict[str, Any] | None = None



class Watch(Protocol):
    """A running `Queues.watch_enqueues` subscription."""

    def close(self) -> None:
        """Stop calling back and end the background thread (joined before returning)."""


# ---- one protocol per primitive -------------------------------------------------------


class Queues(Protocol):
    """Durable queues with visibility timeouts, dead-letter queues and a registry.

    A message is *visible* (claimable), *in flight* (claimed, invisible until its visibility
    timeout ends) or *delayed* (sent with a delay, never received yet). A queue's *send
    order* is the order its messages entered it: sent, or moved in by a dead-letter or a
    redrive (a moved message joins the tail of its new queue). Claims take visible messages
    earliest-visible first, send order among equals.

    A receipt names one receive of one message in one queue. It is *stale* once the message
    was received again, moved or deleted; a receipt from another queue, another backend, a
    peeked message ("") or any other text is *foreign*. Stale and foreign receipts match
    nothing: ack counts them out, release and dead_letter return False.

    A queue whose name ends in `.fifo` is a FIFO queue (`squall.backends.fifo`), as on SQS:
    its messages are sent with `enqueue_fifo` only, each in a *message group*, and its
    dead-letter queue and redrive target are FIFO queues too (and a standard queue's are
    standard), else ConfigError. A group's *head* is its first message in send order. A claim
    takes a group's messages only from its head on, in send order, while they are visible,
    and nothing from a group whose head is invisible (in flight, waiting for a retry or
    delayed): one receive per group at a time, and that lock is the backend's own state,
    shared by every node. Acking, dead-lettering or a visibility timeout ending unblocks the
    group. Other groups are claimed alongside, the one whose head became visible first first.
    """

    def queue_declare(self, name: str, config: QueueConfig) -> None:
        """Create or replace a queue's entry in the registry."""

    def queue_config(self, name: str) -> QueueConfig | None:
        """The declared config of a queue, or None if it was never declared."""

    def queue_names(self) -> list[str]:
        """Declared queue names, sorted."""

    def enqueue(self, queue: str, body: str, attributes: dict[str, Any] | None = None,
                delay: float = 0.0) -> str:
        """Append a message, visible after `delay` (>= 0) seconds. Returns its id."""

    def enqueue_batch(self, queue: str, entries: Sequence[tuple[str, dict[str, Any] | None, float]]) -> list[str]:
        """Append (body, attributes, delay) entries in one commit, in order. Returns their ids.

        Every delay is checked before anything is written; an empty batch writes nothing."""

    def enqueue_fifo(self, queue: str, entries: Sequence[FifoEntry], delay: float = 0.0) -> list[str]:
        """Append messages to a FIFO queue in one commit, in order, visible after `delay`
        (>= 0) seconds (a FIFO queue's delay is the queue's, the same for every message).
        Returns each entry's message id.

        An entry whose deduplication id was accepted by this queue less than
        `DEDUP_WINDOW` seconds ago (or earlier in the same call) is not stored: its id is
        the original message's, as SQS answers a duplicate send. Each stored message gets a
        sequence number (`sequence_number`) greater than every earlier one of the queue,
        which it keeps when it is dead-lettered or redriven."""

    def fan_out(self, entries: Sequence[FanOutEntry], counters: str = "", counts: Mapping[str, int] | None = None,
                once: PublishOnce | None = None, consumed: Consumed | None = None) -> FanOut:
        """Append each entry to its queue, visible now, and add each of `counts` to the
        item of that key in table `counters`, all in one commit (a topic's publish: every
        subscription gets its message, and the tallies move, or nothing happens).

        An entry to a FIFO queue has a group and a deduplication id (one to a standard
        queue has neither, else ConfigError) and is stored as `enqueue_fifo` stores it:
        in its group, with the queue's next sequence number, or not at all when the queue
        accepted its deduplication id within the window (its id is then the original's).

        With `consumed` (an event bus's router replacing the events it claimed): in the
        same commit, every message of `consumed.queue` whose receipt is given and current
        is deleted, and an entry naming a receipt (`FanOutEntry.receipt`, which must be
        one of `consumed.receipts`) is written only if that receipt was current: a message
        claimed twice (its visibility timeout ran out) is consumed, and its entries
        written, once. Stale and foreign receipts delete nothing. No entry may go to
        `consumed.queue`, and `consumed` cannot be combined with `once`.

        With `once` (a FIFO topic's publish): if `once.dedup_id` was accepted in
        `once.scope` less than `DEDUP_WINDOW` seconds ago, nothing is written and the
        answer is the original publish's message id and sequence number. Otherwise the
        publish gets the scope's next sequence number (`sequence_number`, increasing in
        commit order), written into each entry's body at `sequence_at`, and its
        deduplication id is remembered, in the same commit. Scopes are apart from queues.

        A counter item holds an integer: an absent one (or one holding anything else)
        counts from 0, and each addition is a write of the item (its version goes up by
        one); counts need a `counters` table. Every entry is checked before anything is
        written; a call without entries, counts, receipts or `once` writes nothing."""

    def claim(self, queue: str, max_messages: int, visibility_timeout: float, *,
              max_receives: int | None = None, dlq: str | None = None) -> list[Message]:
        """Receive up to `max_messages` (>= 0) visible messages, each at most once.

        Each gets a fresh receipt, its receive count goes up by one and it stays invisible
        for `visibility_timeout` (>= 0) seconds. When `max_receives` (>= 1) and `dlq` (not
        `queue`) are given, a message that was already received `max_receives` times is
        moved to `dlq` (keeping id, body, attributes and sent time) instead of being
        returned, as SQS does with a redrive policy, and the batch is filled from the
        messages behind it.

        On a FIFO queue, messages come group by group, each group's in send order; a head
        out of receives moves to `dlq` and its group goes on from the message behind it.
        """

    def ack(self, queue: str, receipts: Sequence[str]) -> int:
        """Delete the messages whose current receipt is given. Returns how many (a receipt
        given twice counts once; stale and foreign ones count nothing)."""

    def release(self, queue: str, receipt: str, delay: float = 0.0, *, uncount: bool = False) -> bool:
        """Make an in-flight message visible again after `delay` (>= 0) seconds; its receipt
        stays current until it is received again. With `uncount`, the receive that gave
        this receipt does not count (the platform failed, not the handler): the receive
        count goes back down by one, so an outage never moves a message to its DLQ. False
        if the receipt is stale or foreign."""

    def dead_letter(self, queue: str, receipt: str, dlq: str, attributes: dict[str, Any] | None = None) -> bool:
        """Move an in-flight message to `dlq` (not `queue`) atomically, as never received.
        With `attributes`, it carries these message attributes too (replacing any of the
        same name): Lambda annotates a failed asynchronous invocation so. False if the
        receipt is stale or foreign."""

    def settle(self, queue: str, acks: Sequence[str] = (), releases: Sequence[Release] = (),
               dead_letters: Sequence[DeadLetter] = (), *, dlq: str | None = None, claim: int = 0,
               visibility_timeout: float = 0.0, max_receives: int | None = None) -> list[Message]:
        """A consumer's turn in one commit: what `ack(queue, acks)`, then `release` of each
        of `releases`, then `dead_letter(queue, receipt, dlq, attributes)` of each of
        `dead_letters`, then `claim(queue, claim, visibility_timeout, max_receives=...,
        dlq=dlq)` would do one after another, committed together; returns what that claim
        returns (nothing for `claim` 0). So stale and foreign receipts change nothing, a
        receipt settled twice counts the first time only, and a message released to be
        visible now may be claimed again at once.

        Every argument is checked before anything is written, as those methods check
        theirs; dead letters without a `dlq` are a ConfigError. A call with nothing to
        settle is exactly `claim`."""

    def redrive(self, source: str, target: str, limit: int | None = None) -> int:
        """Move messages from `source` (a DLQ) to `target` (another queue): every message the
        source holds when the redrive starts (visible, in flight or delayed), or the first
        `limit` (>= 0) of them, in send order. They join the target visible, as never received
        (receipts of the source go stale). Returns how many moved."""

    def queue_stats(self, queue: str) -> QueueStats:
        """Counts of visible, in-flight and delayed (never received, not yet visible)."""

    def queue_oldest_age(self, queue: str) -> float:
        """Seconds since the message at the head of the queue (the first in send order,
        whatever its state) was sent, as SQS's ApproximateAgeOfOldestMessage; 0 when the
        queue is empty. A dead-lettered or redriven message keeps its send time, so a DLQ's
        age counts from the original send. Read at each metrics scrape."""

    def peek(self, queue: str, limit: int = 10) -> list[Message]:
        """The first `limit` (>= 0) messages in send order, without receiving them (receipt
        is ""). Receive counts and first-receive times are as stored."""

    def purge(self, queue: str) -> int:
        """Delete every message in the queue, and a FIFO queue's deduplication history.
        Returns how many messages."""

    def queues_next_visible(self, queues: Sequence[str]) -> dict[str, float]:
        """For each of `queues` that holds any message, the earliest time one of them is (or
        becomes) visible: a time <= now means a claim would find something. Queues without
        messages are absent. One round trip whatever the number of queues, so one poller per
        node can watch every queue. For a FIFO queue, the earliest time a group's head is
        (or becomes) visible: messages behind an invisible head cannot be claimed."""

    def watch_enqueues(self, callback: Callable[[str | None], None]) -> Watch:
        """Call `callback(queue)` from a background thread soon after a message may have
        become visible in `queue` (enqueue, release, dead-letter, redrive) by any process
        sharing the backend (on a FIFO queue, also an ack that unblocks a group);
        `callback(None)` means "something may have changed anywhere"
        (after a reconnect, or where the backend cannot tell which queue).

        A wake-up hint, not a delivery: calls may be lost, merged or spurious, so callers
        still poll `queues_next_visible`, slowly. A callback that raises is logged and the
        watch goes on.
        """


class Tables(Protocol):
    """Key -> JSON value, each item with a version for optimistic concurrency.

    An item's first version is 1 and each write adds 1. A condition names the state the
    caller expects (DynamoDB's vocabulary): `if_absent` that there is no item, `if_version=n`
    (n >= 0) that there is one at version n. No item ever has version 0, so `if_version=0`
    always fails: absence is `if_absent`. A failed condition raises `ConditionFailed` (same
    text on both backends) and changes nothing. Both conditions together are a ConfigError.
    """

    def table_get(self, table: str, key: str) -> Item | None:
        """The item, or None."""

    def table_put(self, table: str, key: str, value: Any, *, if_version: int | None = None,
                  if_absent: bool = False, feed: bool = False) -> Item:
        """Write a JSON-serialisable value (else ConfigError); returns the new item.

        With `feed`, a change record is appended to the table's change stream in the same
        commit (an atomic cross-primitive operation: `squall.backends.changefeed`).
        """

    def table_delete(self, table: str, key: str, *, if_version: int | None = None,
                     feed: bool = False) -> Item | None:
        """Delete; returns the old item (None if there was none, and then no change record).
        `if_version` on a missing item fails like any unmet condition."""

    def table_scan(self, table: str, *, prefix: str = "", start_after: str | None = None,
                   limit: int = 1000) -> list[Item]:
        """Up to `limit` (>= 0) items in key order (code point order), keys starting with
        `prefix`, after `start_after`."""


class Streams(Protocol):
    """Partitioned append-only logs with per-consumer, per-shard checkpoints.

    A stream has a fixed number of shards, 1 to `checks.MAX_SHARDS`. Sequence numbers are
    positive, increase within a shard and are never reused, even after trimming.
    """

    def stream_create(self, stream: str, shards: int) -> int:
        """Create a stream with `shards` shards if it does not exist. Returns its shard count
        (the existing one if it did exist). A count out of range is a ConfigError and
        stores nothing."""

    def stream_names(self) -> list[str]:
        """Every stream's name, sorted (retention walks them all)."""

    def stream_shards(self, stream: str) -> int:
        """Shard count; 0 if the stream does not exist."""

    def stream_append(self, stream: str, partition_key: str, data: str) -> tuple[int, int]:
        """Append to shard `shard_for(partition_key, shards)`. Returns (shard, seq).
        A stream that does not exist is created with one shard."""

    def stream_read(self, stream: str, shard: int, after_seq: int, limit: int = 100) -> list[StreamRecord]:
        """Up to `limit` (>= 0) records of one shard with seq > after_seq, in order (nothing
        for a shard or stream that does not exist)."""

    def stream_trim(self, stream: str, before: float) -> int:
        """Delete records older than `before` (retention). Returns how many."""

    def checkpoint_get(self, stream: str, consumer: str, shard: int) -> int:
        """Last processed seq of a consumer on a shard; 0 if none."""

    def checkpoint_set(self, stream: str, consumer: str, shard: int, seq: int) -> None:
        """Record the last processed seq (>= 0; it may move back, to replay)."""


class Timers(Protocol):
    """Keyed durable timers, claimed with a lease and acked once fired."""

    def timer_set(self, group: str, key: str, due: float, payload: str) -> None:
        """Create or replace the timer `key` in `group`; a replaced timer is a new timer
        (receipts of claims of the old one go stale)."""

    def timer_cancel(self, group: str, key: str) -> bool:
        """Delete a timer. False if there was none."""

    def timers_claim(self, group: str, limit: int, lease: float, ahead: float = 0.0) -> list[Timer]:
        """Up to `limit` (>= 0) timers that are due within `ahead` (>= 0) seconds and not
        leased (a leased timer is due again at its lease's end), each invisible for `lease`
        (>= 0) seconds from now with a fresh receipt; returned by due time, then key."""

    def timer_ack(self, group: str, key: str, receipt: str) -> bool:
        """Delete a fired timer if `receipt` is its last claim's. False otherwise."""

    def timers_next(self, group: str) -> float | None:
        """The earliest time a timer of `group` can be claimed (its due time, or the end of
        its lease), None if the group has none."""

    def timers_fire(self, group: str, firings: Sequence[TimerFiring]) -> list[bool]:
        """Fire claimed timers, each atomically and all in one commit: for each firing whose
        `receipt` is its timer's last claim's, append `bodies` to `queue` (visible at
        `visible_at` or now, whichever is later, in order, without attributes) and replace
        the timer by a new one due at `next_due` with `next_payload` (not leased), or
        delete it when `next_due` is None. A firing whose receipt is stale or foreign
        changes nothing. Whether each fired, in order."""


class Leases(Protocol):
    """Named leases with one holder and a TTL (leader election, shard ownership)."""

    def lease_acquire(self, name: str, holder: str, ttl: float) -> bool:
        """Take the lease for `ttl` (> 0) seconds if free or expired, or renew it if
        `holder` has it. False if another holder has it."""

    def lease_release(self, name: str, holder: str) -> bool:
        """Give up the lease if `holder` has it. False if it had expired or is another's."""

    def lease_holder(self, name: str) -> str | None:
        """The current unexpired holder."""


class Slots(Protocol):
    """Counting semaphores with expiring holders (cluster-wide reserved concurrency)."""

    def slot_acquire(self, key: str, limit: int, holder: str, ttl: float) -> str | None:
        """Take one of `limit` (>= 0; 0 always refuses) slots for `ttl` (> 0) seconds.
        Returns a token, or None if every slot is held."""

    def slot_release(self, key: str, token: str) -> None:
        """Give a slot back (nothing happens for an unknown or expired token)."""

    def slot_count(self, key: str) -> int:
        """Slots held and unexpired."""


class Nodes(Protocol):
    """A registry of live nodes, each with a heartbeat TTL and an info dict."""

    def node_heartbeat(self, node_id: str, info: dict[str, Any], ttl: float) -> None:
        """Register or refresh a live node for `ttl` (> 0) seconds (info: JSON-serialisable)."""

    def node_remove(self, node_id: str) -> None:
        """Deregister a node (clean shutdown); nothing happens for an unknown one."""

    def nodes(self) -> list[NodeInfo]:
        """Live (unexpired) nodes, sorted by id."""


class Backend(Queues, Tables, Streams, Timers, Leases, Slots, Nodes, Protocol):
    """Every primitive on one store. See the module docstring."""

    #: the URL that reopens this same store (function instances reopen it after fork); a
    #: SQLite backend's says `mode=rw`, so a reopen never creates a missing file afresh
    url: str
    #: where time comes from (seconds since the epoch)
    clock: Clock
    #: True when several nodes may share this backend (cluster-wide limits apply)
    distributed: bool

    def problem(self) -> str | None:
        """Why the store cannot be used right now, or None when it can: SQLite, its file was
        deleted or replaced while open (writes are refused); Redis, the error of the last
        call when it found the server unreachable. Cheap (no round trip): nodes ask on every
        heartbeat and report themselves unhealthy while it is not None."""

    def close(self) -> None:
        """Release connections. The backend is not used afterwards."""
