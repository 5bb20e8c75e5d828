"""One field path's conditions over many alternatives, answered as a bitmask.

`Rules` gives every alternative (a pattern after `$or` is expanded) one bit of an int. A
`FieldIndex` holds the conditions that many alternatives put on one field path, and
answers, for one scalar the event has there, the alternatives whose condition it
satisfies, by looking the value up once per kind of operator rather than once per
alternative:

- exact strings, `true`/`false`/`null`, and numbers (scaled to their model's precision, or
  as given outside its range): a dict each;
- `equals-ignore-case`: a dict of lower-cased text;
- `prefix` and `suffix`, with or without case: the prefixes (suffixes reversed) sorted,
  each value's found by bisection (`_Prefixes`);
- `cidr`: per IP version and prefix length, a dict of networks by their leading bits;
  the value is parsed as an address once;
- `numeric`: the range bounds sorted, every stretch at and between them holding the
  alternatives whose ranges cover it; a value finds its stretch by bisection;
- `anything-but` (values, numbers, `prefix`, `suffix`, `equals-ignore-case`): every
  alternative with one, less those whose excluded values an inner index finds.

`wildcard` (and a condition with two `anything-but`s, whose complements do not
combine per alternative) are not indexed: `indexable` says so, and `Rules` tests those
conditions one candidate at a time.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field

from squall.routing.tree import Condition
from squall.routing.values import (
    Affix,
    AnythingBut,
    Cidr,
    EqualsIgnoreCase,
    Exact,
    Leaf,
    Matcher,
    NumberModel,
    Numeric,
    Wildcard,
    address_of,
    is_number,
)

#: the matchers a FieldIndex looks up (AnythingBut only over these, Wildcard excluded)
_INDEXED = (Exact, EqualsIgnoreCase, Affix, Numeric, Cidr)


def indexable(condition: Condition) -> bool:
    """Whether every matcher of `condition` can be filed in a FieldIndex."""
    excluding = 0
    for matcher in condition.matchers:
        if type(matcher) is AnythingBut:
            excluding += 1
            if any(type(inner) is Wildcard for inner in matcher.inner):
                return False
        elif type(matcher) not in _INDEXED:
            return False
    return excluding <= 1


@dataclass(eq=False)
class _Ranges:
    """Numeric ranges of one model: `bounds` sorted; stretch 2i+1 is exactly bounds[i],
    stretch 2i lies strictly between bounds[i-1] and bounds[i]; `masks[s]` are the
    alternatives whose range covers stretch s."""

    bounds: list[int]
    masks: list[int]

    @classmethod
    def build(cls, ranges: list[tuple[Numeric, int]]) -> _Ranges:
        bounds = sorted({b for numeric, _ in ranges for b in (numeric.low, numeric.high) if b is not None})
        place = {bound: i for i, bound in enumerate(bounds)}
        last = 2 * len(bounds)
        spans: dict[int, list[tuple[int, int]]] = {}
        for numeric, bit in ranges:
            low = 0 if numeric.low is None else 2 * place[numeric.low] + (1 if numeric.low_inclusive else 2)
            high = last if numeric.high is None else 2 * place[numeric.high] + (1 if numeric.high_inclusive else 0)
            if low <= high:
                spans.setdefault(bit, []).append((low, high))
        starts, stops = [0] * (last + 2), [0] * (last + 2)
        for bit, pieces in spans.items():
            # one alternative's ranges merged first, so its bit starts and stops once per run
            pieces.sort()
            run_low, run_high = pieces[0]
            for low, high in pieces[1:]:
                if low > run_high + 1:
                    starts[run_low] |= bit
                    stops[run_high + 1] |= bit
                    run_low = low
                run_high = max(run_high, high)
            starts[run_low] |= bit
            stops[run_high + 1] |= bit
        masks, current = [], 0
        for stretch in range(last + 1):
            current = (current & ~stops[stretch]) | starts[stretch]
            masks.append(current)
        return cls(bounds, masks)

    def find(self, scaled: int) -> int:
        bounds = self.bounds
        i = bisect_left(bounds, scaled)
        return self.masks[2 * i + 1 if i < len(bounds) and bounds[i] == scaled else 2 * i]


@dataclass(eq=False)
class _Prefixes:
    """Prefixes sorted, each with the alternatives of every prefix of it in the set: the
    set's prefixes of a text are the chain below the greatest key not after it (any key
    between a prefix of the text and the text starts with that prefix), found by
    bisection and a short walk down the chain, whatever the number of lengths."""

    keys: list[str]
    #: per key, the greatest other key that is a prefix of it (-1: none)
    parents: list[int]
    #: per key, its alternatives and those of every key down its chain
    masks: list[int]

    @classmethod
    def build(cls, by_text: dict[str, int]) -> _Prefixes:
        keys = sorted(by_text)
        parents: list[int] = []
        masks: list[int] = []
        chain: list[int] = []
        for number, key in enumerate(keys):
            while chain and not key.startswith(keys[chain[-1]]):
                chain.pop()
            parent = chain[-1] if chain else -1
            parents.append(parent)
            masks.append(by_text[key] | (masks[parent] if parent >= 0 else 0))
            chain.append(number)
        return cls(keys, parents, masks)

    def find(self, text: str) -> int:
        keys, parents = self.keys, self.parents
        number = bisect_right(keys, text) - 1
        while number >= 0 and not text.startswith(keys[number]):
            number = parents[number]
        return self.masks[number] if number >= 0 else 0


@dataclass(eq=False)
class _Lookups:
    """The positive matchers at one path, by the values that satisfy them."""

    strings: dict[str, int] = field(default_factory=dict)
    constants: dict[bool | None, int] = field(default_factory=dict)
    #: per model: numbers in its range by their scaled form, and those outside it as given
    numbers: dict[NumberModel, tuple[dict[int, int], dict[Leaf, int]]] = field(default_factory=dict)
    lowered: dict[str, int] = field(default_factory=dict)
    #: (prefix, suffix) x (as given, lower-cased): text (a suffix reversed) -> alternatives
    affixes: dict[tuple[bool, bool], dict[str, int]] = field(default_factory=dict)
    numeric: dict[NumberModel, list[tuple[Numeric, int]]] = field(default_factory=dict)
    #: (IP version, bits after the prefix) -> the network's leading bits -> alternatives
    networks: dict[tuple[int, int], dict[int, int]] = field(default_factory=dict)
    #: built by `freeze`
    prefixes: _Prefixes | None = None
    suffixes: _Prefixes | None = None
    prefixes_lowered: _Prefixes | None = None
    suffixes_lowered: _Prefixes | None = None
    ranges: tuple[tuple[NumberModel, _Ranges], ...] = ()
    models: tuple[tuple[NumberModel, dict[int, int], dict[Leaf, int]], ...] = ()
    cidrs: tuple[tuple[int, int, dict[int, int]], ...] = ()
    lowers: bool = False
    affixed: bool = False
    #: `leaf`, or a quicker equivalent for what this path holds
    probe: Callable[[Leaf], int] | None = None

    def file(self, matcher: Matcher, bit: int) -> None:
        if type(matcher) is Exact:
            value = matcher.value
            if type(value) is str:
                self.strings[value] = self.strings.get(value, 0) | bit
            elif matcher.model is None:
                self.constants[value] = self.constants.get(value, 0) | bit  # type: ignore[index, arg-type]
            else:
                scaled_values, literals = self.numbers.setdefault(matcher.model, ({}, {}))
                scaled = matcher.model.comparable(value)
                if scaled is None:
                    literals[value] = literals.get(value, 0) | bit
                else:
                    scaled_values[scaled] = scaled_values.get(scaled, 0) | bit
        elif type(matcher) is EqualsIgnoreCase:
            self.lowered[matcher.text] = self.lowered.get(matcher.text, 0) | bit
        elif type(matcher) is Affix:
            by_text = self.affixes.setdefault((matcher.suffix, matcher.ignore_case), {})
            text = matcher.text[::-1] if matcher.suffix else matcher.text
            by_text[text] = by_text.get(text, 0) | bit
        elif type(matcher) is Numeric:
            self.numeric.setdefault(matcher.model, []).append((matcher, bit))
        elif type(matcher) is Cidr:
            by_bits = self.networks.setdefault((matcher.network.version, matcher.shift), {})
            by_bits[matcher.leading] = by_bits.get(matcher.leading, 0) | bit
        else:  # `indexable` keeps the others out
            raise TypeError(f"{type(matcher).__name__} is not indexed")

    def freeze(self) -> None:
        def tables(suffix: bool, lowered: bool) -> _Prefixes | None:
            by_text = self.affixes.get((suffix, lowered))
            return _Prefixes.build(by_text) if by_text else None
        self.prefixes, self.suffixes = tables(False, False), tables(True, False)
        self.prefixes_lowered, self.suffixes_lowered = tables(False, True), tables(True, True)
        self.lowers = bool(self.lowered or self.prefixes_lowered or self.suffixes_lowered)
        self.affixed = bool(self.prefixes or self.suffixes)
        self.ranges = tuple((model, _Ranges.build(ranges)) for model, ranges in self.numeric.items())
        self.models = tuple((model, scaled, literals) for model, (scaled, literals) in self.numbers.items())
        self.cidrs = tuple((version, shift, by_bits) for (version, shift), by_bits in sorted(self.networks.items()))
        self.probe = self.leaf
        if not (self.constants or self.numbers or self.ranges):  # only strings can match
            string = self.string
            get = self.strings.get
            if not (self.lowers or self.affixed or self.cidrs):  # exact strings: one frame
                self.probe = lambda value: get(value, 0) if type(value) is str else 0
            else:
                self.probe = lambda value: string(value) if type(value) is str else 0

    def string(self, text: str) -> int:
        found = self.strings.get(text, 0)
        if self.affixed:
            if self.prefixes is not None:
                found |= self.prefixes.find(text)
            if self.suffixes is not None:
                found |= self.suffixes.find(text[::-1])
        if self.lowers:
            lower = text.lower()
            found |= self.lowered.get(lower, 0)
            if self.prefixes_lowered is not None:
                found |= self.prefixes_lowered.find(lower)
            if self.suffixes_lowered is not None:
                found |= self.suffixes_lowered.find(lower[::-1])
        if self.cidrs:
            address = address_of(text)
            if address is not None:
                version, number = address
                for network_version, shift, by_bits in self.cidrs:
                    if network_version == version:
                        found |= by_bits.get(number >> shift, 0)
        return found

    def number(self, value: int | float) -> int:
        found = 0
        for model, scaled_values, literals in self.models:
            scaled = model.comparable(value)
            found |= literals.get(value, 0) if scaled is None else scaled_values.get(scaled, 0)
        for model, ranges in self.ranges:
            scaled = model.comparable(value)
            if scaled is not None:
                found |= ranges.find(scaled)
        return found

    def leaf(self, value: Leaf) -> int:
        kind = type(value)
        if kind is str:
            return self.string(value)  # type: ignore[arg-type]
        if _numeric(kind, value):
            return self.number(value)  # type: ignore[arg-type]
        return self.constants.get(value, 0)  # type: ignore[arg-type]


@dataclass(eq=False)
class FieldIndex:
    """The indexed conditions at one path: `leaf(value)` is the alternatives that a field
    holding `value` satisfies by its matchers (`exists` and absence are the caller's)."""

    positive: _Lookups = field(default_factory=_Lookups)
    #: what the anything-buts exclude, by the alternatives excluding it
    excluded: _Lookups = field(default_factory=_Lookups)
    #: alternatives with an anything-but over strings (any non-string passes), over numbers
    but_any: int = 0
    but_numbers: int = 0
    #: `leaf`, or the positive look-ups' probe where there is no anything-but
    probe: Callable[[Leaf], int] | None = None

    def file(self, condition: Condition, bit: int) -> None:
        """File an indexable condition's matchers (see `indexable`) under `bit`."""
        for matcher in condition.matchers:
            if type(matcher) is AnythingBut:
                if matcher.numbers_only:
                    self.but_numbers |= bit
                else:
                    self.but_any |= bit
                for inner in matcher.inner:
                    self.excluded.file(inner, bit)
            else:
                self.positive.file(matcher, bit)

    def freeze(self) -> Callable[[Leaf], int]:
        """Build the look-ups; the function that answers for one leaf."""
        self.positive.freeze()
        self.excluded.freeze()
        self.probe = self.leaf if self.but_any or self.but_numbers else self.positive.probe
        assert self.probe is not None
        return self.probe

    def leaf(self, value: Leaf) -> int:
        assert self.positive.probe is not None and self.excluded.probe is not None  # frozen
        found = self.positive.probe(value)
        applies = self.but_any | (self.but_numbers if _numeric(type(value), value) else 0)
        if applies:
            found |= applies & ~self.excluded.probe(value)
        return found


def _numeric(kind: type, value: Leaf) -> bool:
    """`is_number(value)`, the common types first."""
    return kind is int or kind is float or (kind is not bool and is_number(value))
