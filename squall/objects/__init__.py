"""Object storage: buckets of blobs, kept outside the backend.

Objects can be large, so they live in a store of their own, chosen by URL:

- a directory (`/shared/squall-objects` or `file:///...`): the embedded default
  (`.squall/objects` next to the state), or a shared filesystem path for many nodes
  (`squall.objects.directory` says how keys become files);
- an S3-compatible endpoint (`s3://bucket/prefix`), through boto3. The endpoint comes from
  `?endpoint_url=` in the URL or boto3's own configuration (AWS_ENDPOINT_URL, profiles).

Both take any key S3 takes and list as ListObjectsV2 does (`squall.objects.base`).
"""

from __future__ import annotations

from urllib.parse import unquote, urlparse

from squall.errors import ConfigError
from squall.objects.base import MAX_KEY_BYTES, Listing, ObjectStore, StoredObject, check_bucket, check_key
from squall.objects.directory import DirectoryStore
from squall.objects.s3 import S3Store

__all__ = ["MAX_KEY_BYTES", "DirectoryStore", "Listing", "ObjectStore", "S3Store", "StoredObject", "check_bucket",
           "check_key", "open_objects"]


def open_objects(url: str) -> ObjectStore:
    """A store for `url`: `s3://bucket/prefix`, `file:///path` or a plain path. Everything
    about the URL is checked here (a scheme no store serves, an s3:// URL without a bucket
    or without boto3, a directory that cannot be made) as one-line ConfigErrors, so the
    CLI, which opens the store at start-up, fails there rather than a function at its
    first object call."""
    if url.startswith("s3://"):
        return S3Store(url)
    if url.startswith("file://"):
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost") or not parsed.path:
            raise ConfigError(f"invalid object store URL {url!r}: expected file:///absolute/path")
        return DirectoryStore(unquote(parsed.path))
    if "://" in url or not url:
        raise ConfigError(f"unknown object store URL {url!r}: expected a path, file:///path or s3://bucket/prefix")
    return DirectoryStore(url)
