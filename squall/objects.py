"""Object storage: buckets of blobs, kept outside the backend.

Objects can be large, so they live in a store of their own, chosen by URL:

- a directory (`/shared/squall-objects` or `file:///...`): the embedded default
  (`.squall/objects` next to the state), or a shared filesystem path for many nodes;
- an S3-compatible endpoint (`s3://bucket/prefix`), through boto3. The endpoint comes from
  `?endpoint_url=` in the URL or boto3's own configuration (AWS_ENDPOINT_URL, profiles).

A Squall bucket is a folder (directory store) or a key prefix (S3 store).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from squall.errors import ConfigError, NotFound

BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
MAX_KEY_BYTES = 1024


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    key: str
    size: int
    etag: str
    content_type: str = "application/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)
    data: bytes | None = None


def check_object(bucket: str, key: str) -> None:
    """S3's rules: bucket names 3-63 lower-case characters; keys 1-1024 bytes, no '..' escapes."""
    if not isinstance(bucket, str) or not BUCKET_NAME.match(bucket):
        raise ConfigError(f"invalid bucket name {bucket!r}: 3-63 characters of a-z, 0-9, '.' and '-'")
    if not isinstance(key, str) or not key or len(key.encode()) > MAX_KEY_BYTES:
        raise ConfigError(f"invalid object key {key!r}: must be 1 to {MAX_KEY_BYTES} bytes")
    if key.startswith("/") or ".." in key.split("/"):
        raise ConfigError(f"invalid object key {key!r}: no leading '/' and no '..' segments")


class ObjectStore(ABC):
    url: str

    @abstractmethod
    def put(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream",
            metadata: dict[str, str] | None = None) -> StoredObject:
        """Store (replace) an object; readers never see a partial one."""

    @abstractmethod
    def get(self, bucket: str, key: str) -> StoredObject:
        """The object with its data; NotFound if absent."""

    @abstractmethod
    def delete(self, bucket: str, key: str) -> bool:
        """Delete; False if there was nothing."""

    @abstractmethod
    def list(self, bucket: str, prefix: str = "") -> list[StoredObject]:
        """Objects (without data) whose key starts with prefix, in key order."""


class DirectoryStore(ObjectStore):
    """Files under `root/bucket/key`; metadata beside them under `root/.meta/`."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.url = str(self.root)

    def _paths(self, bucket: str, key: str) -> tuple[Path, Path]:
        check_object(bucket, key)
        return self.root / bucket / key, self.root / ".meta" / bucket / f"{key}.json"

    def put(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream",
            metadata: dict[str, str] | None = None) -> StoredObject:
        path, meta_path = self._paths(bucket, key)
        stored = StoredObject(bucket, key, len(data), hashlib.md5(data).hexdigest(), content_type,
                              dict(metadata or {}))
        _atomic_write(meta_path, json.dumps({"etag": stored.etag, "content_type": content_type,
                                             "metadata": stored.metadata}).encode())
        _atomic_write(path, data)
        return stored

    def get(self, bucket: str, key: str) -> StoredObject:
        path, meta_path = self._paths(bucket, key)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(f"no object {key!r} in bucket {bucket!r}") from None
        return self._describe(bucket, key, len(data), meta_path, data)

    def delete(self, bucket: str, key: str) -> bool:
        path, meta_path = self._paths(bucket, key)
        meta_path.unlink(missing_ok=True)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def list(self, bucket: str, prefix: str = "") -> list[StoredObject]:
        check_object(bucket, "x")
        base = self.root / bucket
        if not base.is_dir():
            return []
        found = []
        for path in base.rglob("*"):
            key = path.relative_to(base).as_posix()
            if path.is_file() and key.startswith(prefix) and not path.name.startswith(".tmp-"):
                found.append(self._describe(bucket, key, path.stat().st_size,
                                            self.root / ".meta" / bucket / f"{key}.json"))
        return sorted(found, key=lambda o: o.key)

    @staticmethod
    def _describe(bucket: str, key: str, size: int, meta_path: Path, data: bytes | None = None) -> StoredObject:
        try:
            meta = json.loads(meta_path.read_text())
        except (FileNotFoundError, ValueError):
            meta = {"etag": "", "content_type": "application/octet-stream", "metadata": {}}
        return StoredObject(bucket, key, size, meta["etag"], meta["content_type"], meta["metadata"], data)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temp, path)


class S3Store(ObjectStore):
    """An S3-compatible endpoint: Squall bucket `b`, key `k` -> s3://BUCKET/PREFIX/b/k."""

    def __init__(self, url: str):
        try:
            import boto3
        except ImportError:
            raise ConfigError("an s3:// object store needs boto3: pip install 'squall[s3]'") from None
        parsed = urlparse(url)
        if not parsed.netloc:
            raise ConfigError(f"invalid object store URL {url!r}: expected s3://bucket[/prefix]")
        self.url = url
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        options: dict[str, Any] = {}
        endpoint = parse_qs(parsed.query).get("endpoint_url")
        if endpoint:
            options["endpoint_url"] = endpoint[0]
        self.client = boto3.client("s3", **options)

    def _key(self, bucket: str, key: str) -> str:
        check_object(bucket, key)
        return "/".join(p for p in (self.prefix, bucket, key) if p)

    def put(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream",
            metadata: dict[str, str] | None = None) -> StoredObject:
        reply = self.client.put_object(Bucket=self.bucket, Key=self._key(bucket, key), Body=data,
                                       ContentType=content_type, Metadata=dict(metadata or {}))
        return StoredObject(bucket, key, len(data), reply["ETag"].strip('"'), content_type, dict(metadata or {}))

    def get(self, bucket: str, key: str) -> StoredObject:
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=self._key(bucket, key))
        except self.client.exceptions.NoSuchKey:
            raise NotFound(f"no object {key!r} in bucket {bucket!r}") from None
        data = reply["Body"].read()
        return StoredObject(bucket, key, len(data), reply["ETag"].strip('"'), reply.get("ContentType", ""),
                            reply.get("Metadata", {}), data)

    def delete(self, bucket: str, key: str) -> bool:
        full = self._key(bucket, key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=full)
        except self.client.exceptions.ClientError:
            return False
        self.client.delete_object(Bucket=self.bucket, Key=full)
        return True

    def list(self, bucket: str, prefix: str = "") -> list[StoredObject]:
        base = self._key(bucket, "x")[:-1]
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base + prefix):
            for entry in page.get("Contents", []):
                found.append(StoredObject(bucket, entry["Key"][len(base):], entry["Size"], entry["ETag"].strip('"')))
        return found


def open_objects(url: str) -> ObjectStore:
    """A store for `url`: `s3://bucket/prefix`, `file:///path` or a plain path."""
    if url.startswith("s3://"):
        return S3Store(url)
    if url.startswith("file://"):
        return DirectoryStore(urlparse(url).path)
    if "://" in url:
        raise ConfigError(f"unknown object store URL {url!r}: expected a path, file:///path or s3://bucket/prefix")
    return DirectoryStore(url)
