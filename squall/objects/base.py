"""What every object store shares: S3's naming rules, the object and listing records, the
store interface, and the one implementation of ListObjectsV2's prefix/delimiter roll-up."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field

from squall.errors import ConfigError

BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
#: S3: a key is 1 to 1,024 bytes of UTF-8; any character is allowed.
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


@dataclass(frozen=True)
class Listing:
    """A ListObjectsV2 answer: the objects (without data) under the prefix, in S3's order
    (UTF-8 byte order), and, with a delimiter, the common prefixes the others roll up into."""

    objects: list[StoredObject]
    common_prefixes: list[str] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        return [o.key for o in self.objects]


def check_bucket(bucket: str) -> str:
    """S3's rule: 3-63 characters of a-z, 0-9, '.' and '-', starting and ending alphanumeric."""
    if not isinstance(bucket, str) or not BUCKET_NAME.match(bucket):
        raise ConfigError(f"invalid bucket name {bucket!r}: 3-63 characters of a-z, 0-9, '.' and '-'")
    return bucket


def check_key(key: str) -> bytes:
    """S3's rule, and only it: 1 to 1,024 bytes of valid UTF-8 ('.', '..', '//', NUL and a
    trailing '/' are ordinary keys). Returns the key's UTF-8 bytes."""
    if not isinstance(key, str):
        raise ConfigError(f"invalid object key {_shown(key)}: must be a string, not {type(key).__name__}")
    raw = _utf8(key, "object key")
    if not 1 <= len(raw) <= MAX_KEY_BYTES:
        raise ConfigError(f"invalid object key {_shown(key)}: must be 1 to {MAX_KEY_BYTES} bytes of UTF-8, "
                          f"not {len(raw)}")
    return raw


def check_listing(prefix: str, delimiter: str) -> None:
    """A list's prefix and delimiter are strings of valid UTF-8 (either may be empty)."""
    for what, value in (("prefix", prefix), ("delimiter", delimiter)):
        if not isinstance(value, str):
            raise ConfigError(f"invalid list {what} {_shown(value)}: must be a string")
        _utf8(value, f"list {what}")


def roll_up(keys: Iterable[str], prefix: str, delimiter: str) -> tuple[list[str], list[str]]:
    """ListObjectsV2's roll-up of `keys` (all starting with `prefix`): with a delimiter, a key
    whose rest after the prefix contains it gives way to its common prefix (the prefix and the
    rest up to and including the first delimiter), listed once. Returns (keys, common
    prefixes), each sorted: Python orders strings by code point, which is UTF-8 byte order."""
    kept: list[str] = []
    prefixes: set[str] = set()
    for key in keys:
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        if cut < 0:
            kept.append(key)
        else:
            prefixes.add(key[:cut + len(delimiter)])
    return sorted(kept), sorted(prefixes)


class ObjectStore(ABC):
    url: str

    def preload(self) -> None:  # noqa: B027 - most stores import nothing heavy
        """Import what using the store needs: the zygote calls it before forking, so every
        instance shares the modules instead of importing them on its (slow, CPU-capped)
        first call."""

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
    def list(self, bucket: str, prefix: str = "", delimiter: str = "") -> Listing:
        """ListObjectsV2: every object whose key starts with `prefix` (all pages), rolled up
        at `delimiter` into common prefixes when one is given."""


def _utf8(value: str, what: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(f"invalid {what} {_shown(value)}: not valid UTF-8 ({exc.reason} at "
                          f"position {exc.start})") from None


def _shown(value: object) -> str:
    """A repr short enough for a one-line error, even for a 1,000-character key."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}...{text[-10:]} ({len(str(value))} characters)"
