"""The S3 store: Squall bucket `b`, key `k` -> s3://BUCKET/PREFIX/b/k on any S3-compatible endpoint."""

from __future__ import annotations

import importlib.util
from functools import cached_property
from typing import Any
from urllib.parse import parse_qs, urlparse

from squall.errors import ConfigError, NotFound
from squall.objects.base import (
    MAX_KEY_BYTES,
    Listing,
    ObjectStore,
    StoredObject,
    check_bucket,
    check_key,
    check_listing,
)


class S3Store(ObjectStore):
    """Checked when made; boto3 and its client are loaded on first use, so a node that only
    hands the URL to its instances never pays for them."""

    def __init__(self, url: str):
        if importlib.util.find_spec("boto3") is None:
            raise ConfigError("an s3:// object store needs boto3: pip install 'squall[s3]'")
        parsed = urlparse(url)
        if not parsed.netloc:
            raise ConfigError(f"invalid object store URL {url!r}: expected s3://bucket[/prefix]")
        self.url = url
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self._options: dict[str, Any] = {}
        endpoint = parse_qs(parsed.query).get("endpoint_url")
        if endpoint:
            self._options["endpoint_url"] = endpoint[0]

    def preload(self) -> None:
        import boto3  # noqa: F401 - imported for the instances forked after this

    @cached_property
    def client(self) -> Any:
        import boto3

        return boto3.client("s3", **self._options)

    def _base(self, bucket: str) -> str:
        """The S3 key prefix of a Squall bucket: `PREFIX/bucket/`."""
        return "/".join(p for p in (self.prefix, check_bucket(bucket)) if p) + "/"

    def _key(self, bucket: str, key: str) -> str:
        """The S3 key; S3's limit applies to it whole, so a long prefix leaves less for the key."""
        size = len(check_key(key))
        base = self._base(bucket)
        if len(base.encode()) + size > MAX_KEY_BYTES:
            raise ConfigError(f"object key of {size} bytes is too long for this store: with its prefix "
                              f"{base!r} it passes S3's {MAX_KEY_BYTES} bytes")
        return base + key

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

    def list(self, bucket: str, prefix: str = "", delimiter: str = "") -> Listing:
        check_listing(prefix, delimiter)
        base = self._base(bucket)
        options = {"Delimiter": delimiter} if delimiter else {}
        objects, prefixes = [], []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base + prefix,
                                                                         **options):
            for entry in page.get("Contents", []):
                objects.append(StoredObject(bucket, entry["Key"][len(base):], entry["Size"],
                                            entry["ETag"].strip('"')))
            prefixes += [entry["Prefix"][len(base):] for entry in page.get("CommonPrefixes", [])]
        return Listing(objects, prefixes)
