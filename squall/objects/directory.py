"""The directory store: objects as files under a root, on a local or shared filesystem.

S3 keys are not paths ('.', 'a//b', 'x/' and 'a' beside 'a/b' are all distinct keys, NUL is
allowed, a segment may be 1,024 bytes), so a key never becomes a path. Each object is one
file named by the hex of its key's UTF-8 bytes, which every filesystem can hold whatever the
key, case-insensitive ones too, and which sorts and prefix-matches as the key's bytes do:

    ROOT/v2/.tmp/              puts in progress (same filesystem, so the rename is atomic)
    ROOT/v2/<bucket>/<hex>     one object: a JSON header line (etag, content type, metadata),
                               then the data
    ROOT/v2/<bucket>/<h>+/...  keys over 125 bytes: each 250 hex digits of a longer name are a
                               directory ('+' marks it), so no name passes NAME_MAX (255)

A put writes a temporary file and renames it over the object, so readers and a crash at any
point see the old object or the new one, never a mix; data and metadata travel together.
`v2` cannot be a bucket name (S3 needs 3 characters), so the release before it, which kept
`ROOT/<bucket>/<key>`, is read by moving its objects in (`squall.objects.legacy`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from squall.errors import ConditionFailed, ConfigError, NotFound
from squall.objects.base import Listing, ObjectStore, StoredObject, check_bucket, check_key, check_listing, roll_up
from squall.objects.legacy import migrate_legacy

LAYOUT = "v2"
#: hex digits per path component: 125 key bytes, well inside NAME_MAX (255 bytes)
CHUNK = 250
MORE = "+"
#: a temporary file this old belongs to a put that died (no put takes an hour)
STALE_TEMP_SECONDS = 3600
HEX_DIGITS = frozenset("0123456789abcdef")
HEADER_READ = 4096


class DirectoryStore(ObjectStore):
    """Objects under `root/v2/<bucket>/`, one file each, named by the hex of the key."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.url = str(self.root)
        self.base = self.root / LAYOUT
        self._tmp = self.base / ".tmp"
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"object store directory {self.url!r} cannot be used: {exc.strerror or exc}") from None
        migrate_legacy(self)
        self._sweep_temps()

    def path(self, bucket: str, key: str) -> Path:
        """Where the object lives (it need not exist)."""
        hexed = check_key(key).hex()
        parts = [hexed[i:i + CHUNK] for i in range(0, len(hexed), CHUNK)]
        return self.base.joinpath(check_bucket(bucket), *(p + MORE for p in parts[:-1]), parts[-1])

    def put(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream",
            metadata: dict[str, str] | None = None, *, if_absent: bool = False) -> StoredObject:
        """Store (replace) an object; `if_absent` raises ConditionFailed if there is one already."""
        path = self.path(bucket, key)
        stored = StoredObject(bucket, key, len(data), hashlib.md5(data).hexdigest(), content_type,
                              dict(metadata or {}))
        header = json.dumps({"etag": stored.etag, "content_type": content_type, "metadata": stored.metadata})
        fd, temp = tempfile.mkstemp(dir=self._tmp)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(header.encode() + b"\n")
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            self._install(temp, path, if_absent)
        except FileExistsError:
            raise ConditionFailed(f"object {key!r} already exists in bucket {bucket!r}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        return stored

    def get(self, bucket: str, key: str) -> StoredObject:
        try:
            with open(self.path(bucket, key), "rb") as handle:
                header = json.loads(handle.readline())
                data = handle.read()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"no object {key!r} in bucket {bucket!r}") from None
        return StoredObject(bucket, key, len(data), header["etag"], header["content_type"], header["metadata"],
                            data)

    def delete(self, bucket: str, key: str) -> bool:
        path = self.path(bucket, key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        bucket_dir = self.base / bucket
        for parent in path.parents:  # the continuation directories a long key leaves empty
            if parent == bucket_dir:
                break
            try:
                parent.rmdir()
            except OSError:
                break
        return True

    def list(self, bucket: str, prefix: str = "", delimiter: str = "") -> Listing:
        check_listing(prefix, delimiter)
        found = dict(_walk(self.base / check_bucket(bucket), "", prefix.encode().hex()))
        keys, common_prefixes = roll_up(found, prefix, delimiter)
        described = (self._summary(bucket, key, found[key]) for key in keys)
        return Listing([o for o in described if o is not None], common_prefixes)

    def _install(self, temp: str, path: Path, if_absent: bool) -> None:
        """Move the finished temporary file into place, atomically (FileExistsError if
        `if_absent` and there is an object). Deletes remove emptied continuation directories,
        so one may vanish between our mkdir and the rename: make it again."""
        for _ in range(100):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except FileExistsError:  # made by another put and removed by a delete meanwhile
                continue
            try:
                if if_absent:
                    os.link(temp, path)  # fails, rather than replaces, if the object exists
                else:
                    os.replace(temp, path)
            except FileNotFoundError:
                continue
            _fsync_directory(path.parent)
            return
        raise OSError(f"could not create {path.parent}: it keeps being removed")

    @staticmethod
    def _summary(bucket: str, key: str, path: str) -> StoredObject | None:
        """The listing entry (size and etag, as S3 lists them); None if deleted meanwhile.
        One read usually holds the header: a listing of thousands opens each file once."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            head, size = os.pread(fd, HEADER_READ, 0), os.fstat(fd).st_size
            end = head.find(b"\n")
            while end < 0:  # a header longer than one read (large metadata)
                more = os.pread(fd, HEADER_READ, len(head))
                if not more:
                    return None  # no header: not a file this store wrote
                head += more
                end = head.find(b"\n")
        finally:
            os.close(fd)
        return StoredObject(bucket, key, size - end - 1, json.loads(head[:end])["etag"])

    def _sweep_temps(self) -> None:
        """Remove what puts killed mid-write left behind (never visible as objects)."""
        cutoff = time.time() - STALE_TEMP_SECONDS
        with os.scandir(self._tmp) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)


def _walk(directory: Path | str, above: str, want: str) -> Iterator[tuple[str, str]]:
    """(key, file path) of every object below `directory` whose hex starts with `want`,
    descending only into continuation directories that can hold such keys."""
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        name = entry.name
        if name.endswith(MORE) and len(name) == CHUNK + 1 and _is_hex(name[:-1]):
            hexed = above + name[:-1]
            if hexed.startswith(want) or want.startswith(hexed):
                yield from _walk(entry.path, hexed, want)
        elif _is_hex(name) and (above + name).startswith(want):
            key = _key_of(above + name)
            if key is not None:  # anything else is a stray file, not an object
                yield key, entry.path


def _is_hex(name: str) -> bool:
    return len(name) % 2 == 0 and bool(name) and HEX_DIGITS.issuperset(name)


def _key_of(hexed: str) -> str | None:
    try:
        return bytes.fromhex(hexed).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable: an acknowledged put survives a power cut."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except FileNotFoundError:  # the object was deleted, and its directory with it
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
