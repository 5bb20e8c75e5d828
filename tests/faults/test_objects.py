"""Object keys on a real node's directory store (issue 8, item 11; item 15's `--objects`).

Before: `put(".")` turned the bucket directory into a file for good, `a//b`, `x/`, `./x` and
`sub/.` aliased other keys, `list()` invented keys and hid `.tmp*` ones, NUL or a 300-byte
segment were a raw ValueError/OSError (500), and `--objects ftp://x` started a node whose
first object call failed. Each probe below goes over HTTP to `squall run`.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

import pytest

from squall.objects import DirectoryStore
from tests.support import NodeProcess, platform_tracebacks, squall, write_app

APP = """
    import json
    import os

    from squall import App
    from squall.errors import ConfigError, NotFound

    app = App("hostile-objects")


    def answer(status, value):
        return {"statusCode": status, "body": json.dumps(value)}


    @app.http("POST", "/objects")
    def objects(event, ctx):
        request = json.loads(event["body"])
        bucket = ctx.objects(request.get("bucket", "hostile"))
        key = request.get("key")
        try:
            if request["op"] == "put":
                return answer(200, bucket.put(key, request["data"]).etag)
            if request["op"] == "get":
                return answer(200, bucket.get(key).decode())
            if request["op"] == "head":
                head = bucket.head(key)
                return answer(200, [head.content_type, head.metadata, head.etag])
            if request["op"] == "delete":
                return answer(200, bucket.delete(key))
            listing = bucket.list_objects(request.get("prefix", ""), request.get("delimiter", ""))
            return answer(200, {"keys": listing.keys, "common_prefixes": listing.common_prefixes})
        except ConfigError as exc:
            return answer(400, {"error": type(exc).__name__, "message": str(exc)})
        except NotFound as exc:
            return answer(404, {"error": type(exc).__name__, "message": str(exc)})


    @app.http("POST", "/crash-mid-put")
    def crash_mid_put(event, ctx):
        os.fsync = lambda fd: os._exit(137)  # the instance dies with the new object written, not renamed
        ctx.objects("hostile").put("doc", "new")
"""

#: keys that S3 accepts and a path-mapped store mangled: each must be its own object
HOSTILE = [".", "..", "a", "a/b", "a//b", "x/", "./x", "sub/.", ".tmp-x", ".tmpfile", "a\x00b", "s" * 300,
           "/leading", "A", "é", "\U0001f600", "\uffff", "sp ace\n", "%2F", "k" * 1024, "é" * 512]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    directory = tmp_path_factory.mktemp("objects-node")
    app = write_app(directory, APP)
    with NodeProcess(app, extra=["--objects", str(directory / "objects")]) as running:
        running.objects_root = directory / "objects"
        yield running


def call(client, op: str, **fields) -> tuple[int, object]:
    """One bucket operation; the body is ASCII JSON, so a lone surrogate crosses as `\\ud800`."""
    reply = client.post("/objects", content=json.dumps({"op": op, **fields}))
    return reply.status_code, reply.json()


def test_every_key_s3_accepts_round_trips_and_lists_exactly_in_s3_order(node):
    with node.client(timeout=10) as client:
        for key in HOSTILE:
            assert call(client, "put", key=key, data=f"value of {key!r}")[0] == 200, key
        for key in HOSTILE:
            assert call(client, "get", key=key) == (200, f"value of {key!r}"), key
        status, listing = call(client, "list")
        assert status == 200
        assert listing == {"keys": sorted(HOSTILE, key=lambda k: k.encode()), "common_prefixes": []}
        for key in HOSTILE:
            assert call(client, "delete", key=key) == (200, True), key
        assert call(client, "list")[1] == {"keys": [], "common_prefixes": []}
        assert call(client, "put", key="after", data="the bucket still works")[0] == 200
        assert call(client, "delete", key="after") == (200, True)
    assert platform_tracebacks(node.log()) == 0


@pytest.mark.parametrize(("prefix", "delimiter", "keys", "common_prefixes"), [
    ("", "/", [".", "..", ".tmp-x", "a", "a\x00b"], ["./", "/", "a/", "sub/", "x/"]),
    ("a", "/", ["a", "a\x00b"], ["a/"]),
    ("a/", "/", ["a/b"], ["a//"]),
    ("x/", "/", ["x/"], []),
    ("a", "b", ["a"], ["a\x00b", "a//b", "a/b"]),
    ("", "a/", [".", "..", "./x", ".tmp-x", "/leading", "a", "a\x00b", "sub/.", "x/"], ["a/"]),
])
def test_prefix_and_delimiter_list_as_list_objects_v2(node, prefix, delimiter, keys, common_prefixes):
    stored = [".", "..", "a", "a/b", "a//b", "x/", "./x", "sub/.", ".tmp-x", "a\x00b", "/leading"]
    with node.client(timeout=10) as client:
        for key in stored:
            call(client, "put", bucket="folders", key=key, data=key)
        listing = call(client, "list", bucket="folders", prefix=prefix, delimiter=delimiter)
    assert listing == (200, {"keys": keys, "common_prefixes": common_prefixes})


@pytest.mark.parametrize(("key", "reason"), [
    ("", "must be 1 to 1024 bytes"),
    ("k" * 1025, "not 1025"),
    ("é" * 513, "not 1026"),
    ("bad\ud800", "not valid UTF-8"),
])
def test_keys_s3_rejects_are_a_config_error_not_a_500(node, key, reason):
    with node.client(timeout=10) as client:
        for op in ("put", "get", "delete"):
            status, error = call(client, op, key=key, data="x")
            assert status == 400, (op, error)
            assert error["error"] == "ConfigError" and reason in error["message"]


def test_an_instance_killed_mid_put_leaves_the_old_object_and_no_stray_key(node):
    with node.client(timeout=10) as client:
        assert call(client, "put", key="doc", data="old")[0] == 200
        assert client.post("/crash-mid-put").status_code >= 500
        assert call(client, "get", key="doc") == (200, "old")
        assert call(client, "list", prefix="doc") == (200, {"keys": ["doc"], "common_prefixes": []})
    temps = list((node.objects_root / "v2" / ".tmp").iterdir())
    assert temps, "the killed put left its temporary file (and nothing else)"
    hour_ago = time.time() - 3700
    for temp in temps:
        os.utime(temp, (hour_ago, hour_ago))
    DirectoryStore(node.objects_root)  # the next open sweeps what dead puts left
    assert not any(temp.exists() for temp in temps)


def write_legacy(root: Path, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream",
                 metadata: dict[str, str] | None = None) -> None:
    """An object as release 5b9d388 stored it: data at ROOT/bucket/key, metadata beside it."""
    meta = root / ".meta" / bucket / f"{key}.json"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"etag": hashlib.md5(data).hexdigest(), "content_type": content_type,
                                "metadata": metadata or {}}))
    path = root / bucket / key
    if key == ".":  # that release's put(".") replaced the bucket directory with the object
        path = root / bucket
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_a_store_of_the_previous_release_is_moved_into_the_new_layout(tmp_path):
    root = tmp_path / "objects"
    write_legacy(root, "legacy", "report.csv", b"a,b\n", "text/csv", {"owner": "ada"})
    write_legacy(root, "legacy", "photos/2024/cat.jpg", b"\xff\xd8jpeg")
    write_legacy(root, "legacy", "photos/.tmp-kept", b"a key that looked like a temporary file")
    (root / "legacy" / "photos" / ".tmp-k2f9x1").write_bytes(b"half a put that never finished")
    write_legacy(root, "dotted", ".", b"the object that broke its bucket")
    app = write_app(tmp_path, APP)
    with NodeProcess(app, extra=["--objects", str(root)]) as node, node.client(timeout=10) as client:
        assert call(client, "list", bucket="legacy") == (200, {
            "keys": ["photos/.tmp-kept", "photos/2024/cat.jpg", "report.csv"], "common_prefixes": []})
        assert call(client, "head", bucket="legacy", key="report.csv") == (
            200, ["text/csv", {"owner": "ada"}, hashlib.md5(b"a,b\n").hexdigest()])
        assert call(client, "get", bucket="legacy", key="photos/.tmp-kept")[1] == \
            "a key that looked like a temporary file"
        assert call(client, "get", bucket="dotted", key=".") == (200, "the object that broke its bucket")
        assert call(client, "put", bucket="dotted", key="x", data="the bucket works again")[0] == 200
    assert sorted(p.name for p in root.iterdir()) == ["v2"], "the old layout's files are gone"
    assert "moved 4 objects of the old layout" in node.log()


def test_a_move_cut_short_finishes_at_the_next_open_and_keeps_what_was_put_since(tmp_path):
    root = tmp_path / "objects"
    DirectoryStore(root).put("legacy", "k0", b"put through v2 since")  # as if moved, then replaced
    for n in range(50):
        write_legacy(root, "legacy", f"k{n}", f"old {n}".encode())  # k0's old files were never removed
    stores: list[DirectoryStore] = []
    opens = [threading.Thread(target=lambda: stores.append(DirectoryStore(root))) for _ in range(4)]
    for thread in opens:  # four nodes starting together
        thread.start()
    for thread in opens:
        thread.join()
    assert len(stores) == 4
    assert stores[0].get("legacy", "k0").data == b"put through v2 since"
    assert [stores[0].get("legacy", f"k{n}").data for n in range(1, 50)] == [f"old {n}".encode() for n in range(1, 50)]
    assert len(stores[0].list("legacy").objects) == 50
    assert sorted(p.name for p in root.iterdir()) == ["v2"]


@pytest.mark.parametrize("url", ["ftp://x", "s3://", "file://elsewhere/objects"])
def test_an_objects_url_no_store_serves_fails_at_start_in_one_line(tmp_path, url):
    app = write_app(tmp_path, APP)
    started = time.monotonic()
    for command in (["run", str(app), "--port", "0", "--objects", url], ["dev", str(app), "--objects", url]):
        result = squall(*command, cwd=tmp_path, timeout=20)
        assert result.returncode == 1, result
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert "object store URL" in result.stderr and url in result.stderr
    result = squall("run", str(app), "--port", "0", cwd=tmp_path, env={"SQUALL_OBJECTS": url}, timeout=20)
    assert result.returncode == 1 and url in result.stderr
    assert time.monotonic() - started < 15
