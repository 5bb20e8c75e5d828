"""Tables: versioned items, conditional writes, scans, and the change feed written atomically
with the change (the first named cross-primitive operation)."""

from __future__ import annotations

import json
import math

import pytest

from squall.backends.changefeed import change_stream
from squall.backends.protocol import shard_for
from squall.errors import ConditionFailed, ConfigError
from tests.conformance.support import run_threads


def feed_records(backend, table: str) -> list[dict]:
    """Every change-feed record of a table, shard by shard, in append order."""
    stream = change_stream(table)
    records = []
    for shard in range(backend.stream_shards(stream)):
        records += backend.stream_read(stream, shard, 0, limit=1000)
    return [json.loads(r.data) for r in sorted(records, key=lambda r: r.timestamp)]


def test_table_put_get_delete(backend):
    assert backend.table_get("t", "k") is None
    item = backend.table_put("t", "k", {"a": [1, 2], "s": "é"})
    assert (item.key, item.value, item.version) == ("k", {"a": [1, 2], "s": "é"}, 1)
    assert backend.table_get("t", "k") == item
    assert backend.table_put("t", "k", "v2").version == 2
    assert backend.table_put("t", "k", 3).version == 3
    assert backend.table_get("t", "k").value == 3
    assert backend.table_get("other", "k") is None
    old = backend.table_delete("t", "k")
    assert (old.value, old.version) == (3, 3)
    assert backend.table_get("t", "k") is None
    assert backend.table_delete("t", "k") is None


@pytest.mark.parametrize("value", [None, 0, 1.5, "s", [1, "two"], {"n": {"m": None}}, True])
def test_table_values_are_json(backend, value):
    backend.table_put("t", "k", value)
    assert backend.table_get("t", "k").value == value


def test_table_scan(backend):
    for key in ["a/2", "b/1", "a/1", "ab", "a/10", "a", "é/1", "é/2"]:
        backend.table_put("t", key, key.upper())
    backend.table_put("other", "a/3", "not here")

    def keys(**kwargs):
        return [item.key for item in backend.table_scan("t", **kwargs)]

    assert keys() == ["a", "a/1", "a/10", "a/2", "ab", "b/1", "é/1", "é/2"]
    assert keys(prefix="a/") == ["a/1", "a/10", "a/2"]
    assert keys(prefix="a/", start_after="a/10") == ["a/2"]
    assert keys(prefix="a/", limit=2) == ["a/1", "a/10"]
    assert keys(start_after="ab", limit=2) == ["b/1", "é/1"]
    assert keys(prefix="é") == ["é/1", "é/2"]
    assert keys(prefix="zzz") == []
    assert [(i.value, i.version) for i in backend.table_scan("t", prefix="b/")] == [("B/1", 1)]


def test_if_version(backend):
    backend.table_put("t", "k", "v1")
    assert backend.table_put("t", "k", "v2", if_version=1).version == 2
    with pytest.raises(ConditionFailed):
        backend.table_put("t", "k", "v3", if_version=1)
    assert backend.table_get("t", "k").value == "v2"
    assert backend.table_get("t", "k").version == 2
    with pytest.raises(ConditionFailed):
        backend.table_put("t", "missing", "v", if_version=1)
    assert backend.table_get("t", "missing") is None


def test_if_absent(backend):
    assert backend.table_put("t", "k", "first", if_absent=True).version == 1
    with pytest.raises(ConditionFailed):
        backend.table_put("t", "k", "second", if_absent=True)
    assert (backend.table_get("t", "k").value, backend.table_get("t", "k").version) == ("first", 1)


def test_delete_if_version(backend):
    backend.table_put("t", "k", "v1")
    backend.table_put("t", "k", "v2")
    with pytest.raises(ConditionFailed):
        backend.table_delete("t", "k", if_version=1)
    assert backend.table_get("t", "k").value == "v2"
    assert backend.table_delete("t", "k", if_version=2).value == "v2"
    assert backend.table_get("t", "k") is None


def test_change_feed(backend, clock):
    backend.table_put("t", "k", {"n": 1}, feed=True)
    clock.advance(1)
    backend.table_put("t", "k", {"n": 2}, feed=True)
    clock.advance(1)
    backend.table_delete("t", "k", feed=True)
    records = feed_records(backend, "t")
    assert [(r["eventName"], r["key"], r["oldImage"], r["newImage"], r["version"]) for r in records] == [
        ("INSERT", "k", None, {"n": 1}, 1),
        ("MODIFY", "k", {"n": 1}, {"n": 2}, 2),
        ("REMOVE", "k", {"n": 2}, None, 2),
    ]
    start = clock.now - 2
    assert [r["timestamp"] for r in records] == [start, start + 1, start + 2]
    stream = change_stream("t")
    shard = shard_for("k", backend.stream_shards(stream))
    assert [r.partition_key for r in backend.stream_read(stream, shard, 0)] == ["k", "k", "k"]


def test_change_feed_orders_records_per_key(backend):
    for round_ in range(3):
        for key in ("a", "b", "c", "d"):
            backend.table_put("t", key, round_, feed=True)
    stream = change_stream("t")
    for key in ("a", "b", "c", "d"):
        shard = shard_for(key, backend.stream_shards(stream))
        records = backend.stream_read(stream, shard, 0)
        values = [json.loads(r.data)["newImage"] for r in records if r.partition_key == key]
        assert values == [0, 1, 2]


def test_no_feed_record_without_feed_or_when_condition_fails(backend):
    backend.table_put("t", "quiet", 1)
    backend.table_delete("t", "quiet")
    backend.table_put("t", "k", 1, feed=True)
    with pytest.raises(ConditionFailed):
        backend.table_put("t", "k", 2, if_absent=True, feed=True)
    with pytest.raises(ConditionFailed):
        backend.table_put("t", "k", 2, if_version=7, feed=True)
    with pytest.raises(ConditionFailed):
        backend.table_delete("t", "k", if_version=7, feed=True)
    backend.table_delete("t", "never-there", feed=True)
    assert [(r["eventName"], r["key"]) for r in feed_records(backend, "t")] == [("INSERT", "k")]


# ---- the cases where the backends used to disagree --------------------------------------


def test_if_version_zero_is_never_met(backend):
    """Redis used to treat version 0 as "absent" and write; an absent item has no version."""
    with pytest.raises(ConditionFailed) as error:
        backend.table_put("t", "missing", "v", if_version=0)
    assert str(error.value) == "table 't' key 'missing': expected version 0, found no item"
    assert backend.table_get("t", "missing") is None
    backend.table_put("t", "k", "v")
    with pytest.raises(ConditionFailed):
        backend.table_put("t", "k", "w", if_version=0)
    with pytest.raises(ConditionFailed):
        backend.table_delete("t", "k", if_version=0)
    assert backend.table_get("t", "k").value == "v"


def test_condition_failures_have_one_text(backend):
    backend.table_put("t", "k", "v")
    failures = [
        (dict(key="k", if_absent=True), "table 't' key 'k': expected no item, found version 1"),
        (dict(key="k", if_version=3), "table 't' key 'k': expected version 3, found version 1"),
        (dict(key="x", if_version=1), "table 't' key 'x': expected version 1, found no item"),
    ]
    for condition, text in failures:
        with pytest.raises(ConditionFailed) as error:
            backend.table_put("t", value=1, **condition)
        assert str(error.value) == text
        if "if_version" in condition:
            with pytest.raises(ConditionFailed) as error:
                backend.table_delete("t", condition["key"], if_version=condition["if_version"])
            assert str(error.value) == text


@pytest.mark.parametrize("call, text", [
    (lambda b: b.table_put("t", "k", 1, if_version=-1), "if_version must be an integer >= 0, got -1"),
    (lambda b: b.table_put("t", "k", 1, if_version=True), "if_version must be an integer >= 0, got True"),
    (lambda b: b.table_put("t", "k", 1, if_version=1, if_absent=True),
     "if_absent and if_version cannot be combined: an absent item has no version"),
    (lambda b: b.table_delete("t", "k", if_version=-2), "if_version must be an integer >= 0, got -2"),
    (lambda b: b.table_scan("t", limit=-1), "limit must be an integer >= 0, got -1"),
    (lambda b: b.table_put("t", "k", {1, 2}),
     "value of table 't' key 'k' must be JSON-serialisable: Object of type set is not JSON serializable"),
    (lambda b: b.table_put("t", "k", math.nan),
     "value of table 't' key 'k' must be JSON-serialisable: Out of range float values are not JSON compliant"),
])
def test_bad_arguments_fail_alike_and_change_nothing(backend, call, text):
    """A negative scan limit used to mean "all" on SQLite and "none" on Redis."""
    backend.table_put("t", "k", "v", feed=True)
    with pytest.raises(ConfigError) as error:
        call(backend)
    assert str(error.value) == text
    assert (backend.table_get("t", "k").value, backend.table_get("t", "k").version) == ("v", 1)
    assert len(feed_records(backend, "t")) == 1


def test_scan_limits_and_bounds(backend):
    for key in ("a", "b/1", "b/2", "b/3", "c"):
        backend.table_put("t", key, key)
    assert backend.table_scan("t", limit=0) == []
    assert [i.key for i in backend.table_scan("t", prefix="b/", limit=2)] == ["b/1", "b/2"]
    assert [i.key for i in backend.table_scan("t", prefix="b/", start_after="b/2")] == ["b/3"]
    assert [i.key for i in backend.table_scan("t", prefix="b/", start_after="a")] == ["b/1", "b/2", "b/3"]
    assert backend.table_scan("t", prefix="b/", start_after="b/9") == []
    assert [i.key for i in backend.table_scan("t", start_after="b/3")] == ["c"]
    assert backend.table_scan("missing") == []


def test_delete_of_a_missing_item(backend):
    assert backend.table_delete("t", "never") is None
    with pytest.raises(ConditionFailed):
        backend.table_delete("t", "never", if_version=1)


def test_tables_are_separate(backend):
    backend.table_put("a", "k", 1)
    assert backend.table_get("b", "k") is None
    assert backend.table_scan("b") == []
    assert backend.table_delete("b", "k") is None
    assert backend.table_get("a", "k").value == 1


def test_feed_follows_a_stream_created_with_more_shards(backend):
    stream = change_stream("t")
    assert backend.stream_create(stream, 4) == 4
    for key in ("a", "b", "c", "d", "e"):
        backend.table_put("t", key, 1, feed=True)
    for key in ("a", "b", "c", "d", "e"):
        records = backend.stream_read(stream, shard_for(key, 4), 0)
        assert [r.partition_key for r in records].count(key) == 1


# ---- several backend objects, threads and processes ------------------------------------


def test_two_backends_share_tables(backend, other):
    other.table_put("t", "k", "v")
    assert backend.table_put("t", "k", "w", if_version=1).version == 2
    assert other.table_get("t", "k").value == "w"


def test_concurrent_conditional_writers_lose_no_update(backend, other):
    """Read-modify-write with if_version from two backend objects and four threads: every
    increment lands exactly once, and the change feed records each one."""
    backend.table_put("t", "counter", 0, feed=True)

    def increment(i: int) -> int:
        b, done, conflicts = (backend, other)[i % 2], 0, 0
        while done < 25:
            item = b.table_get("t", "counter")
            try:
                b.table_put("t", "counter", item.value + 1, if_version=item.version, feed=True)
                done += 1
            except ConditionFailed:
                conflicts += 1
        return conflicts

    run_threads(increment, 4)
    item = backend.table_get("t", "counter")
    assert (item.value, item.version) == (100, 101)
    assert [r["newImage"] for r in feed_records(backend, "t")] == list(range(101))


def test_concurrent_if_absent_has_one_winner(backend, other):
    def create(i: int) -> bool:
        try:
            (backend, other)[i % 2].table_put("t", "once", i, if_absent=True)
            return True
        except ConditionFailed:
            return False

    assert run_threads(create, 4).count(True) == 1
    assert backend.table_get("t", "once").version == 1
