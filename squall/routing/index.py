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
- `wildcard`: a pattern without a star is an exact string; the others are filed by their
  first and last literal runs, as prefixes and reversed suffixes (`_Wildcards`), and by
  their literal length; a value's candidates are those whose head and tail it has and
  that fit in it, decided there for one star, confirmed by the regular expression for two
  or more;
- `anything-but` (values, numbers, `prefix`, `suffix`, `equals-ignore-case`, `wildcard`):
  every alternative with one, less those whose excluded values an inner index finds.

A condition with two `anything-but`s, whose complements do not combine per alternative,
is not indexed: `indexable` says so, and `Rules` tests it one candidate at a time.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
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


def indexable(condition: Condition) -> bool:
    """Whether every matcher of `condition` can be filed in a FieldIndex: all can, but two
    `anything-but`s in one condition."""
    return sum(type(matcher) is AnythingBut for matcher in condition.matchers) <= 1


def bits(mask: int) -> Iterator[int]:
    """The numbers of the bits set in `mask`, highest first (one `bit_length` per bit)."""
    while mask:
        top = mask.bit_length() - 1
        yield top
        mask ^= 1 << top


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

    def finder(self, model: NumberModel) -> Callable[[Leaf], int]:
        """The alternatives whose range holds a leaf (none for a leaf that is not a number
        in `model`'s range), in one closure."""
        bounds, masks, comparable = self.bounds, self.masks, model.comparable
        count = len(bounds)

        def find(value: Leaf) -> int:
            scaled = comparable(value)
            if scaled is None:
                return 0
            i = bisect_left(bounds, scaled)
            return masks[2 * i + 1 if i < count and bounds[i] == scaled else 2 * i]
        return find


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

    def finder(self, suffix: bool = False, lowered: bool = False) -> Callable[[str], int]:
        """The alternatives whose prefix a text has (with `suffix`, the keys are reversed
        suffixes and so is the text; with `lowered`, the text is lower-cased first): one
        closure, the text's forms made inline (a look-up is one call)."""
        keys, parents, masks = self.keys, self.parents, self.masks

        def find(text: str) -> int:
            if lowered:
                text = text.lower()
            if suffix:
                text = text[::-1]
            number = bisect_right(keys, text) - 1
            while number >= 0 and not text.startswith(keys[number]):
                number = parents[number]
            return masks[number] if number >= 0 else 0
        return find


@dataclass(eq=False)
class _Networks:
    """`cidr` networks: per (IP version, bits after the prefix), the alternatives by the
    network's leading bits."""

    by_size: tuple[tuple[int, int, dict[int, int]], ...]

    def find(self, text: str) -> int:
        address = address_of(text)
        if address is None:
            return 0
        version, number = address
        found = 0
        for network_version, shift, by_bits in self.by_size:
            if network_version == version:
                found |= by_bits.get(number >> shift, 0)
        return found


@dataclass(eq=False)
class _Wildcards:
    """Wildcards with at least one star, at most one per alternative (the masks of its
    head, tail and length must come from the same wildcard): `heads` their first literal
    runs, `tails` their last ones reversed, `fits[i]` those whose literal length is at
    most `lengths[i - 1]` (`fits[0]` none), and the regular expressions of those with more
    than two runs."""

    heads: Callable[[str], int]
    tails: Callable[[str], int]
    lengths: list[int]
    fits: list[int]
    #: alternatives whose middle runs are left to their regular expression, and those
    middles: int
    regexes: dict[int, re.Pattern[str]]

    @classmethod
    def build(cls, wildcards: list[tuple[Wildcard, int]]) -> _Wildcards:
        heads: dict[str, int] = {}
        tails: dict[str, int] = {}
        by_length: dict[int, int] = {}
        middles = 0
        regexes: dict[int, re.Pattern[str]] = {}
        for wildcard, bit in wildcards:
            head, tail = wildcard.segments[0], wildcard.segments[-1][::-1]
            heads[head] = heads.get(head, 0) | bit
            tails[tail] = tails.get(tail, 0) | bit
            by_length[wildcard.length] = by_length.get(wildcard.length, 0) | bit
            if len(wildcard.segments) > 2:
                middles |= bit
                regexes[bit] = wildcard.regex
        lengths = sorted(by_length)
        fits = [0]
        for length in lengths:
            fits.append(fits[-1] | by_length[length])
        return cls(_Prefixes.build(heads).finder(), _Prefixes.build(tails).finder(suffix=True), lengths, fits, middles,
                   regexes)

    def find(self, text: str) -> int:
        found = self.heads(text) & self.tails(text) & self.fits[bisect_right(self.lengths, len(text))]
        unsure = found & self.middles
        if unsure:
            regexes = self.regexes
            for number in bits(unsure):
                bit = 1 << number
                if regexes[bit].fullmatch(text) is None:
                    found ^= bit
        return found

    @classmethod
    def layered(cls, wildcards: list[tuple[Wildcard, int]]) -> tuple[_Wildcards, ...]:
        """`wildcards` in as few layers as hold each alternative once: the k-th layer has
        every alternative's k-th wildcard (a field's values, an anything-but's list)."""
        layers: list[list[tuple[Wildcard, int]]] = []
        seen: dict[int, int] = {}
        for wildcard, bit in wildcards:
            depth = seen.get(bit, 0)
            seen[bit] = depth + 1
            if depth == len(layers):
                layers.append([])
            layers[depth].append((wildcard, bit))
        return tuple(cls.build(layer) for layer in layers)


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
    #: wildcards with a star (those without one are exact strings)
    wildcards: list[tuple[Wildcard, int]] = field(default_factory=list)
    #: built by `freeze`: the look-ups a string goes through besides `strings`, each
    #: taking the text as given
    finders: tuple[Callable[[str], int], ...] = ()
    #: per model, the ranges' look-up
    ranges: tuple[Callable[[Leaf], int], ...] = ()
    models: tuple[tuple[NumberModel, dict[int, int], dict[Leaf, int]], ...] = ()
    #: `leaf`, or a quicker equivalent for what this path holds
    probe: Callable[[Leaf], int] | None = None
    #: `string`, or a quicker equivalent
    text: Callable[[str], int] | None = None

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
        elif type(matcher) is Wildcard:
            if len(matcher.segments) == 1:
                self.strings[matcher.segments[0]] = self.strings.get(matcher.segments[0], 0) | bit
            else:
                self.wildcards.append((matcher, bit))
        else:  # an AnythingBut: FieldIndex files its inner matchers
            raise TypeError(f"{type(matcher).__name__} is not filed here")

    def freeze(self) -> None:
        finders: list[Callable[[str], int]] = []
        for (suffix, ignore_case), by_text in self.affixes.items():
            finders.append(_Prefixes.build(by_text).finder(suffix, ignore_case))
        if self.lowered:
            lowered = self.lowered
            finders.append(lambda text: lowered.get(text.lower(), 0))
        if self.networks:
            finders.append(_Networks(tuple((version, shift, by_bits)
                                           for (version, shift), by_bits in sorted(self.networks.items()))).find)
        finders.extend(layer.find for layer in _Wildcards.layered(self.wildcards))
        self.finders = tuple(finders)
        self.ranges = tuple(_Ranges.build(ranges).finder(model) for model, ranges in self.numeric.items())
        self.models = tuple((model, scaled, literals) for model, (scaled, literals) in self.numbers.items())
        self.probe = self.leaf
        if not (self.strings or finders or self.constants):  # only numbers can match
            if len(self.ranges) == 1 and not self.models:
                (self.probe,) = self.ranges
            else:
                number = self.number
                self.probe = lambda value: number(value) if _numeric(type(value), value) else 0  # type: ignore[arg-type]
        elif not (self.constants or self.numbers or self.ranges):  # only strings can match
            get = self.strings.get
            if not finders:  # exact strings: one frame
                self.probe = lambda value: get(value, 0) if type(value) is str else 0
            elif len(finders) == 1:
                (find,) = finders
                self.probe = lambda value: get(value, 0) | find(value) if type(value) is str else 0
            else:
                string = self.string
                self.probe = lambda value: string(value) if type(value) is str else 0
        self.text = self.string
        if len(finders) == 1:
            (only,) = finders
            known = self.strings.get
            self.text = only if not self.strings else lambda text: known(text, 0) | only(text)

    def string(self, text: str) -> int:
        found = self.strings.get(text, 0)
        for find in self.finders:
            found |= find(text)
        return found

    def number(self, value: int | float) -> int:
        found = 0
        for model, scaled_values, literals in self.models:
            scaled = model.comparable(value)
            found |= literals.get(value, 0) if scaled is None else scaled_values.get(scaled, 0)
        for ranges in self.ranges:
            found |= ranges(value)
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

    def string_table(self) -> tuple[dict[str, int], int] | None:
        """Once frozen, when no string needs more than a look-up by its text (exact strings,
        and anything-but over exact strings): the alternatives by string, and those that
        every other string satisfies."""
        positive, excluded = self.positive, self.excluded
        if positive.finders or excluded.finders:
            return None
        by_string = {text: positive.strings.get(text, 0) | (self.but_any & ~excluded.strings.get(text, 0))
                     for text in positive.strings.keys() | excluded.strings.keys()}
        return by_string, self.but_any

    def text_only(self) -> Callable[[str], int] | None:
        """Once frozen, when only strings can satisfy this path's matchers: the function
        from a string to the alternatives it satisfies."""
        positive = self.positive
        if self.but_any or self.but_numbers or positive.constants or positive.numbers or positive.ranges:
            return None
        return positive.text

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
