"""What one pattern value tests against one value of the event: the leaf matchers.

A leaf of an event is a JSON scalar: a string, a number, `true`, `false` or `null`
(`Leaf`). Each matcher answers for one leaf; a field matches when any of its matchers
matches any of the field's leaves (an array in the event offers each of its elements).

Numbers are compared as AWS compares them: not as floats but at a fixed precision
within a fixed range (`NumberModel`), EventBridge's 6 decimal places within +-5e9,
SNS's 5 within +-1e9. A number outside the range can still equal a pattern's number
literally (an account id), but never satisfies a numeric comparison.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from functools import lru_cache

Leaf = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class NumberModel:
    """The range and precision a service compares numbers at."""

    limit: float
    decimals: int
    #: 10 ** decimals
    scale: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", 10 ** self.decimals)

    def comparable(self, value: Leaf) -> int | None:
        """`value` as an integer count of the smallest step, or None if it is not a number
        in range (booleans are not numbers). Truncated, as AWS's fixed-point form is.
        Called for every number an index looks up: the parsed types are tried first."""
        kind = type(value)
        if kind is not int and kind is not float and (kind is bool or not isinstance(value, (int, float))):
            return None
        if not -self.limit <= value <= self.limit:  # type: ignore[operator]
            return None
        return int(value * self.scale)  # type: ignore[operator]


def is_number(value: Leaf) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class Exact:
    """A pattern literal: a string equals only that string, `true`/`false`/`null` only
    themselves, a number any number equal to it at the model's precision (or, out of the
    model's range, equal to it exactly: an account id)."""

    value: Leaf
    #: how numbers compare (None for a literal that is not a number)
    model: NumberModel | None = None

    def matches(self, value: Leaf) -> bool:
        expected = self.value
        if isinstance(expected, str):
            return type(value) is str and value == expected
        if self.model is None:
            return value is expected
        if not is_number(value):
            return False
        mine, theirs = self.model.comparable(expected), self.model.comparable(value)
        return mine == theirs if mine is not None and theirs is not None else value == expected


@dataclass(frozen=True, slots=True)
class Affix:
    """`prefix` (or, with `suffix`, `suffix`): a string that starts (ends) with `text`;
    with `ignore_case`, `text` is lower-cased and so is the value before the test."""

    text: str
    suffix: bool = False
    ignore_case: bool = False

    def matches(self, value: Leaf) -> bool:
        if type(value) is not str:
            return False
        if self.ignore_case:
            value = value.lower()
        return value.endswith(self.text) if self.suffix else value.startswith(self.text)


@dataclass(frozen=True, slots=True)
class EqualsIgnoreCase:
    #: lower-cased
    text: str

    def matches(self, value: Leaf) -> bool:
        return type(value) is str and value.lower() == self.text


@dataclass(frozen=True, slots=True)
class Wildcard:
    """`*` stands for any run of characters (none included); `\\*` is a star, `\\\\` a backslash.

    `segments` are the literal runs around the stars, escapes resolved (one more than
    there are stars): a value matches when it starts with the first, ends with the last,
    holds the others in order between them, and these do not overlap. The index files the
    first and last; the regular expression built from all of them decides the rest."""

    #: the pattern as given
    text: str
    segments: tuple[str, ...]
    regex: re.Pattern[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", re.compile(".*".join(map(re.escape, self.segments)), re.DOTALL))

    @property
    def length(self) -> int:
        """The fewest characters a matching value has: its literal characters."""
        return sum(map(len, self.segments))

    def matches(self, value: Leaf) -> bool:
        return type(value) is str and self.regex.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Numeric:
    """A range over scaled numbers: `low`/`high` None for an open end; `=` is low == high."""

    model: NumberModel
    low: int | None
    low_inclusive: bool
    high: int | None
    high_inclusive: bool

    def matches(self, value: Leaf) -> bool:
        scaled = self.model.comparable(value)
        if scaled is None:
            return False
        if self.low is not None and (scaled < self.low or (scaled == self.low and not self.low_inclusive)):
            return False
        return self.high is None or scaled < self.high or (scaled == self.high and self.high_inclusive)


@dataclass(frozen=True, slots=True)
class Cidr:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network

    @property
    def shift(self) -> int:
        """How many low bits of an address lie outside the network's prefix."""
        return self.network.max_prefixlen - self.network.prefixlen

    @property
    def leading(self) -> int:
        """The network's prefix, as an integer of its leading bits."""
        return int(self.network.network_address) >> self.shift

    def matches(self, value: Leaf) -> bool:
        if type(value) is not str:
            return False
        address = address_of(value)
        return address is not None and address[0] == self.network.version and address[1] >> self.shift == self.leading


#: a dotted quad as `ipaddress` accepts one: four decimal octets up to 255, no leading zeros
_IPV4 = re.compile(r"\.".join([r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"] * 4), re.ASCII)


def address_of(text: str) -> tuple[int, int] | None:
    """`text` as an IP address, (version, the address as an integer), or None if it is not
    one, as `ipaddress.ip_address` reads it. A dotted quad, the common case, is checked by
    a regular expression and converted by `socket.inet_aton` (C), four times quicker; text
    without a colon is no IPv6 address, so only that goes to `ipaddress` (slow, and slower
    to refuse), with its answers cached. Dotted quads are not: addresses in events are
    many, and a cache missed costs more than the conversion."""
    if _IPV4.fullmatch(text):
        return 4, int.from_bytes(socket.inet_aton(text), "big")
    if ":" not in text:
        return None
    return _ipv6_of(text)


@lru_cache(maxsize=4096)
def _ipv6_of(text: str) -> tuple[int, int] | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return address.version, int(address)


@dataclass(frozen=True, slots=True)
class AnythingBut:
    """Any leaf that the inner test rejects. Over strings (values, prefix, suffix,
    ignore-case, wildcard) every non-string leaf passes; over numbers only numbers can."""

    inner: tuple[Exact | Affix | EqualsIgnoreCase | Wildcard, ...]
    numbers_only: bool = False

    def matches(self, value: Leaf) -> bool:
        if self.numbers_only and not is_number(value):
            return False
        return not any(matcher.matches(value) for matcher in self.inner)


Matcher = Exact | Affix | EqualsIgnoreCase | Wildcard | Numeric | Cidr | AnythingBut
