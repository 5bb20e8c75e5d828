"""The object stores in-process: S3's key and listing rules on both, and the directory
layout's own edges (long keys, pruning, stray files, conditional puts)."""

from __future__ import annotations

import os
import threading

import pytest

from squall.errors import ConditionFailed, ConfigError, NotFound
from squall.objects import DirectoryStore, S3Store, open_objects
from squall.objects.base import roll_up
from squall.services import Bucket

KEYS = [".", "..", "a", "a/b", "a/b/c", "a//b", "x/", "./x", "sub/.", ".tmp-x", "a\x00b", "s" * 300, "/leading",
        "A", "\U0001f600", "\uffff", "line\nbreak", "sp ace", "%2F", "q?x#y", "k" * 900]
LISTINGS = [("", ""), ("", "/"), ("a", "/"), ("a/", "/"), (".", "/"), ("a", "b"), ("", "a/"), ("x/", "/"),
            ("s", ""), ("zzz", "/")]


@pytest.fixture
def directory(tmp_path):
    return DirectoryStore(tmp_path / "objects")


@pytest.fixture
def s3(monkeypatch):
    """S3Store on moto's in-process S3, which lists as S3 does (EncodingType=url included)."""
    moto = pytest.importorskip("moto")
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with moto.mock_aws():
        store = S3Store("s3://squall-objects/prod")
        store.client.create_bucket(Bucket="squall-objects")
        yield store


@pytest.fixture(params=["directory", "s3"])
def store(request):
    return request.getfixturevalue(request.param)


def test_every_key_round_trips_with_its_metadata(store):
    for key in KEYS:
        store.put("bkt", key, key.encode(), "text/plain", {"origin": "test"})
    for key in KEYS:
        stored = store.get("bkt", key)
        assert (stored.data, stored.content_type, stored.metadata) == (key.encode(), "text/plain", {"origin": "test"})
    assert store.list("bkt").keys == sorted(KEYS, key=lambda k: k.encode())
    assert all(store.delete("bkt", key) for key in KEYS)
    assert not store.delete("bkt", "a")
    with pytest.raises(NotFound):
        store.get("bkt", "a")
    assert store.list("bkt").objects == []


def test_the_directory_store_lists_as_s3_does(directory, s3):
    for store in (directory, s3):
        for key in KEYS:
            store.put("bkt", key, key.encode() * 3)
    for prefix, delimiter in LISTINGS:
        ours, theirs = directory.list("bkt", prefix, delimiter), s3.list("bkt", prefix, delimiter)
        assert ours.common_prefixes == theirs.common_prefixes, (prefix, delimiter)
        assert [(o.key, o.size, o.etag) for o in ours.objects] == \
            [(o.key, o.size, o.etag) for o in theirs.objects], (prefix, delimiter)


@pytest.mark.parametrize("key", ["", "k" * 1025, "é" * 513, "lone\ud800", b"bytes", None, 7],
                         ids=["empty", "1025-bytes", "1026-bytes-of-2-byte-chars", "surrogate", "bytes", "none", "int"])
def test_keys_s3_rejects_are_config_errors_on_every_operation(store, key):
    for operation in (lambda: store.put("bkt", key, b"x"), lambda: store.get("bkt", key),
                      lambda: store.delete("bkt", key)):
        with pytest.raises(ConfigError):
            operation()


@pytest.mark.parametrize(("prefix", "delimiter"), [("\udfff", ""), ("", "\ud800"), (None, ""), ("", 1)])
def test_a_prefix_or_delimiter_that_is_not_utf8_text_is_a_config_error(store, prefix, delimiter):
    with pytest.raises(ConfigError):
        store.list("bkt", prefix, delimiter)


def test_s3s_limit_counts_the_stores_prefix(s3):
    s3.put("bkt", "k" * (1024 - len("prod/bkt/")), b"fits")
    with pytest.raises(ConfigError, match="too long for this store"):
        s3.put("bkt", "k" * (1025 - len("prod/bkt/")), b"does not")


@pytest.mark.parametrize(("keys", "prefix", "delimiter", "expected"), [
    (["a", "b/c", "b/d", "b//e"], "", "/", (["a"], ["b/"])),
    (["b/c", "b/d", "b//e"], "b/", "/", (["b/c", "b/d"], ["b//"])),
    (["x--y--z", "x--w", "x"], "x", "--", (["x"], ["x--"])),
    (["p/q", "p"], "", "", (["p", "p/q"], [])),
    (["é/1", "e/1", "\U0001f600/1"], "", "/", ([], ["e/", "é/", "\U0001f600/"])),
])
def test_roll_up_is_list_objects_v2s(keys, prefix, delimiter, expected):
    assert roll_up(keys, prefix, delimiter) == expected


def test_long_keys_split_into_directories_within_name_max_and_deletes_prune_them(directory):
    key = "é" * 512  # 1,024 bytes: 2,048 hex digits in 9 path components
    directory.put("bkt", key, b"long")
    path = directory.path("bkt", key)
    assert path.is_file() and max(len(part.encode()) for part in path.parts) <= 255
    assert len(path.relative_to(directory.base / "bkt").parts) == 9
    assert directory.delete("bkt", key)
    assert list((directory.base / "bkt").iterdir()) == []


def test_puts_and_deletes_sharing_a_long_keys_directories_race_safely(directory):
    stem = "d" * 200  # both keys share their first two path components
    errors: list[BaseException] = []

    def churn(key: str) -> None:
        try:
            for round_ in range(100):
                directory.put("bkt", key, str(round_).encode())
                assert directory.get("bkt", key).data == str(round_).encode()
                assert directory.delete("bkt", key)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(f"{stem}/{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert directory.list("bkt").objects == []


def test_files_the_store_did_not_write_are_not_objects(directory):
    directory.put("bkt", "real", b"x")
    bucket = directory.base / "bkt"
    for stray in ("README", ".DS_Store", "abc", "ff", "zz+"):  # not hex, odd, not UTF-8, a fake directory
        (bucket / stray).write_bytes(b"stray")
    (bucket / "6869").write_bytes(b"no header line")  # 'hi', but not written by a put
    assert directory.list("bkt").keys == ["real"]


def test_if_absent_never_replaces(directory):
    directory.put("bkt", "once", b"first", if_absent=True)
    with pytest.raises(ConditionFailed):
        directory.put("bkt", "once", b"second", if_absent=True)
    assert directory.get("bkt", "once").data == b"first"
    assert os.listdir(directory.base / ".tmp") == []


@pytest.mark.parametrize("url", ["ftp://x", "s3://", "file://elsewhere/x", "file://", "", "redis://h/0"])
def test_objects_urls_no_store_serves_are_config_errors(url):
    with pytest.raises(ConfigError, match="object store URL"):
        open_objects(url)


def test_opening_an_s3_store_makes_no_client(tmp_path):
    store = open_objects("s3://bucket/prefix?endpoint_url=http://127.0.0.1:9")
    assert isinstance(store, S3Store) and "client" not in vars(store)
    assert isinstance(open_objects(f"file://{tmp_path}/x"), DirectoryStore)


@pytest.mark.parametrize("name", ["UPPER", "ab", "a_b", "-ab", "", None])
def test_a_bucket_with_a_name_s3_rejects_fails_when_made(directory, name):
    with pytest.raises(ConfigError, match="invalid bucket name"):
        Bucket(directory, name)


def test_bucket_list_and_list_objects(directory):
    bucket = Bucket(directory, "photos")
    for key in ("2024/01/a.jpg", "2024/02/b.jpg", "2024/index", "2025/c.jpg"):
        bucket.put(key, "x")
    assert bucket.list("2024/") == ["2024/01/a.jpg", "2024/02/b.jpg", "2024/index"]
    level = bucket.list_objects("2024/", delimiter="/")
    assert (level.keys, level.common_prefixes) == (["2024/index"], ["2024/01/", "2024/02/"])
    assert level.objects[0].size == 1
