"""Streams: sharded append-only logs, reads after a seq, retention, checkpoints."""

from __future__ import annotations

import pytest

from squall.backends.checks import MAX_SHARDS
from squall.backends.protocol import shard_for
from squall.errors import ConfigError
from tests.conformance.support import run_threads


def test_stream_create_and_shards(backend):
    assert backend.stream_shards("s") == 0
    assert backend.stream_create("s", 4) == 4
    assert backend.stream_create("s", 8) == 4  # exists: unchanged
    assert backend.stream_shards("s") == 4
    shard, seq = backend.stream_append("auto", "any-key", "d")  # created with one shard
    assert shard == 0 and seq > 0
    assert backend.stream_shards("auto") == 1


def test_stream_names_lists_every_stream_once(backend):
    assert backend.stream_names() == []
    backend.stream_create("b", 2)
    backend.stream_append("a", "k", "d")
    backend.stream_append("a", "k", "e")
    backend.table_put("t", "k", 1, feed=True)  # a change feed is a stream too
    assert backend.stream_names() == sorted(["a", "b", "table-changes.t"])
    backend.stream_trim("a", backend.clock() + 1)  # trimmed empty, still a stream
    assert "a" in backend.stream_names()


def test_stream_per_partition_order_across_many_keys(backend, clock):
    backend.stream_create("s", 4)
    keys = [f"key-{i}" for i in range(40)]
    appended = {}
    for n in range(5):
        for key in keys:
            shard, seq = backend.stream_append("s", key, f"{key}:{n}")
            assert shard == shard_for(key, 4)
            appended[(shard, seq)] = f"{key}:{n}"
            clock.advance(0.001)
    assert len(appended) == 200
    seen: dict[str, list[int]] = {}
    for shard in range(4):
        records = backend.stream_read("s", shard, 0, limit=1000)
        seqs = [r.seq for r in records]
        assert seqs == sorted(set(seqs)) and seqs[0] > 0
        for r in records:
            assert (r.stream, r.shard) == ("s", shard)
            assert appended[(shard, r.seq)] == r.data
            key, n = r.data.split(":")
            assert r.partition_key == key
            seen.setdefault(key, []).append(int(n))
    assert seen == {key: [0, 1, 2, 3, 4] for key in keys}


def test_stream_read_after_seq_with_limit(backend, clock):
    seqs = [backend.stream_append("s", "p", f"d{i}")[1] for i in range(10)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 10
    page = backend.stream_read("s", 0, 0, limit=4)
    assert [r.data for r in page] == ["d0", "d1", "d2", "d3"]
    assert page[0].timestamp == clock.now
    page = backend.stream_read("s", 0, page[-1].seq, limit=4)
    assert [r.data for r in page] == ["d4", "d5", "d6", "d7"]
    assert [r.data for r in backend.stream_read("s", 0, page[-1].seq)] == ["d8", "d9"]
    assert backend.stream_read("s", 0, seqs[-1]) == []
    assert backend.stream_read("missing", 0, 0) == []


def test_stream_trim(backend, clock):
    start = clock.now
    for i in range(3):
        backend.stream_append("s", "p", f"old{i}")
    clock.advance(10)
    last_old = backend.stream_append("s", "p", "new0")[1] - 1
    backend.stream_append("s", "p", "new1")
    assert backend.stream_trim("s", start + 5) == 3
    assert [r.data for r in backend.stream_read("s", 0, 0)] == ["new0", "new1"]
    assert backend.stream_trim("s", start + 5) == 0
    clock.advance(10)
    assert backend.stream_trim("s", clock.now) == 2
    # sequence numbers keep increasing after the shard was emptied
    _, seq = backend.stream_append("s", "p", "after")
    assert seq > last_old + 2


def test_checkpoints(backend):
    assert backend.checkpoint_get("s", "c1", 0) == 0
    backend.checkpoint_set("s", "c1", 0, 5)
    backend.checkpoint_set("s", "c1", 1, 7)
    backend.checkpoint_set("s", "c2", 0, 9)
    assert backend.checkpoint_get("s", "c1", 0) == 5
    assert backend.checkpoint_get("s", "c1", 1) == 7
    assert backend.checkpoint_get("s", "c2", 0) == 9
    assert backend.checkpoint_get("other", "c1", 0) == 0
    backend.checkpoint_set("s", "c1", 0, 12)
    assert backend.checkpoint_get("s", "c1", 0) == 12


# ---- the cases where the backends used to disagree --------------------------------------


@pytest.mark.parametrize("shards", [0, -1, MAX_SHARDS + 1, 1.5, True])
def test_stream_create_with_a_bad_shard_count_stores_nothing(backend, shards):
    """Redis used to store a zero-shard stream, after which every append spun forever."""
    with pytest.raises(ConfigError) as error:
        backend.stream_create("s", shards)
    assert str(error.value) == f"stream 's': shard count must be an integer from 1 to {MAX_SHARDS}, got {shards!r}"
    assert backend.stream_shards("s") == 0
    assert backend.stream_append("s", "p", "d") == (0, 1)  # created with one shard, as if never asked
    assert backend.stream_shards("s") == 1


def test_stream_create_with_the_most_shards(backend):
    assert backend.stream_create("s", MAX_SHARDS) == MAX_SHARDS
    shard, _ = backend.stream_append("s", "key", "d")
    assert shard == shard_for("key", MAX_SHARDS)


def test_stream_read_limits(backend):
    """A negative limit used to mean "all" on SQLite and "none" on Redis."""
    backend.stream_append("s", "p", "d")
    assert backend.stream_read("s", 0, 0, limit=0) == []
    with pytest.raises(ConfigError, match=r"^limit must be an integer >= 0, got -1$"):
        backend.stream_read("s", 0, 0, limit=-1)


def test_stream_read_of_what_does_not_exist(backend):
    backend.stream_create("s", 2)
    backend.stream_append("s", "p", "d")
    assert backend.stream_read("s", 5, 0) == []
    assert backend.stream_read("s", -1, 0) == []
    assert backend.stream_read("missing", 0, 0) == []
    assert [r.data for r in backend.stream_read("s", shard_for("p", 2), -10)] == ["d"]  # before the first seq


def test_trim_of_a_missing_stream(backend, clock):
    assert backend.stream_trim("missing", clock.now) == 0


def test_checkpoints_move_back_but_not_below_zero(backend):
    backend.checkpoint_set("s", "c", 0, 9)
    backend.checkpoint_set("s", "c", 0, 3)  # a replay
    assert backend.checkpoint_get("s", "c", 0) == 3
    backend.checkpoint_set("s", "c", 0, 0)
    assert backend.checkpoint_get("s", "c", 0) == 0
    with pytest.raises(ConfigError, match=r"^seq must be an integer >= 0, got -1$"):
        backend.checkpoint_set("s", "c", 0, -1)
    assert backend.checkpoint_get("s", "c", 0) == 0


def test_consumer_names_do_not_collide_with_shards(backend):
    backend.checkpoint_set("s", "a:1", 0, 5)
    backend.checkpoint_set("s", "a", 1, 7)
    assert (backend.checkpoint_get("s", "a:1", 0), backend.checkpoint_get("s", "a", 1)) == (5, 7)
    assert backend.checkpoint_get("s", "1", 0) == 0


# ---- several backend objects, threads and processes ------------------------------------


def test_two_backends_share_streams(backend, other):
    backend.stream_append("s", "p", "d")
    assert [r.data for r in other.stream_read("s", 0, 0)] == ["d"]
    other.checkpoint_set("s", "c", 0, 1)
    assert backend.checkpoint_get("s", "c", 0) == 1


def test_concurrent_appends_get_distinct_increasing_seqs(backend, other):
    backend.stream_create("s", 2)

    def append(i: int) -> list[tuple[int, int]]:
        b = (backend, other)[i % 2]
        return [b.stream_append("s", f"key-{n % 5}", f"{i}-{n}") for n in range(40)]

    appended = [position for mine in run_threads(append, 4) for position in mine]
    assert len(set(appended)) == 160
    for shard in range(2):
        seqs = [r.seq for r in backend.stream_read("s", shard, 0, limit=1000)]
        assert seqs == list(range(1, len(seqs) + 1))  # no gap, no repeat


def test_shard_count_is_fixed_by_the_first_creator(backend, other):
    assert other.stream_append("s", "k", "d")[0] == 0  # created with one shard
    assert backend.stream_create("s", 4) == 1
    assert backend.stream_shards("s") == other.stream_shards("s") == 1
