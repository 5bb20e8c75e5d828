"""Streams on Redis: one Redis stream per shard, entry ids `<seq>-0` from a per-shard counter."""

from __future__ import annotations

from collections.abc import Iterator

from squall.backends import checks
from squall.backends.protocol import Clock, StreamRecord, shard_for
from squall.backends.redis import keys
from squall.backends.redis.core import RedisCore, reachable

#: Records read per XRANGE while looking for where retention cuts a shard.
TRIM_BATCH = 500


def _seq(entry_id: str) -> int:
    """The seq of a stream entry id `<seq>-0`."""
    return int(entry_id.partition("-")[0])


class RedisStreams(RedisCore):
    """The `Streams` protocol on Redis."""

    def __init__(self, url: str, clock: Clock | None = None):
        super().__init__(url, clock)
        #: shard counts seen; a stream's count never changes, and scripts check it anyway
        self._shards: dict[str, int] = {}

    @reachable
    def stream_create(self, stream: str, shards: int) -> int:
        checks.shard_count(stream, shards)
        pipe = self._redis.pipeline()
        pipe.hsetnx(keys.STREAMS, stream, shards)
        pipe.hget(keys.STREAMS, stream)
        return int(pipe.execute()[1])

    @reachable
    def stream_names(self) -> list[str]:
        return sorted(self._redis.hkeys(keys.STREAMS))

    @reachable
    def stream_shards(self, stream: str) -> int:
        return self._shard_count(stream)

    def _shard_count(self, stream: str) -> int:
        if stream not in self._shards:
            count = int(self._redis.hget(keys.STREAMS, stream) or 0)
            if not count:
                return 0
            self._shards[stream] = count
        return self._shards[stream]

    def _append_args(self, stream: str, partition_key: str, data: str) -> tuple[list[str], list[str | int | float]]:
        """KEYS and ARGV of an append in a script (see lua/_stream.lua), with the shard count
        as this client last saw it; a script answering "re-shard" means it must be re-read."""
        shards = self._shard_count(stream) or 1
        shard = shard_for(partition_key, shards)
        return keys.stream_append(stream, shard), [stream, shards, shard, partition_key, data, self.clock()]

    @reachable
    def stream_append(self, stream: str, partition_key: str, data: str) -> tuple[int, int]:
        while True:
            keys_, args = self._append_args(stream, partition_key, data)
            if seq := self._run("stream_append", keys_, args):
                return int(args[2]), seq
            self._shards.pop(stream, None)

    @reachable
    def stream_read(self, stream: str, shard: int, after_seq: int, limit: int = 100) -> list[StreamRecord]:
        checks.count("limit", limit)
        if limit == 0:
            return []
        entries = self._redis.xrange(keys.shard_key(stream, shard), f"{max(after_seq, 0) + 1}-0", "+", count=limit)
        return [StreamRecord(stream, shard, _seq(entry_id), fields["k"], fields["d"], float(fields["t"]))
                for entry_id, fields in entries]

    @reachable
    def stream_trim(self, stream: str, before: float) -> int:
        """Cut each shard's head up to the first record at or after `before`: records are
        appended in time order, so retention is a prefix (XTRIM MINID, exact)."""
        trimmed = 0
        for shard in range(self._shard_count(stream)):
            key = keys.shard_key(stream, shard)
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

    @reachable
    def checkpoint_get(self, stream: str, consumer: str, shard: int) -> int:
        return int(self._redis.hget(keys.checkpoints(stream), keys.checkpoint_field(consumer, shard)) or 0)

    @reachable
    def checkpoint_set(self, stream: str, consumer: str, shard: int, seq: int) -> None:
        checks.count("seq", seq)
        self._redis.hset(keys.checkpoints(stream), keys.checkpoint_field(consumer, shard), seq)
