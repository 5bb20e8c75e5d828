"""Reading a directory store written before layout v2 (up to release 5b9d388).

That release kept an object at `ROOT/<bucket>/<key>` and its metadata at
`ROOT/.meta/<bucket>/<key>.json`. Opening such a root moves every object into v2, once,
under a lock, so nodes opening the store together do not race. Each object is written with
`if_absent`, then its old files are removed: a crash part-way leaves it in one layout or in
both (and the next open finishes), and a put made meanwhile through v2 is never overwritten.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from squall.errors import ConditionFailed, ConfigError
from squall.objects.base import BUCKET_NAME

if TYPE_CHECKING:
    from squall.objects.directory import DirectoryStore

log = logging.getLogger("squall.objects")
LEGACY_TEMP = ".tmp-"  # that release's temporary files (a key could start so too, with metadata)


def migrate_legacy(store: DirectoryStore) -> int:
    """Move the old layout's objects under `store.root` into `store`; returns how many."""
    meta_root = store.root / ".meta"
    if not meta_root.exists() and not _legacy_buckets(store.root):
        return 0
    moved = 0
    with _locked(store.base / ".migrate.lock"):
        for bucket_path in _legacy_buckets(store.root):
            bucket = bucket_path.name
            for key, path in _legacy_objects(bucket_path):
                moved += _move(store, bucket, key, path, meta_root / bucket / f"{key}.json")
            _remove_empty_tree(bucket_path)
        shutil.rmtree(meta_root, ignore_errors=True)
    if moved:
        log.info("object store %s: moved %d objects of the old layout into %s", store.url, moved, store.base)
    return moved


def _legacy_buckets(root: Path) -> list[Path]:
    """The old layout's buckets that remain (v2 keeps nothing there that a bucket name matches)."""
    with os.scandir(root) as entries:
        return [Path(e.path) for e in entries if BUCKET_NAME.match(e.name)]


def _legacy_objects(bucket_path: Path) -> Iterator[tuple[str, Path]]:
    """(key, data file) of a bucket of the old layout. `put(".")` there replaced the bucket
    directory with the object's file, so a bucket that is a file is the object '.'."""
    if bucket_path.is_file():
        yield ".", bucket_path
        return
    for path in sorted(bucket_path.rglob("*")):
        if path.is_file():
            yield path.relative_to(bucket_path).as_posix(), path


def _move(store: DirectoryStore, bucket: str, key: str, path: Path, meta_path: Path) -> int:
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        if path.name.startswith(LEGACY_TEMP):  # a put that release never finished
            path.unlink(missing_ok=True)
            return 0
        meta = {"content_type": "application/octet-stream", "metadata": {}}  # a file copied in by hand
    try:
        store.put(bucket, key, path.read_bytes(), meta["content_type"], meta["metadata"], if_absent=True)
        moved = 1
    except ConditionFailed:  # put again since, through v2: the newer object stays
        moved = 0
    except ConfigError as exc:  # a name no S3 key can be (not UTF-8): leave it for the operator
        log.warning("object store %s: not moving %s: %s", store.url, path, exc)
        return 0
    path.unlink(missing_ok=True)
    meta_path.unlink(missing_ok=True)
    return moved


def _remove_empty_tree(top: Path) -> None:
    for directory, _, _ in os.walk(top, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(directory)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
