"""The distributed backend: every primitive of `squall.backends.base` on one Redis server.

Several nodes share one Redis, so every change that reads before it writes (claims, acks,
conditional table writes, leases, slots) is one Lua script: Redis runs a script alone, which
makes it atomic without locks or WATCH loops. Time never comes from Redis: `now` is read from
`self.clock` and passed to the scripts, so a fake clock drives them in tests and nodes agree
on what "expired" means. Times travel as Python `repr` floats (exact), never as numbers
formatted by Lua.

Key layout (every key starts with `squall:` so a shared Redis is not polluted; user names
always come after a kind segment and no suffix contains ':', so names cannot collide):

    squall:queues                      HASH  queue -> JSON config (the registry)
    squall:q:<queue>:seq               STRING send sequence (INCR), per queue
    squall:q:<queue>:msg               HASH  slot -> JSON {id, body, attributes, sent_at}
    squall:q:<queue>:vis               ZSET  slot -> visible_at (every message of the queue)
    squall:q:<queue>:new               ZSET  slot -> visible_at, sent with a delay, never received
    squall:q:<queue>:order             ZSET  slot -> seq (send order, for peek and counts)
    squall:q:<queue>:count             HASH  slot -> receive count
    squall:q:<queue>:first             HASH  slot -> first received at
    squall:q:<queue>:rcpt              HASH  slot -> current receipt
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

A message's *slot* is its queue-local send sequence, zero-padded: members of `vis` with the
same visible_at sort by name, so equal times are claimed in send order. Receipts are
`<slot>:<nonce>`; a receipt is current while `rcpt[slot]` still holds it, so receiving the
message again (or deleting it) makes the old receipt stale.
"""

from __future__ import annotations

import functools
import json
import os
import uuid
from typing import Any, Callable, Concatenate, Iterator, ParamSpec, TypeVar
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script
from redis.retry import Retry
from redis.sentinel import Sentinel

from squall.backends.base import (
    Backend, Clock, Item, Message, NodeInfo, QueueConfig, QueueStats, StreamRecord, Timer, change_record, change_stream,
    shard_for,
)
from squall.errors import BackendUnavailable, ConditionFailed, ConfigError

SENTINEL_SCHEME = "redis+sentinel://"
PREFIX = "squall:"
QUEUES = PREFIX + "queues"
STREAMS = PREFIX + "streams"
NODES = PREFIX + "nodes"
NODE_EXPIRY = PREFIX + "node-expiry"

#: The keys of one queue, in the order the Lua scripts read them from KEYS.
QUEUE_PARTS = ("seq", "msg", "vis", "new", "order", "count", "first", "rcpt")
#: Retries survive a Redis restart (about 5 s of backoff); then BackendUnavailable is raised.
RETRY = Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=6)
#: Records read per XRANGE while looking for where retention cuts a shard.
TRIM_BATCH = 500
#: Messages moved per script by a redrive: a script blocks every other client while it runs.
REDRIVE_BATCH = 1000

# ---- Lua ------------------------------------------------------------------------------

_QUEUE_LUA = """
local function queue(at)
  return {%s}
end

-- Run `command key args...` over a long argument list, CHUNK arguments (an even number, so
-- pairs stay whole) per call: one command per structure instead of one per message, and
-- never more arguments than unpack() allows.
local CHUNK = 1000
local function chunked(command, key, args)
  for i = 1, #args, CHUNK do
    redis.call(command, key, unpack(args, i, math.min(i + CHUNK - 1, #args)))
  end
end

-- HMGET over a long list of fields (false where a field is absent).
local function hmget(key, fields)
  local out = {}
  for i = 1, #fields, CHUNK do
    for _, value in ipairs(redis.call('HMGET', key, unpack(fields, i, math.min(i + CHUNK - 1, #fields)))) do
      out[#out + 1] = value
    end
  end
  return out
end

-- Append messages (JSON texts) to queue q, message i visible at visible_at[i]; returns
-- their slots. One INCRBY reserves every sequence number.
local function insert(q, msgs, visible_at)
  if #msgs == 0 then return {} end
  local first_seq = redis.call('INCRBY', q.seq, #msgs) - #msgs + 1
  local slots, bodies, visible, order = {}, {}, {}, {}
  for i, msg in ipairs(msgs) do
    local seq = first_seq + i - 1
    local slot = string.format('%%016d', seq)
    slots[i] = slot
    bodies[2 * i - 1], bodies[2 * i] = slot, msg
    visible[2 * i - 1], visible[2 * i] = visible_at[i], slot
    order[2 * i - 1], order[2 * i] = seq, slot
  end
  chunked('HSET', q.msg, bodies)
  chunked('ZADD', q.vis, visible)
  chunked('ZADD', q.order, order)
  return slots
end

local function remove(q, slots)
  for _, h in ipairs({q.msg, q.count, q.first, q.rcpt}) do chunked('HDEL', h, slots) end
  for _, z in ipairs({q.vis, q.new, q.order}) do chunked('ZREM', z, slots) end
end

-- Move messages to queue dst in order, visible now; their receive counts start again from 0.
local function move(src, slots, dst, now)
  local msgs, visible_at = hmget(src.msg, slots), {}
  for i = 1, #slots do visible_at[i] = now end
  remove(src, slots)
  insert(dst, msgs, visible_at)
end

-- The slot a receipt names, if the receipt is still current.
local function held(q, receipt)
  local slot = string.match(receipt, '^(%%d+):')
  if slot and redis.call('HGET', q.rcpt, slot) == receipt then return slot end
  return nil
end
""" % ", ".join(f"{part}=KEYS[at+{i}]" for i, part in enumerate(QUEUE_PARTS))

_STREAM_LUA = """
-- KEYS[at..at+2]: registry, seq hash, shard stream.
-- ARGV[a..a+5]: stream, shard count the caller used, shard, partition key, data, now.
-- A missing stream is created with one shard; false if the caller used another count.
local function shards_ok(at, a)
  if redis.call('HSETNX', KEYS[at], ARGV[a], 1) == 1 then return ARGV[a+1] == '1' end
  return redis.call('HGET', KEYS[at], ARGV[a]) == ARGV[a+1]
end

local function append(at, a)
  local seq = redis.call('HINCRBY', KEYS[at+1], ARGV[a+2], 1)
  redis.call('XADD', KEYS[at+2], string.format('%d-0', seq), 'k', ARGV[a+3], 'd', ARGV[a+4], 't', ARGV[a+5])
  return seq
end
"""

_QUEUE_SCRIPTS = {
    # KEYS: queue. ARGV: now, then (message JSON, visible_at) pairs.
    "enqueue": """
local q = queue(1)
local now = tonumber(ARGV[1])
local msgs, visible_at = {}, {}
for i = 2, #ARGV, 2 do
  msgs[#msgs + 1] = ARGV[i]
  visible_at[#visible_at + 1] = ARGV[i+1]
end
local delayed = {}
for i, slot in ipairs(insert(q, msgs, visible_at)) do
  if tonumber(visible_at[i]) > now then
    delayed[#delayed + 1] = visible_at[i]
    delayed[#delayed + 1] = slot
  end
end
chunked('ZADD', q.new, delayed)
""",
    # KEYS: queue [, dlq]. ARGV: now, visible again at, max messages, nonce, max receives ('' = none).
    # Returns one JSON array of [message, receive count, first received at, receipt] rows,
    # parsed by one json.loads rather than one per message. The stored texts go in verbatim
    # (message JSON, the first-received time as Python wrote it); the count is an integer.
    # Picks the messages first, setting aside those out of receives, then updates each
    # structure once for all of them and moves the dead ones to the DLQ. Picked messages keep
    # their place at the head of `vis` until then, so the next range skips them by offset.
    "claim": """
local q = queue(1)
local dlq = KEYS[9] and queue(9)
local now, deadline, want, nonce = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local max_receives = tonumber(ARGV[5])
local slots, counts, dead = {}, {}, {}
while #slots < want do
  local found = redis.call('ZRANGEBYSCORE', q.vis, '-inf', now, 'LIMIT', #slots + #dead, want - #slots)
  if #found == 0 then break end
  for _, slot in ipairs(found) do
    local count = redis.call('HINCRBY', q.count, slot, 1)
    if dlq and count > max_receives then
      dead[#dead + 1] = slot
    else
      slots[#slots + 1] = slot
      counts[#counts + 1] = count
    end
  end
end
local firsts, bodies = hmget(q.first, slots), hmget(q.msg, slots)
local new_firsts, receipts, visible_at, out = {}, {}, {}, {}
for i, slot in ipairs(slots) do
  local first = firsts[i]
  if not first then
    first = now
    new_firsts[#new_firsts + 1] = slot
    new_firsts[#new_firsts + 1] = now
  end
  local receipt = slot .. ':' .. nonce
  receipts[#receipts + 1] = slot
  receipts[#receipts + 1] = receipt
  visible_at[#visible_at + 1] = deadline
  visible_at[#visible_at + 1] = slot
  out[i] = '[' .. bodies[i] .. ',' .. counts[i] .. ',' .. first .. ',"' .. receipt .. '"]'
end
chunked('HSET', q.first, new_firsts)
chunked('HSET', q.rcpt, receipts)
chunked('ZADD', q.vis, visible_at)
chunked('ZREM', q.new, slots)
if #dead > 0 then move(q, dead, dlq, now) end
return '[' .. table.concat(out, ',') .. ']'
""",
    # KEYS: queue. ARGV: receipts. Returns how many messages were deleted (a receipt given
    # twice counts once).
    "ack": """
local q = queue(1)
local receipts, slots, seen = {}, {}, {}
for _, receipt in ipairs(ARGV) do
  local slot = string.match(receipt, '^(%d+):')
  if slot and not seen[receipt] then
    seen[receipt] = true
    receipts[#receipts + 1] = receipt
    slots[#slots + 1] = slot
  end
end
local held = {}
for i, current in ipairs(hmget(q.rcpt, slots)) do
  if current == receipts[i] then held[#held + 1] = slots[i] end
end
remove(q, held)
return #held
""",
    # KEYS: queue. ARGV: receipt, visible at.
    "release": """
local q = queue(1)
local slot = held(q, ARGV[1])
if not slot then return 0 end
redis.call('ZADD', q.vis, ARGV[2], slot)
return 1
""",
    # KEYS: queue, dlq. ARGV: receipt, now.
    "dead_letter": """
local q = queue(1)
local slot = held(q, ARGV[1])
if not slot then return 0 end
move(q, {slot}, queue(9), ARGV[2])
return 1
""",
    # KEYS: source, target. ARGV: now, limit. Moves the messages visible at `now`.
    "redrive": """
local src, dst = queue(1), queue(9)
local slots = redis.call('ZRANGEBYSCORE', src.vis, '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
move(src, slots, dst, ARGV[1])
return #slots
""",
    # KEYS: queue. ARGV: limit. Returns {message JSON, receive count, first received at}.
    "peek": """
local q = queue(1)
local out = {}
for _, slot in ipairs(redis.call('ZRANGE', q.order, 0, tonumber(ARGV[1]) - 1)) do
  out[#out + 1] = {redis.call('HGET', q.msg, slot), redis.call('HGET', q.count, slot) or '0',
                   redis.call('HGET', q.first, slot) or '0'}
end
return out
""",
}

_STREAM_SCRIPTS = {
    # KEYS: registry, seq hash, shard stream. ARGV: see _STREAM_LUA. Returns seq, or 0 to re-shard.
    "append": """
if not shards_ok(1, 1) then return 0 end
return append(1, 1)
""",
    # KEYS: items, keys [, registry, seq hash, shard stream]. ARGV: key, stored text expected
    # ('' = absent), new stored text ('' = delete) [, change record ARGV as in _STREAM_LUA].
    # Writes only if the item is still what the caller read; returns 'ok', 'stale' or 'reshard'.
    "table_write": """
if (redis.call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[2] then return 'stale' end
if KEYS[3] and not shards_ok(3, 4) then return 'reshard' end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  redis.call('ZADD', KEYS[2], 0, ARGV[1])
end
if KEYS[3] then append(3, 4) end
return 'ok'
""",
}

_OTHER_SCRIPTS = {
    # KEYS: items, keys. ARGV: min, max, limit. Returns key, stored text, key, stored text...
    "table_scan": """
local out = {}
for _, key in ipairs(redis.call('ZRANGEBYLEX', KEYS[2], ARGV[1], ARGV[2], 'LIMIT', 0, ARGV[3])) do
  out[#out + 1] = key
  out[#out + 1] = redis.call('HGET', KEYS[1], key)
end
return out
""",
    # KEYS: at, due, payload, rcpt. ARGV: now, lease end, limit, nonce.
    "timers_claim": """
local out = {}
for i, key in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])) do
  local receipt = ARGV[4] .. ':' .. i
  redis.call('ZADD', KEYS[1], ARGV[2], key)
  redis.call('HSET', KEYS[4], key, receipt)
  out[#out + 1] = {key, redis.call('HGET', KEYS[2], key), redis.call('HGET', KEYS[3], key), receipt}
end
return out
""",
    # KEYS: at, due, payload, rcpt. ARGV: key, receipt.
    "timer_ack": """
if redis.call('HGET', KEYS[4], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
for i = 2, 4 do redis.call('HDEL', KEYS[i], ARGV[1]) end
return 1
""",
    # KEYS: lease. ARGV: holder, now, expires.
    "lease_acquire": """
local holder = redis.call('HGET', KEYS[1], 'holder')
if holder and holder ~= ARGV[1]
    and tonumber(redis.call('HGET', KEYS[1], 'expires')) > tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'expires', ARGV[3])
return 1
""",
    # KEYS: lease. ARGV: holder, now. An expired lease is deleted too, but was not held.
    "lease_release": """
if redis.call('HGET', KEYS[1], 'holder') ~= ARGV[1] then return 0 end
local live = tonumber(redis.call('HGET', KEYS[1], 'expires')) > tonumber(ARGV[2])
redis.call('DEL', KEYS[1])
if live then return 1 end
return 0
""",
    # KEYS: slots. ARGV: now, expires, limit, token.
    "slot_acquire": """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
return 1
""",
    # KEYS: nodes, node expiry. ARGV: node, JSON, now, expires. Forgets expired nodes too.
    "node_heartbeat": """
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])) do
  redis.call('HDEL', KEYS[1], node)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
""",
}

SCRIPTS = {
    **{name: _QUEUE_LUA + body for name, body in _QUEUE_SCRIPTS.items()},
    **{name: _STREAM_LUA + body for name, body in _STREAM_SCRIPTS.items()},
    **_OTHER_SCRIPTS,
}

# ---- helpers --------------------------------------------------------------------------

P = ParamSpec("P")
R = TypeVar("R")


def _reachable(method: Callable[Concatenate[RedisBackend, P], R]) -> Callable[Concatenate[RedisBackend, P], R]:
    """Turn "Redis is down" (after redis-py's retries gave up) into one BackendUnavailable."""

    @functools.wraps(method)
    def wrapper(self: RedisBackend, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise BackendUnavailable(f"Redis at {self.where} is unreachable: {exc}") from exc

    return wrapper


def _sentinel_primary(url: str, options: dict[str, Any]) -> redis.Redis:
    """`redis+sentinel://[:password@]host[:port][,host[:port]...]/service[/db]`: a client of
    the primary the Sentinels name for `service`. Its pool asks them again on every new
    connection, so after a failover the retries reach the promoted replica. The password,
    if any, is the data servers' (Sentinels are reached without one)."""
    parts = urlsplit(url)
    password = parts.netloc.rpartition("@")[0].partition(":")[2] or None
    sentinels = []
    for address in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
        sentinels.append((host, int(port or 26379)))
    service, _, db = parts.path.strip("/").partition("/")
    if not service or not all(h for h, _ in sentinels) or not (db or "0").isdigit():
        raise ConfigError(f"invalid Sentinel URL {_redacted(url)!r}: expected "
                          f"{SENTINEL_SCHEME}host:port[,host:port...]/service[/db]")
    sentinel = Sentinel(sentinels, socket_connect_timeout=options["socket_connect_timeout"], socket_timeout=2.0)
    return sentinel.master_for(service, db=int(db or 0), password=password, **options)


def _redacted(url: str) -> str:
    """The URL without credentials or query (which may carry a password), for messages."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _queue_keys(queue: str) -> list[str]:
    return [f"{PREFIX}q:{queue}:{part}" for part in QUEUE_PARTS]


def _table_keys(table: str) -> list[str]:
    return [f"{PREFIX}t:{table}:items", f"{PREFIX}t:{table}:keys"]


def _stream_keys(stream: str, shard: int) -> list[str]:
    """Registry, seq hash and shard stream: the KEYS of an append (see _STREAM_LUA)."""
    return [STREAMS, f"{PREFIX}s:{stream}:seq", _shard_key(stream, shard)]


def _shard_key(stream: str, shard: int) -> str:
    return f"{PREFIX}s:{stream}:{shard}"


def _checkpoints_key(stream: str) -> str:
    return f"{PREFIX}s:{stream}:ckpt"


def _timer_keys(group: str) -> list[str]:
    return [f"{PREFIX}tm:{group}:{part}" for part in ("at", "due", "payload", "rcpt")]


def _item(key: str, stored: str | None) -> Item | None:
    if stored is None:
        return None
    data = json.loads(stored)
    return Item(key, data["v"], data["ver"])


def _message(queue: str, data: dict[str, Any], receive_count: int, first_received_at: float,
             receipt: str) -> Message:
    """A message from its stored JSON (parsed) and its receive state."""
    return Message(id=data["id"], queue=queue, body=data["body"], attributes=data["attributes"],
                   receipt=receipt, receive_count=receive_count, sent_at=data["sent_at"],
                   first_received_at=first_received_at)


def _seq(entry_id: str) -> int:
    """The seq of a stream entry id `<seq>-0`."""
    return int(entry_id.partition("-")[0])


def _check_version(table: str, key: str, old: Item | None, if_version: int | None) -> None:
    """`if_version` must equal the current version (an absent item is at version 0)."""
    current = old.version if old else 0
    if if_version is not None and current != if_version:
        state = f"is at version {current}" if old else "does not exist"
        raise ConditionFailed(f"table {table!r} key {key!r} {state}, not version {if_version}")


class RedisBackend(Backend):
    """The backend on a Redis server (`redis://host:port/db`, `rediss://...`, `unix:///path`,
    or a Sentinel-managed primary: `redis+sentinel://host:port[,host:port...]/service/db`)."""

    distributed = True

    def __init__(self, url: str, clock: Clock | None = None):
        super().__init__(url, clock)
        self.where = _redacted(url)
        self._client = self._connect()
        self._pid = os.getpid()
        self._scripts: dict[str, Script] = {name: self._client.register_script(source)
                                            for name, source in SCRIPTS.items()}
        #: shard counts seen; a stream's count never changes, and scripts check it anyway
        self._shards: dict[str, int] = {}

    def _connect(self) -> redis.Redis:
        """A pooled client that retries with backoff across a server restart (or, behind
        Sentinel, a failover). Options in a redis:// URL's query string (socket_timeout=...)
        override these defaults.
        """
        options: dict[str, Any] = dict(decode_responses=True, socket_connect_timeout=2.0, socket_timeout=10.0,
                                       retry=RETRY, retry_on_error=[redis.ConnectionError, redis.TimeoutError])
        if self.url.startswith(SENTINEL_SCHEME):
            return _sentinel_primary(self.url, options)
        return redis.Redis.from_url(self.url, **options)

    @property
    def _redis(self) -> redis.Redis:
        """The client of this process. A forked child must not talk on its parent's sockets,
        so it gets a new client (the parent's is dropped without closing its sockets)."""
        if self._pid != os.getpid():
            self._client, self._pid = self._connect(), os.getpid()
        return self._client

    def _run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        return self._scripts[script](keys=keys, args=args, client=self._redis)

    def close(self) -> None:
        if self._pid == os.getpid():
            self._client.close()

    # ---- queues -------------------------------------------------------------------

    @_reachable
    def queue_declare(self, name: str, config: QueueConfig) -> None:
        self._redis.hset(QUEUES, name, config.to_json())

    @_reachable
    def queue_config(self, name: str) -> QueueConfig | None:
        stored = self._redis.hget(QUEUES, name)
        return None if stored is None else QueueConfig.from_json(name, stored)

    @_reachable
    def queues_next_visible(self, queues: list[str]) -> dict[str, float]:
        pipe = self._redis.pipeline(transaction=False)
        for queue in queues:
            pipe.zrange(dict(zip(QUEUE_PARTS, _queue_keys(queue)))["vis"], 0, 0, withscores=True)
        return {queue: found[0][1] for queue, found in zip(queues, pipe.execute()) if found}

    @_reachable
    def queue_names(self) -> list[str]:
        return sorted(self._redis.hkeys(QUEUES))

    def enqueue(self, queue: str, body: str, attributes: dict[str, Any] | None = None,
                delay: float = 0.0) -> str:
        return self.enqueue_batch(queue, [(body, attributes, delay)])[0]

    @_reachable
    def enqueue_batch(self, queue: str, entries: list[tuple[str, dict[str, Any] | None, float]]) -> list[str]:
        if not entries:
            return []
        now = self.clock()
        ids, args = [], [now]
        for body, attributes, delay in entries:
            ids.append(str(uuid.uuid4()))
            args += [_json({"id": ids[-1], "body": body, "attributes": attributes or {}, "sent_at": now}),
                     now + delay]
        self._run("enqueue", _queue_keys(queue), args)
        return ids

    @_reachable
    def claim(self, queue: str, max_messages: int, visibility_timeout: float, *,
              max_receives: int | None = None, dlq: str | None = None) -> list[Message]:
        now = self.clock()
        redrive = max_receives is not None and dlq is not None
        keys = _queue_keys(queue) + (_queue_keys(dlq) if redrive else [])
        reply = self._run("claim", keys, [now, now + visibility_timeout, max_messages, uuid.uuid4().hex,
                                          max_receives if redrive else ""])
        return [_message(queue, *row) for row in json.loads(reply)]

    @_reachable
    def ack(self, queue: str, receipts: list[str]) -> int:
        if not receipts:
            return 0
        return self._run("ack", _queue_keys(queue), receipts)

    @_reachable
    def release(self, queue: str, receipt: str, delay: float = 0.0) -> bool:
        return bool(self._run("release", _queue_keys(queue), [receipt, self.clock() + delay]))

    @_reachable
    def dead_letter(self, queue: str, receipt: str, dlq: str) -> bool:
        return bool(self._run("dead_letter", _queue_keys(queue) + _queue_keys(dlq), [receipt, self.clock()]))

    @_reachable
    def redrive(self, source: str, target: str, limit: int | None = None) -> int:
        """REDRIVE_BATCH messages per script, every one visible when the redrive began, so
        a large DLQ does not stall the cluster and messages failing meanwhile stay put."""
        keys, now, moved = _queue_keys(source) + _queue_keys(target), self.clock(), 0
        while limit is None or moved < limit:
            want = REDRIVE_BATCH if limit is None else min(REDRIVE_BATCH, limit - moved)
            done = self._run("redrive", keys, [now, want])
            moved += done
            if done < want:
                break
        return moved

    @_reachable
    def queue_stats(self, queue: str) -> QueueStats:
        keys = dict(zip(QUEUE_PARTS, _queue_keys(queue)))
        now = self.clock()
        pipe = self._redis.pipeline()  # MULTI/EXEC: the three counts are one snapshot
        pipe.zcount(keys["vis"], "-inf", now)
        pipe.zcount(keys["vis"], f"({now!r}", "+inf")
        pipe.zcount(keys["new"], f"({now!r}", "+inf")
        visible, invisible, delayed = pipe.execute()
        return QueueStats(visible=visible, in_flight=invisible - delayed, delayed=delayed)

    @_reachable
    def peek(self, queue: str, limit: int = 10) -> list[Message]:
        if limit <= 0:
            return []
        return [_message(queue, json.loads(stored), int(count), float(first), "")
                for stored, count, first in self._run("peek", _queue_keys(queue), [limit])]

    @_reachable
    def purge(self, queue: str) -> int:
        keys = dict(zip(QUEUE_PARTS, _queue_keys(queue)))
        pipe = self._redis.pipeline()
        pipe.zcard(keys["order"])
        pipe.unlink(*(key for part, key in keys.items() if part != "seq"))  # slots are never reused
        return pipe.execute()[0]

    # ---- tables -------------------------------------------------------------------

    @_reachable
    def table_get(self, table: str, key: str) -> Item | None:
        return _item(key, self._redis.hget(_table_keys(table)[0], key))

    @_reachable
    def table_put(self, table: str, key: str, value: Any, *, if_version: int | None = None,
                  if_absent: bool = False, feed: bool = False) -> Item:
        """Read, check the condition, then write only if the item is unchanged (else retry):
        the change record is then built from exactly what was replaced."""
        items = _table_keys(table)[0]
        while True:
            stored = self._redis.hget(items, key)
            old = _item(key, stored)
            if if_absent and old is not None:
                raise ConditionFailed(f"table {table!r} already has key {key!r} (version {old.version})")
            _check_version(table, key, old, if_version)
            new = Item(key, value, (old.version if old else 0) + 1)
            event = "MODIFY" if old else "INSERT"
            if self._write_item(table, key, stored, _json({"v": value, "ver": new.version}),
                                change_record(event, key, old, new, self.clock()) if feed else None):
                return new

    @_reachable
    def table_delete(self, table: str, key: str, *, if_version: int | None = None,
                     feed: bool = False) -> Item | None:
        items = _table_keys(table)[0]
        while True:
            stored = self._redis.hget(items, key)
            old = _item(key, stored)
            _check_version(table, key, old, if_version)
            if old is None:
                return None
            if self._write_item(table, key, stored, "",
                                change_record("REMOVE", key, old, None, self.clock()) if feed else None):
                return old

    def _write_item(self, table: str, key: str, expected: str | None, stored: str, record: str | None) -> bool:
        """Replace `expected` (None: absent) by `stored` ('': delete), appending `record` to
        the table's change stream in the same script. False if the item changed meanwhile."""
        keys, args = _table_keys(table), [key, expected or "", stored]
        while True:
            if record is None:
                return self._run("table_write", keys, args) == "ok"
            stream = change_stream(table)
            shards = self._shard_count(stream) or 1
            shard = shard_for(key, shards)
            outcome = self._run("table_write", keys + _stream_keys(stream, shard),
                                args + [stream, shards, shard, key, record, self.clock()])
            if outcome != "reshard":
                return outcome == "ok"
            self._shards.pop(stream, None)

    @_reachable
    def table_scan(self, table: str, *, prefix: str = "", start_after: str | None = None,
                   limit: int = 1000) -> list[Item]:
        if limit <= 0:
            return []
        low = prefix.encode()
        start = b"[" + low
        if start_after is not None and start_after.encode() >= low:
            start = b"(" + start_after.encode()
        end = b"[" + low + b"\xff" if prefix else b"+"  # no UTF-8 text contains the byte 0xff
        flat = self._run("table_scan", _table_keys(table), [start, end, limit])
        return [_item(key, stored) for key, stored in zip(flat[::2], flat[1::2])]

    # ---- streams ------------------------------------------------------------------

    @_reachable
    def stream_create(self, stream: str, shards: int) -> int:
        pipe = self._redis.pipeline()
        pipe.hsetnx(STREAMS, stream, shards)
        pipe.hget(STREAMS, stream)
        return int(pipe.execute()[1])

    @_reachable
    def stream_names(self) -> list[str]:
        return sorted(self._redis.hkeys(STREAMS))

    @_reachable
    def stream_shards(self, stream: str) -> int:
        return self._shard_count(stream)

    def _shard_count(self, stream: str) -> int:
        if stream not in self._shards:
            count = int(self._redis.hget(STREAMS, stream) or 0)
            if not count:
                return 0
            self._shards[stream] = count
        return self._shards[stream]

    @_reachable
    def stream_append(self, stream: str, partition_key: str, data: str) -> tuple[int, int]:
        """Seqs come from a per-shard counter and are the stream entry ids (`<seq>-0`), so a
        read after a seq is an XRANGE from `<seq+1>`."""
        while True:
            shards = self._shard_count(stream) or 1
            shard = shard_for(partition_key, shards)
            seq = self._run("append", _stream_keys(stream, shard),
                            [stream, shards, shard, partition_key, data, self.clock()])
            if seq:
                return shard, seq
            self._shards.pop(stream, None)

    @_reachable
    def stream_read(self, stream: str, shard: int, after_seq: int, limit: int = 100) -> list[StreamRecord]:
        if limit <= 0:
            return []
        entries = self._redis.xrange(_shard_key(stream, shard), f"{max(after_seq, 0) + 1}-0", "+", count=limit)
        return [StreamRecord(stream, shard, _seq(entry_id), fields["k"], fields["d"], float(fields["t"]))
                for entry_id, fields in entries]

    @_reachable
    def stream_trim(self, stream: str, before: float) -> int:
        """Cut each shard's head up to the first record at or after `before`: records are
        appended in time order, so retention is a prefix (XTRIM MINID, exact)."""
        trimmed = 0
        for shard in range(self._shard_count(stream)):
            key = _shard_key(stream, shard)
            last_old = None
            for entry_id, fields in self._entries(key):
                if float(fields["t"]) >= before:
                    break
                last_old = entry_id
            if last_old is not None:
                trimmed += self._redis.xtrim(key, minid=f"{_seq(last_old) + 1}-0", approximate=False)
        return trimmed

    def _entries(self, key: str) -> Iterator[tuple[str, dict[str, str]]]:
        start = "-"
        while True:
            batch = self._redis.xrange(key, start, "+", count=TRIM_BATCH)
            yield from batch
            if len(batch) < TRIM_BATCH:
                return
            start = f"({batch[-1][0]}"

    @_reachable
    def checkpoint_get(self, stream: str, consumer: str, shard: int) -> int:
        return int(self._redis.hget(_checkpoints_key(stream), f"{shard}:{consumer}") or 0)

    @_reachable
    def checkpoint_set(self, stream: str, consumer: str, shard: int, seq: int) -> None:
        self._redis.hset(_checkpoints_key(stream), f"{shard}:{consumer}", seq)

    # ---- timers -------------------------------------------------------------------

    @_reachable
    def timer_set(self, group: str, key: str, due: float, payload: str) -> None:
        at, dues, payloads, receipts = _timer_keys(group)
        pipe = self._redis.pipeline()
        pipe.zadd(at, {key: due})
        pipe.hset(dues, key, due)
        pipe.hset(payloads, key, payload)
        pipe.hdel(receipts, key)  # a claim of the replaced timer can no longer ack it
        pipe.execute()

    @_reachable
    def timer_cancel(self, group: str, key: str) -> bool:
        at, *hashes = _timer_keys(group)
        pipe = self._redis.pipeline()
        pipe.zrem(at, key)
        for name in hashes:
            pipe.hdel(name, key)
        return bool(pipe.execute()[0])

    @_reachable
    def timers_claim(self, group: str, limit: int, lease: float) -> list[Timer]:
        if limit <= 0:
            return []
        now = self.clock()
        rows = self._run("timers_claim", _timer_keys(group), [now, now + lease, limit, uuid.uuid4().hex])
        return [Timer(group, key, float(due), payload, receipt) for key, due, payload, receipt in rows]

    @_reachable
    def timer_ack(self, group: str, key: str, receipt: str) -> bool:
        return bool(self._run("timer_ack", _timer_keys(group), [key, receipt]))

    # ---- leases -------------------------------------------------------------------

    @_reachable
    def lease_acquire(self, name: str, holder: str, ttl: float) -> bool:
        now = self.clock()
        return bool(self._run("lease_acquire", [f"{PREFIX}lease:{name}"], [holder, now, now + ttl]))

    @_reachable
    def lease_release(self, name: str, holder: str) -> bool:
        return bool(self._run("lease_release", [f"{PREFIX}lease:{name}"], [holder, self.clock()]))

    @_reachable
    def lease_holder(self, name: str) -> str | None:
        holder, expires = self._redis.hmget(f"{PREFIX}lease:{name}", ["holder", "expires"])
        return holder if holder is not None and float(expires) > self.clock() else None

    # ---- slots --------------------------------------------------------------------

    @_reachable
    def slot_acquire(self, key: str, limit: int, holder: str, ttl: float) -> str | None:
        now = self.clock()
        token = f"{holder}:{uuid.uuid4().hex}"
        taken = self._run("slot_acquire", [f"{PREFIX}slot:{key}"], [now, now + ttl, limit, token])
        return token if taken else None

    @_reachable
    def slot_release(self, key: str, token: str) -> None:
        self._redis.zrem(f"{PREFIX}slot:{key}", token)

    @_reachable
    def slot_count(self, key: str) -> int:
        return self._redis.zcount(f"{PREFIX}slot:{key}", f"({self.clock()!r}", "+inf")

    # ---- nodes --------------------------------------------------------------------

    @_reachable
    def node_heartbeat(self, node_id: str, info: dict[str, Any], ttl: float) -> None:
        now = self.clock()
        self._run("node_heartbeat", [NODES, NODE_EXPIRY], [node_id, _json({"info": info, "seen": now}), now, now + ttl])

    @_reachable
    def node_remove(self, node_id: str) -> None:
        pipe = self._redis.pipeline()
        pipe.hdel(NODES, node_id)
        pipe.zrem(NODE_EXPIRY, node_id)
        pipe.execute()

    @_reachable
    def nodes(self) -> list[NodeInfo]:
        live = self._redis.zrangebyscore(NODE_EXPIRY, f"({self.clock()!r}", "+inf")
        if not live:
            return []
        found = []
        for node_id, stored in zip(live, self._redis.hmget(NODES, live)):
            if stored is not None:  # removed since the range was read
                data = json.loads(stored)
                found.append(NodeInfo(node_id, data["info"], data["seen"]))
        return sorted(found, key=lambda node: node.node_id)

