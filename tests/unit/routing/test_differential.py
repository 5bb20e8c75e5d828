"""Squall's matcher against moto's on generated patterns and events, and Rules against
one-by-one matching.

moto implements EventBridge patterns and SNS filter policies by trying each rule in turn,
so it is a useful second opinion where it is right. It is compared on the part of the
language where it follows AWS; where AWS's documentation says otherwise, moto is wrong and
the test says so (`test_where_moto_differs_from_aws`).
"""

from __future__ import annotations

import json
import random

import pytest
from moto.events.models import EventPattern
from moto.sns.utils import FilterPolicyMatcher

from squall.routing import Rules, event_pattern, filter_policy

WORDS = ["alpha", "Beta", "gamma", "delta", "ALPHA", "alphabet", "bet"]
FIELDS = ["state", "kind", "tags", "amount", "ip", "missing"]


def value_condition(rng: random.Random, field: str) -> list:
    if field == "amount":
        low = rng.randrange(-50, 50)
        return rng.choice([[rng.randrange(-5, 5)], [{"numeric": [">=", low, "<", low + rng.randrange(1, 60)]}],
                           [{"numeric": ["<", low]}], [{"anything-but": [low, low + 1]}],
                           [{"exists": rng.random() < .5}]])
    if field == "ip":
        return [{"cidr": f"10.{rng.randrange(3)}.0.0/16"}]
    word = rng.choice(WORDS)
    return rng.choice([[word], [word, rng.choice(WORDS)], [{"prefix": word[:3]}], [{"suffix": word[-2:]}],
                       [{"equals-ignore-case": word}], [{"anything-but": rng.sample(WORDS, 2)}],
                       [{"anything-but": {"prefix": word[:2]}}], [{"exists": rng.random() < .5}],
                       [{"wildcard": f"{word[:2]}*{word[-1]}"}], [{"prefix": {"equals-ignore-case": word[:2]}}]])


def generated_pattern(rng: random.Random) -> dict:
    detail = {f: value_condition(rng, f) for f in rng.sample(FIELDS, rng.randrange(1, 3))}
    others = [f for f in FIELDS if f not in detail]  # a field in and out of $or: event-ruler keeps one, moto both
    if rng.random() < 0.3 and len(others) >= 2:
        one, two = rng.sample(others, 2)
        detail["$or"] = [{one: value_condition(rng, one)}, {two: value_condition(rng, two)}]
    return {"source": [rng.choice(["a", "b"])], "detail": detail}


def generated_event(rng: random.Random) -> dict:
    detail = {"state": rng.choice(WORDS), "kind": rng.choice(WORDS), "tags": rng.sample(WORDS, rng.randrange(1, 3)),
              "amount": rng.randrange(-60, 60), "ip": f"10.{rng.randrange(4)}.{rng.randrange(256)}.1"}
    for key in rng.sample(sorted(detail), rng.randrange(0, 2)):
        del detail[key]
    return {"source": rng.choice(["a", "b"]), "detail": detail}


def test_event_patterns_agree_with_moto_on_generated_cases():
    rng = random.Random(11)
    compared = matched = 0
    for _ in range(300):
        raw = generated_pattern(rng)
        ours, theirs = event_pattern(raw), EventPattern(json.dumps(raw), raw)
        for _ in range(20):
            event = generated_event(rng)
            expected = theirs.matches_event(event)
            assert ours.matches(event) is expected, (raw, event)
            compared += 1
            matched += expected
    assert matched > compared // 20  # the cases match often enough to mean something


def sns_supports(value) -> bool:
    """SNS has no wildcard, and no prefix with equals-ignore-case; moto's SNS gets
    equals-ignore-case wrong (see test_where_moto_differs_from_aws_sns)."""
    return not isinstance(value, dict) or (not {"wildcard", "equals-ignore-case"} & set(value)
                                           and not isinstance(value.get("prefix"), dict))


def test_filter_policies_agree_with_moto_on_generated_cases():
    rng = random.Random(12)
    for _ in range(300):
        raw = {f: value_condition(rng, f) for f in rng.sample(["state", "kind", "amount"], rng.randrange(1, 3))}
        raw = {k: [v for v in values if sns_supports(v)] or ["alpha"] for k, values in raw.items()}
        ours, theirs = filter_policy(raw), FilterPolicyMatcher(raw, "MessageAttributes")
        for _ in range(20):
            event = generated_event(rng)["detail"]
            attributes = {k: {"DataType": "Number", "StringValue": str(v)} if isinstance(v, int) else
                          {"DataType": "String", "StringValue": v} for k, v in event.items() if k in ("state", "kind",
                                                                                                  "amount")}
            delivered = {k: {"Type": v["DataType"], "Value": v["StringValue"]} for k, v in attributes.items()}
            assert ours.matches(attributes) is theirs.matches(delivered, ""), (raw, attributes)


def test_rules_find_exactly_the_patterns_that_match():
    rng = random.Random(13)
    patterns = {i: event_pattern(generated_pattern(rng)) for i in range(400)}
    rules: Rules[int] = Rules()
    for i, pattern in patterns.items():
        rules.add(i, pattern)
    for _ in range(500):
        event = generated_event(rng)
        if rng.random() < 0.3:  # arrays of objects: the index defers to array-consistent matching
            event["detail"] = {"items": [event["detail"], generated_event(rng)["detail"]]}
            event = {**event, **{"detail": event["detail"]["items"][0]}} if rng.random() < 0.5 else event
        assert rules.matching(event) == {i for i, p in patterns.items() if p.matches(event)}
    rules.remove(0)
    assert 0 not in rules and len(rules) == 399


def test_rules_keep_array_consistency():
    rules: Rules[str] = Rules()
    rules.add("anna-smith", event_pattern({"people": {"first": ["Anna"], "last": ["Smith"]}}))
    rules.add("anna-jones", event_pattern({"people": {"first": ["Anna"], "last": ["Jones"]}}))
    event = {"people": [{"first": "Anna", "last": "Smith"}, {"first": "Peter", "last": "Jones"}]}
    assert rules.matching(event) == {"anna-smith"}


@pytest.mark.parametrize(("pattern", "event", "aws"), [
    # event-ruler's README: arrays of objects are matched element by element; moto ignores them
    ({"employees": {"firstName": ["Anna"]}}, {"employees": [{"firstName": "John"}, {"firstName": "Anna"}]}, True),
    # a number never equals a boolean (JSON's true is not 1); moto compares with Python's ==
    ({"flag": [1]}, {"flag": True}, False),
    # an empty array holds no value: the field does not exist (event-ruler flattens it away)
    ({"tags": [{"exists": False}]}, {"tags": []}, True),
])
def test_where_moto_differs_from_aws(pattern, event, aws):
    assert event_pattern(pattern).matches(event) is aws
    assert EventPattern(json.dumps(pattern), pattern).matches_event(event) is not aws


def test_where_moto_differs_from_aws_sns():
    """equals-ignore-case ignores the case of both sides; moto's SNS lower-cases only the
    message's value, so a policy written in capitals matches nothing."""
    policy = {"customer_interests": [{"equals-ignore-case": "TENNIS"}]}
    attributes = {"customer_interests": {"DataType": "String", "StringValue": "TENNIS"}}
    assert filter_policy(policy).matches(attributes) is True
    moto = FilterPolicyMatcher(policy, "MessageAttributes")
    assert moto.matches({"customer_interests": {"Type": "String", "Value": "TENNIS"}}, "") is False
