"""`Rules` (the index over many patterns) against rule-by-rule `Pattern.matches`.

The index answers each condition by looking values up rather than by testing them, so
every operator has a second implementation there; these tests hold it to the first. The
randomized cases draw patterns from the whole language (both dialects) and events built
to sit on the operators' edges: values either side of numeric bounds, case variants,
arrays of mixed scalars, objects where leaves are expected, arrays of objects, missing
fields. The explicit cases name what the index must not match.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable
from typing import Any

import pytest

from squall.routing import InvalidEventPattern, InvalidFilterPolicy, Rules, event_pattern, filter_policy
from squall.routing.rules import _Partition
from squall.routing.tree import Pattern
from squall.routing.values import address_of

WORDS = ["alpha", "Alpha", "ALPHA", "alphabet", "beta", "bet", "Beta", "", "al*ha", "a\\b", "İstanbul", "istanbul",
         "a", "ala", "alala", "a*b\nt"]
#: stars at the start, middle and end, several, escaped; heads and tails that overlap in short words
WILDCARDS = ["al*", "*ha", "*", "a*b*t", "al\\*ha", "*\\\\*", "a*a", "al*la", "al*l*a", "*l*", "*a*", "alpha", "",
             "b*t*a", "A*", "a\\**", "*b\nt"]
NUMBERS = [0, -0.0, 1, -1, 5, 5.0, 10, 9.999999, 10.000001, 10.0000001, -10, 2.5, 5e9, 5.000001e9, -5e9, 1e9,
           123456789012, 3.0e-7]
IPS = ["10.0.0.1", "10.1.255.255", "10.2.3.4", "192.168.1.7", "2001:db8::1", "2001:db9::1", "not-an-ip", "10.0.0"]
FIELDS = ["a", "b", "c"]
NESTED = ["x", "y"]


def word(rng: random.Random) -> str:
    return rng.choice(WORDS)


def numeric(rng: random.Random) -> list[Any]:
    low = rng.choice([-10, 0, 1, 5, 9.999999, 10, 1e9])
    high = low + rng.choice([0.000001, 1, 5, 10, 4e9])
    return rng.choice([["=", low], ["<", low], ["<=", low], [">", low], [">=", low],
                       [rng.choice([">", ">="]), low, rng.choice(["<", "<="]), high]])


def value(rng: random.Random, sns: bool) -> Any:
    """One element of a field's array of values."""
    text = word(rng)
    choices: list[Any] = [
        text, rng.choice(NUMBERS[:14]), rng.choice([True, False, None]) if not sns else text,
        {"prefix": text[:rng.randrange(0, 4)]}, {"suffix": text[-rng.randrange(1, 4):]},
        {"equals-ignore-case": text}, {"numeric": numeric(rng)}, {"exists": rng.random() < 0.5},
        {"cidr": rng.choice(["10.0.0.0/16", "10.0.0.0/8", "10.2.3.4/32", "0.0.0.0/0", "2001:db8::/32"])},
        {"anything-but": rng.sample([w for w in WORDS if w], rng.randrange(1, 3))},
        {"anything-but": word(rng) or "x"}, {"anything-but": rng.sample(NUMBERS[:12], 2)},
        {"anything-but": {"prefix": (text or "x")[:2]}}, {"anything-but": {"suffix": (text or "x")[-2:]}},
    ]
    if not sns:
        choices += [{"prefix": {"equals-ignore-case": text[:3]}}, {"suffix": {"equals-ignore-case": text[-3:]}},
                    {"wildcard": rng.choice(WILDCARDS)}, {"wildcard": rng.choice(WILDCARDS)},
                    {"anything-but": {"equals-ignore-case": rng.sample([w for w in WORDS if w], 2)}},
                    {"anything-but": {"wildcard": rng.choice(WILDCARDS)}},
                    {"anything-but": {"wildcard": rng.sample(WILDCARDS, 2)}}]
    return rng.choice(choices)


def condition(rng: random.Random, sns: bool) -> list[Any]:
    return [value(rng, sns) for _ in range(rng.choice([1, 1, 1, 2, 3]))]


def pattern_object(rng: random.Random, sns: bool, nested: bool, depth: int = 0) -> dict[str, Any]:
    fields = rng.sample(FIELDS if depth == 0 else NESTED, rng.randrange(1, 3))
    obj: dict[str, Any] = {}
    for name in fields:
        if nested and depth < 2 and rng.random() < 0.3:
            obj[name] = pattern_object(rng, sns, nested, depth + 1)
        else:
            obj[name] = condition(rng, sns)
    if rng.random() < 0.2:
        others = [f for f in (FIELDS if depth == 0 else NESTED) if f not in obj] or ["z"]
        obj["$or"] = [{rng.choice(others): condition(rng, sns)}, {rng.choice(others): condition(rng, sns)}]
    return obj


def scalar(rng: random.Random) -> Any:
    return rng.choice([word(rng), word(rng), rng.choice(NUMBERS), rng.choice(NUMBERS), rng.choice(IPS),
                       rng.choice([True, False, None])])


def event_value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if roll < 0.55:
        return scalar(rng)
    if roll < 0.7:
        return [scalar(rng) for _ in range(rng.randrange(0, 4))]
    if roll < 0.85 and depth < 2:
        return event_object(rng, depth + 1)
    if depth < 2:  # an array of objects, sometimes with scalars and arrays among them
        items: list[Any] = [event_object(rng, depth + 1) for _ in range(rng.randrange(1, 3))]
        if rng.random() < 0.3:
            items.append(scalar(rng))
        if rng.random() < 0.2:
            items.append([event_object(rng, depth + 1)])
        return items
    return scalar(rng)


def event_object(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    names = FIELDS + ["z"] if depth == 0 else NESTED + ["z"]
    return {name: event_value(rng, depth) for name in names if rng.random() < 0.75}


def compiled(rng: random.Random, count: int, compile_one: Callable[[dict[str, Any]], Pattern],
             nested: bool) -> dict[int, Pattern]:
    """`count` generated patterns that compile (a drawn range can be empty at the
    dialect's precision, or leave its range: those are drawn again)."""
    patterns: dict[int, Pattern] = {}
    while len(patterns) < count:
        try:
            patterns[len(patterns)] = compile_one(pattern_object(rng, sns=compile_one is not event_pattern,
                                                                 nested=nested))
        except (InvalidEventPattern, InvalidFilterPolicy):
            continue
    return patterns


def check(patterns: dict[int, Pattern], events: list[Any]) -> int:
    rules: Rules[int] = Rules()
    for number, pattern in patterns.items():
        rules.add(number, pattern)
    matched = 0
    for event in events:
        expected = {number for number, pattern in patterns.items() if pattern.matches(event)}
        assert rules.matching(event) == expected, event
        matched += len(expected)
    return matched


@pytest.mark.parametrize("seed", range(6))
def test_event_patterns_index_agrees_with_rule_by_rule(seed):
    rng = random.Random(seed)
    patterns = compiled(rng, 300, event_pattern, nested=True)
    events = [event_object(rng) for _ in range(400)] + ["not an object", None, [], {}]
    matched = check(patterns, events)
    assert matched > len(events)  # matches are common enough for the comparison to mean something


@pytest.mark.parametrize("seed", range(3))
def test_filter_policies_index_agrees_with_rule_by_rule(seed):
    rng = random.Random(100 + seed)
    attributes = compiled(rng, 200, lambda raw: filter_policy(raw).pattern, nested=False)
    body = compiled(rng, 200, lambda raw: filter_policy(raw, "MessageBody").pattern, nested=True)
    flat_events = [{k: v for k, v in event_object(rng).items() if not isinstance(v, dict)} for _ in range(300)]
    assert check(attributes, flat_events) > len(flat_events) // 2
    assert check(body, [event_object(rng) for _ in range(300)]) > 100


SOURCES = ["s1", "s2", "s3", "s4", "s5", "s6"]
KINDS = ["k1", "k2", "k3"]


def partitioned_pattern(rng: random.Random) -> dict[str, Any]:
    """A pattern that mostly names its source and kind by exact strings, as bus rules do."""
    pattern = pattern_object(rng, sns=False, nested=True)
    roll = rng.random()
    if roll < 0.9:
        pattern["s"] = rng.sample(SOURCES, rng.choice([1, 1, 2]))
    elif roll < 0.95:  # the rest: no exact strings there
        pattern["s"] = [{"prefix": "s"}]
    if rng.random() < 0.8:
        pattern["k"] = rng.sample(KINDS, rng.choice([1, 2]))
    return pattern


def partitioned_event(rng: random.Random) -> Any:
    event = event_object(rng)
    for key, known in (("s", SOURCES), ("k", KINDS)):
        event[key] = rng.choice([
            rng.choice(known), rng.choice(known), rng.choice(known), "S1", "unknown", None, 5, {"x": known[0]},
            rng.sample(known, 2), [known[0], "unknown"], ["unknown"], [], [{"x": known[0]}], [[known[1]], 7]])
        if rng.random() < 0.1:
            del event[key]
    return event


@pytest.mark.parametrize("seed", range(3))
def test_partitioned_index_agrees_with_rule_by_rule(seed):
    """Enough rules with exact sources split the index by source (and each source's group
    by kind): every event still gets exactly the rules that match it."""
    rng = random.Random(200 + seed)
    patterns: dict[int, Pattern] = {}
    while len(patterns) < 600:
        try:
            patterns[len(patterns)] = event_pattern(partitioned_pattern(rng))
        except InvalidEventPattern:  # a drawn range can be empty
            continue
    rules: Rules[int] = Rules()
    for number, pattern in patterns.items():
        rules.add(number, pattern)
    events = [partitioned_event(rng) for _ in range(400)] + ["not an object", None, [], {}]
    matched = check(patterns, events)
    assert matched > len(events)
    rules.matching({})
    top = rules._index
    assert isinstance(top, _Partition) and top.key == "s"
    assert any(isinstance(group, _Partition) for group in top.groups.values())  # split again, by kind


def test_rules_follow_add_and_remove():
    rules: Rules[str] = Rules()
    rules.add("one", event_pattern({"a": [{"prefix": "al"}]}))
    assert rules.matching({"a": "alpha"}) == {"one"}
    rules.add("one", event_pattern({"a": [{"suffix": "ha"}]}))
    rules.add("two", event_pattern({"a": [{"numeric": [">", 1]}]}))
    assert rules.matching({"a": "alps"}) == set()
    assert rules.matching({"a": ["alpha", 2]}) == {"one", "two"}
    rules.remove("one")
    assert rules.matching({"a": ["alpha", 2]}) == {"two"}


NOISE = [{"a": ["alpha"]}, {"a": [{"prefix": "b"}]}, {"a": [{"numeric": [">", 100]}]}, {"b": [{"exists": True}]},
         {"a": [{"anything-but": "zzz"}], "b": ["q"]}, {"a": {"x": ["alpha"]}}]


@pytest.mark.parametrize(("pattern", "event", "expected"), [
    # every field must match, not one of them
    ({"a": ["alpha"], "b": ["beta"]}, {"a": "alpha", "b": "gamma"}, False),
    ({"a": ["alpha"], "b": ["beta"]}, {"a": "alpha"}, False),
    ({"a": {"x": ["alpha"], "y": [{"prefix": "b"}]}}, {"a": {"x": "alpha", "y": "alpha"}}, False),
    # an array offers each element; the field matches when one of them does
    ({"a": ["alpha"]}, {"a": ["beta", "alpha"]}, True),
    ({"a": ["alpha"]}, {"a": [["beta"], ["alpha"]]}, True),
    ({"a": [{"anything-but": ["alpha"]}]}, {"a": ["alpha"]}, False),
    ({"a": [{"anything-but": ["alpha"]}]}, {"a": ["alpha", "beta"]}, True),
    ({"a": [{"anything-but": ["alpha"]}]}, {"a": []}, False),
    ({"a": [{"anything-but": ["alpha"]}]}, {"a": 5}, True),  # over strings, a number is anything but
    ({"a": [{"anything-but": [5]}]}, {"a": "alpha"}, False),  # over numbers, only numbers
    ({"a": [{"anything-but": [5]}]}, {"a": 5.0000001}, False),  # equal at 6 decimal places
    ({"a": [{"anything-but": {"prefix": "al"}}]}, {"a": "alpha"}, False),
    ({"a": [{"anything-but": {"suffix": "ha"}}]}, {"a": ["alpha", "beta"]}, True),
    ({"a": [{"anything-but": {"equals-ignore-case": ["ALPHA"]}}]}, {"a": "Alpha"}, False),
    ({"a": [{"anything-but": ["alpha"]}, "alpha"]}, {"a": "alpha"}, True),  # an exact value beside it
    ({"a": [{"anything-but": ["alpha"]}, {"anything-but": ["beta"]}]}, {"a": "alpha"}, True),
    # numeric edges: bounds, overlapping and adjacent ranges of one field, truncation
    ({"a": [{"numeric": [">=", 0, "<", 10]}]}, {"a": 10}, False),
    ({"a": [{"numeric": [">=", 0, "<", 10]}]}, {"a": 0}, True),
    ({"a": [{"numeric": [">", 0, "<=", 10]}]}, {"a": 0}, False),
    ({"a": [{"numeric": [">", 0, "<=", 10]}]}, {"a": 10.0000001}, True),
    ({"a": [{"numeric": [">", 0, "<=", 10]}]}, {"a": 10.000001}, False),
    ({"a": [{"numeric": [">", 0, "<", 10]}, {"numeric": [">", 5, "<", 20]}]}, {"a": 15}, True),
    ({"a": [{"numeric": [">", 0, "<", 10]}, {"numeric": [">", 5, "<", 20]}]}, {"a": 20}, False),
    ({"a": [{"numeric": ["<", 5]}, {"numeric": [">=", 5]}]}, {"a": 5}, True),
    ({"a": [{"numeric": ["<", 5]}, {"numeric": [">=", 5]}]}, {"a": "5"}, False),
    ({"a": [{"numeric": ["=", 5]}]}, {"a": True}, False),
    ({"a": [{"numeric": ["<", 0]}]}, {"a": -5.000001e9}, False),  # outside the comparable range
    ({"a": [123456789012]}, {"a": 123456789012}, True),  # a literal outside it compares as given
    ({"a": [123456789012]}, {"a": 123456789012.5}, False),
    ({"a": [1]}, {"a": True}, False),
    ({"a": [True]}, {"a": 1}, False),
    ({"a": [None]}, {"a": None}, True),
    # case: ignore-case operators lower both sides, the others do not
    ({"a": [{"prefix": {"equals-ignore-case": "AlP"}}]}, {"a": "aLPHA"}, True),
    ({"a": [{"prefix": {"equals-ignore-case": "AlP"}}]}, {"a": "aLXHA"}, False),
    ({"a": [{"prefix": "Al"}]}, {"a": "alpha"}, False),
    ({"a": [{"suffix": {"equals-ignore-case": "HA"}}]}, {"a": "alpha"}, True),
    ({"a": [{"suffix": "ha"}]}, {"a": "a"}, False),
    ({"a": [{"equals-ignore-case": "ALPHA"}]}, {"a": "alphA"}, True),
    ({"a": [{"prefix": ""}]}, {"a": ""}, True),
    ({"a": [{"prefix": ""}]}, {"a": 5}, False),
    # exists is about leaves: an object or an empty array has none
    ({"a": [{"exists": False}]}, {"a": {"x": 1}}, True),
    ({"a": [{"exists": True}]}, {"a": []}, False),
    ({"a": [{"exists": False}]}, {"b": 1}, True),
    ({"a": {"x": [{"exists": False}]}}, {"a": "flat"}, True),
    ({"a": {"x": [{"exists": True}]}}, {"a": ["flat"]}, False),
    # cidr by version and prefix length
    ({"a": [{"cidr": "10.0.0.0/16"}]}, {"a": "10.0.255.1"}, True),
    ({"a": [{"cidr": "10.0.0.0/16"}]}, {"a": "10.1.0.1"}, False),
    ({"a": [{"cidr": "0.0.0.0/0"}]}, {"a": "2001:db8::1"}, False),
    ({"a": [{"cidr": "2001:db8::/32"}]}, {"a": "2001:db8:ffff::1"}, True),
    ({"a": [{"cidr": "10.2.3.4/32"}]}, {"a": ["x", "10.2.3.4"]}, True),
    ({"a": [{"cidr": "10.0.0.0/8"}]}, {"a": "10.0.0"}, False),
    # arrays of objects: one element must satisfy the whole sub-pattern
    ({"a": {"x": ["alpha"], "y": ["beta"]}}, {"a": [{"x": "alpha"}, {"y": "beta"}]}, False),
    ({"a": {"x": ["alpha"], "y": ["beta"]}}, {"a": [{"x": "alpha"}, {"x": "alpha", "y": "beta"}]}, True),
    ({"a": {"x": [{"exists": False}]}}, {"a": [{"x": 1}, {"y": 1}]}, True),
    ({"a": {"x": ["alpha"]}, "b": ["beta"]}, {"a": [{"x": "alpha"}], "b": "gamma"}, False),
    # wildcards: head, tail and literal length from the same wildcard, middle runs in order
    ({"a": [{"wildcard": "al*a"}], "b": ["beta"]}, {"a": "alpha", "b": "beta"}, True),
    ({"a": [{"wildcard": "al*a"}], "b": ["beta"]}, {"a": "alphas", "b": "beta"}, False),
    ({"a": [{"wildcard": "ab*ba"}]}, {"a": "aba"}, False),  # head and tail would overlap
    ({"a": [{"wildcard": "ab*ba"}]}, {"a": "abba"}, True),
    ({"a": [{"wildcard": "a*b*c"}]}, {"a": "abc"}, True),
    ({"a": [{"wildcard": "a*b*c"}]}, {"a": "acac"}, False),
    ({"a": [{"wildcard": "a*b*b*a"}]}, {"a": "abba"}, True),
    ({"a": [{"wildcard": "a*bb*bb*a"}]}, {"a": "abbba"}, False),  # middle runs do not overlap either
    ({"a": [{"wildcard": "x*b"}, {"wildcard": "a*y"}]}, {"a": "ab"}, False),  # a head of one, a tail of the other
    ({"a": [{"wildcard": "x*b"}, {"wildcard": "a*y"}]}, {"a": ["ab", "ay"]}, True),
    ({"a": [{"wildcard": "a\\*"}]}, {"a": "a*"}, True),  # an escaped star is a star
    ({"a": [{"wildcard": "a\\*"}]}, {"a": "ab"}, False),
    ({"a": [{"wildcard": "a\\**"}]}, {"a": "a*b"}, True),
    ({"a": [{"wildcard": "a\\\\*"}]}, {"a": "a\\b"}, True),
    ({"a": [{"wildcard": "alpha"}]}, {"a": "alpha"}, True),  # no star: the exact string
    ({"a": [{"wildcard": "alpha"}]}, {"a": "alphas"}, False),
    ({"a": [{"wildcard": "*"}]}, {"a": ""}, True),
    ({"a": [{"wildcard": "*"}]}, {"a": 5}, False),
    ({"a": [{"wildcard": "*a*"}]}, {"a": "a"}, True),
    ({"a": [{"wildcard": "a*b"}]}, {"a": "a\nb"}, True),
    ({"a": [{"anything-but": {"wildcard": "al*"}}]}, {"a": "alpha"}, False),
    ({"a": [{"anything-but": {"wildcard": "al*"}}]}, {"a": "beta"}, True),
    ({"a": [{"anything-but": {"wildcard": "al*"}}]}, {"a": 5}, True),
    ({"a": [{"anything-but": {"wildcard": ["al*", "*ta"]}}]}, {"a": "beta"}, False),
    ({"a": [{"anything-but": {"wildcard": ["al*", "*ta"]}}]}, {"a": "gamma"}, True),
    ({"a": [{"anything-but": {"wildcard": ["x*b", "a*y"]}}]}, {"a": "ab"}, True),
])
def test_index_edges(pattern, event, expected):
    compiled = event_pattern(pattern)
    assert compiled.matches(event) is expected
    rules: Rules[int] = Rules()
    rules.add(0, compiled)
    for number, noise in enumerate(NOISE, 1):
        rules.add(number, event_pattern(noise))
    assert (0 in rules.matching(event)) is expected
    assert rules.matching(event) == {n for n, p in enumerate([compiled, *map(event_pattern, NOISE)])
                                     if p.matches(event)}


@pytest.mark.parametrize("text", ["10.0.0.1", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3",
                                  "1.2.3.4.5", " 1.2.3.4", "1.2.3.4\n", "１.2.3.4", "1.2.3.04", "100.200.99.250",
                                  "2001:db8::1", "::ffff:10.0.0.1", "fe80::1%eth0", "", "x", "1..2.3"])
def test_addresses_read_as_ipaddress_reads_them(text):
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        assert address_of(text) is None
    else:
        assert address_of(text) == (address.version, int(address))
