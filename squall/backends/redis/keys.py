"""The Redis key layout: every key and channel the backend uses is built here, and only here.

Every key starts with `squall:` so a shared Redis is not polluted. User names always come
after a kind segment and no suffix contains ':', so names cannot collide:

    squall:queues                      HASH  queue -> QueueConfig JSON (the registry)
    squall:q:<queue>:seq               STRING send sequence (INCR), per queue
    squall:q:<queue>:msg               HASH  slot -> JSON {id, body, attributes, sent_at}
    squall:q:<queue>:vis               ZSET  slot -> visible_at (every message of the queue)
    squall:q:<queue>:new               ZSET  slot -> visible_at, sent with a delay, never received
    squall:q:<queue>:order             ZSET  slot -> seq (send order, for peek, counts, redrive)
    squall:q:<queue>:count             HASH  slot -> receive count
    squall:q:<queue>:first             HASH  slot -> first received at
    squall:q:<queue>:rcpt              HASH  slot -> current receipt
    squall:q:<queue>:grp               HASH  slot -> message group (FIFO queues only, as the four below)
    squall:q:<queue>:gidx              ZSET  "<group> <slot>" (score 0: lexicographic, a group's in send order)
    squall:q:<queue>:heads             ZSET  group -> visible_at of the group's head (its first message)
    squall:q:<queue>:dedup             HASH  deduplication id -> message id
    squall:q:<queue>:dedupx            ZSET  deduplication id -> end of its deduplication window
    squall:pub:<scope>:seq             STRING a FIFO publish scope's (a topic's) last sequence number
    squall:pub:<scope>:dedup           HASH  deduplication id -> "<message id> <sequence number>"
    squall:pub:<scope>:dedupx          ZSET  deduplication id -> end of its deduplication window
    squall:t:<table>:items             HASH  key -> JSON {"v": value, "ver": n}
    squall:t:<table>:keys              ZSET  key (score 0: lexicographic, for scans)
    squall:streams                     HASH  stream -> shard count
    squall:s:<stream>:seq              HASH  shard -> last seq
    squall:s:<stream>:<shard>          STREAM ids `<seq>-0`, fields k (partition key), d, t
    squall:s:<stream>:ckpt             HASH  "<shard>:<consumer>" -> seq
    squall:tm:<group>:at               ZSET  key -> due, or end of the lease once claimed
    squall:tm:<group>:due|payload|rcpt HASH  key -> due / payload / receipt of the last claim
    squall:lease:<name>                HASH  holder, expires
    squall:slot:<key>                  ZSET  token -> expires
    squall:nodes                       HASH  node -> JSON {info, seen}
    squall:node-expiry                 ZSET  node -> expires

    squall:wake                        PUBSUB channel: the name of a queue where a message may
                                       have become visible (see `Queues.watch_enqueues`)

A message's *slot* is its queue-local send sequence, zero-padded to 16 digits (by the Lua
queue library): members of `vis` with the same visible_at sort by name, so equal times are
claimed in send order. Receipts are `<slot>:<nonce>`; a receipt is current while
`rcpt[slot]` still holds it, so receiving the message again (or moving or deleting it) makes
the old receipt stale.

A FIFO queue's claims read `heads` (the groups whose head is visible) and then each group's
members of `gidx` (group ids hold no space, so "<group> " prefixes one group only), never
the messages behind a blocked head; `vis` still holds every message, for counts.

The Lua scripts get every key in KEYS; the queue library reads a queue's keys in the order
of QUEUE_PARTS, which the script loader hands it (`lua_constants`).
"""

from __future__ import annotations

from squall.backends.fifo import FIFO_SUFFIX

PREFIX = "squall:"
QUEUES = PREFIX + "queues"
STREAMS = PREFIX + "streams"
NODES = PREFIX + "nodes"
NODE_EXPIRY = PREFIX + "node-expiry"
WAKE_CHANNEL = PREFIX + "wake"

#: The keys of one queue, in the order the Lua scripts read them from KEYS.
QUEUE_PARTS = ("seq", "msg", "vis", "new", "order", "count", "first", "rcpt", "grp", "gidx", "heads", "dedup", "dedupx")


def queue(name: str) -> list[str]:
    """Every key of a queue, in QUEUE_PARTS order."""
    return [f"{PREFIX}q:{name}:{part}" for part in QUEUE_PARTS]


def queue_part(name: str, part: str) -> str:
    return f"{PREFIX}q:{name}:{part}"


def publish_scope(scope: str) -> list[str]:
    """seq, dedup and dedupx of a FIFO publish scope (`Queues.fan_out`'s `once`)."""
    return [f"{PREFIX}pub:{scope}:{part}" for part in ("seq", "dedup", "dedupx")]


def table(name: str) -> list[str]:
    """Items hash and keys index of a table."""
    return [f"{PREFIX}t:{name}:items", f"{PREFIX}t:{name}:keys"]


def stream_append(stream: str, shard: int) -> list[str]:
    """Registry, seq hash and shard stream: the KEYS of an append (see lua/_stream.lua)."""
    return [STREAMS, f"{PREFIX}s:{stream}:seq", shard_key(stream, shard)]


def shard_key(stream: str, shard: int) -> str:
    return f"{PREFIX}s:{stream}:{shard}"


def checkpoints(stream: str) -> str:
    return f"{PREFIX}s:{stream}:ckpt"


def checkpoint_field(consumer: str, shard: int) -> str:
    return f"{shard}:{consumer}"


def timers(group: str) -> list[str]:
    """at, due, payload, rcpt of a timer group."""
    return [f"{PREFIX}tm:{group}:{part}" for part in ("at", "due", "payload", "rcpt")]


def lease(name: str) -> str:
    return f"{PREFIX}lease:{name}"


def slots(key: str) -> str:
    return f"{PREFIX}slot:{key}"


def lua_constants() -> str:
    """Lua definitions of the layout the scripts need, prepended to every script."""
    parts = ", ".join(f"'{part}'" for part in QUEUE_PARTS)
    return (f"local QUEUE_PARTS = {{{parts}}}\nlocal WAKE_CHANNEL = '{WAKE_CHANNEL}'\n"
            f"local QUEUE_PREFIX = '{PREFIX}q:'\nlocal FIFO_SUFFIX = '{FIFO_SUFFIX}'\n")
