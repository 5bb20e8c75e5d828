"""EventBridge event patterns, case for case: AWS's documented examples and corners."""

from __future__ import annotations

import pytest

import squall
from squall import InvalidEventPattern
from squall.routing import event_pattern

#: the event of EventBridge's content-filtering examples (and event-ruler's README)
EVENT = {
    "version": "0", "id": "ddddd4-aaaa-7777-4444-345dd43cc333", "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2", "account": "012345679012", "time": "2017-10-02T16:24:49Z", "region": "us-east-1",
    "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],
    "detail": {"c-count": 5, "d-count": 3, "x-limit": 301.8, "source-ip": "10.0.0.33",
               "instance-id": "i-000000aaaaaa00000", "state": "running"},
}

DOCUMENTED = [
    ({"detail-type": ["EC2 Instance State-change Notification"],
      "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],
      "detail": {"state": ["initializing", "running"]}}, True),
    ({"source": ["aws.ec2", "aws.fargate"]}, True),
    ({"time": [{"prefix": "2017-10-02"}]}, True),
    ({"time": [{"prefix": "2017-10-03"}]}, False),
    ({"source": [{"suffix": "ec2"}]}, True),
    ({"source": [{"equals-ignore-case": "AWS.EC2"}]}, True),
    ({"source": [{"prefix": {"equals-ignore-case": "AWS."}}]}, True),
    ({"source": [{"suffix": {"equals-ignore-case": "EC2"}}]}, True),
    ({"source": [{"wildcard": "aws.*2"}]}, True),
    ({"source": [{"wildcard": "aws.*3"}]}, False),
    ({"detail": {"state": [{"anything-but": "initializing"}]}}, True),
    ({"detail": {"state": [{"anything-but": "running"}]}}, False),
    ({"detail": {"x-limit": [{"anything-but": 123}]}}, True),
    ({"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}}, True),
    ({"detail": {"x-limit": [{"anything-but": [100, 200, 300]}]}}, True),
    ({"detail": {"state": [{"anything-but": {"prefix": "init"}}]}}, True),
    ({"detail": {"state": [{"anything-but": {"prefix": "run"}}]}}, False),
    ({"detail": {"state": [{"anything-but": {"suffix": "ing"}}]}}, False),
    ({"detail": {"state": [{"anything-but": {"equals-ignore-case": ["RUNNING"]}}]}}, False),
    ({"detail": {"state": [{"anything-but": {"wildcard": "r*g"}}]}}, False),
    ({"detail": {"c-count": [{"numeric": [">", 0, "<=", 5]}], "d-count": [{"numeric": ["<", 10]}],
                 "x-limit": [{"numeric": ["=", 3.018e2]}]}}, True),
    ({"detail": {"c-count": [{"numeric": [">", 5]}]}}, False),
    ({"detail": {"source-ip": [{"cidr": "10.0.0.0/24"}]}}, True),
    ({"detail": {"source-ip": [{"cidr": "10.0.1.0/24"}]}}, False),
    ({"detail": {"c-count": [{"exists": True}]}}, True),
    ({"detail": {"c-count": [{"exists": False}]}}, False),
    ({"detail": {"nope": [{"exists": False}]}}, True),
    ({"time": [{"prefix": "2017-10-02"}], "detail": {
        "state": [{"anything-but": "initializing"}], "c-count": [{"numeric": [">", 0, "<=", 5]}],
        "d-count": [{"numeric": ["<", 10]}], "x-limit": [{"anything-but": [100, 200, 300]}],
        "source-ip": [{"cidr": "10.0.0.0/8"}]}}, True),
    ({"source": ["aws.ec2"], "$or": [{"detail": {"state": ["stopped"]}}, {"detail": {"c-count": [5]}}]}, True),
    ({"source": ["aws.ec2"], "detail": {"$or": [{"state": ["stopped"]}, {"c-count": [6]}]}}, False),
]


@pytest.mark.parametrize(("pattern", "expected"), DOCUMENTED)
def test_documented_examples(pattern, expected):
    assert squall.test_event_pattern(pattern, EVENT) is expected


def event(**detail):
    return {**EVENT, "detail": detail}


CORNERS = [
    # numbers and strings never equal each other; numbers compare as numbers
    ({"detail": {"n": [5]}}, event(n=5.0), True),
    ({"detail": {"n": ["5"]}}, event(n=5), False),
    ({"detail": {"n": [5]}}, event(n="5"), False),
    ({"detail": {"n": [123456789012]}}, event(n=123456789012), True),  # out of numeric range: exact
    ({"detail": {"n": [{"numeric": ["=", 0.1]}]}}, event(n=0.1000001), True),  # 6 decimal places
    ({"detail": {"n": [{"numeric": ["<", 1e10]}]}}, event(n=1), "invalid"),
    ({"detail": {"n": [{"numeric": [">", 0]}]}}, event(n=True), False),  # booleans are not numbers
    # null, booleans
    ({"detail": {"n": [None]}}, event(n=None), True),
    ({"detail": {"n": [None]}}, event(), False),
    ({"detail": {"n": [True]}}, event(n=1), False),
    ({"detail": {"n": [{"exists": True}]}}, event(n=None), True),
    # arrays in the event: any element
    ({"detail": {"tags": ["b"]}}, event(tags=["a", "b"]), True),
    ({"detail": {"tags": [{"anything-but": "a"}]}}, event(tags=["a", "b"]), True),
    ({"detail": {"tags": [{"anything-but": "a"}]}}, event(tags=["a"]), False),
    ({"detail": {"tags": [{"exists": False}]}}, event(tags=[]), True),  # an empty array has no value
    ({"detail": {"tags": [{"exists": True}]}}, event(tags=[]), False),
    # exists only on leaves
    ({"detail": {"c": [{"exists": True}]}}, event(c={"c1": 100}), False),
    ({"detail": {"c": [{"exists": False}]}}, event(c={"c1": 100}), True),
    # arrays of objects: one element must satisfy the whole sub-pattern (array consistency)
    ({"detail": {"people": {"first": ["Anna"]}}}, event(people=[{"first": "John"}, {"first": "Anna"}]), True),
    ({"detail": {"people": {"first": ["Anna"], "last": ["Jones"]}}},
     event(people=[{"first": "Anna", "last": "Smith"}, {"first": "Peter", "last": "Jones"}]), False),
    ({"detail": {"people": {"first": ["Anna"], "last": ["Smith"]}}},
     event(people=[[{"first": "Anna", "last": "Smith"}]]), True),
    # case rules
    ({"source": ["AWS.EC2"]}, EVENT, False),
    ({"source": [{"prefix": "AWS"}]}, EVENT, False),
    # anything-but only matches a present field; over strings it passes numbers
    ({"detail": {"missing": [{"anything-but": "x"}]}}, EVENT, False),
    ({"detail": {"c-count": [{"anything-but": "x"}]}}, EVENT, True),
    ({"detail": {"state": [{"anything-but": [1, 2]}]}}, EVENT, False),
    # IPv6 and wildcard escapes
    ({"detail": {"ip": [{"cidr": "2001:db8::/32"}]}}, event(ip="2001:db8::1"), True),
    ({"detail": {"ip": [{"cidr": "2001:db8::/32"}]}}, event(ip="10.0.0.1"), False),
    ({"detail": {"p": [{"wildcard": "a\\*b"}]}}, event(p="a*b"), True),
    ({"detail": {"p": [{"wildcard": "a\\*b"}]}}, event(p="axb"), False),
    ({"detail": {"p": [{"wildcard": "*"}]}}, event(p=""), True),
    # a sub-pattern over a scalar sees nothing below it
    ({"detail": {"state": {"x": ["y"]}}}, EVENT, False),
]


@pytest.mark.parametrize(("pattern", "document", "expected"), CORNERS)
def test_corners(pattern, document, expected):
    if expected == "invalid":
        with pytest.raises(InvalidEventPattern):
            squall.test_event_pattern(pattern, document)
    else:
        assert squall.test_event_pattern(pattern, document) is expected


INVALID = [
    ('{"source": "aws.ec2"}', '"source" must be an object or an array (at source)'),
    ({"source": []}, "Empty arrays are not allowed (at source)"),
    ({"detail": {}}, "Empty objects are not allowed (at detail)"),
    ([1], "Filter is not an object"),
    ("{nope", "the event pattern is not valid JSON"),
    ({"a": [[1]]}, "Match value must be String, number, true, false, or null (at a[0])"),
    ({"a": [{"prefix": 1}]}, "prefix match pattern must be a string (at a[0].prefix)"),
    ({"a": [{"prefix": "x", "suffix": "y"}]}, "Only one key allowed in match expression (at a[0])"),
    ({"a": [{"contains": "x"}]}, "Unrecognized match type contains (at a[0])"),
    ({"a": [{"numeric": [">", 5, "<", 1]}]}, "Bottom must be less than top (at a[0].numeric)"),
    ({"a": [{"numeric": ["=", "5"]}]}, "Value of = must be numeric (at a[0].numeric)"),
    ({"a": [{"numeric": ["!=", 5]}]}, "Unrecognized numeric range operator: != (at a[0].numeric)"),
    ({"a": [{"numeric": ["<", 5, ">", 1]}]}, "Too many elements in numeric expression (at a[0].numeric)"),
    ({"a": [{"numeric": [">", 5, ">", 9]}]}, "Bad numeric range operator: > (at a[0].numeric)"),
    ({"a": [{"numeric": [">", 6e9]}]}, "Value must be between -5.0E9 and 5.0E9, inclusive"),
    ({"a": [{"exists": "yes"}]}, "exists match pattern must be either true or false. (at a[0])"),
    ({"a": [{"anything-but": [1, "x"]}]}, "either all values are number or string, mixed type is not supported"),
    ({"a": [{"anything-but": [None]}]}, "Inside anything but list, start|null|boolean is not supported."),
    ({"a": [{"anything-but": {"prefix": ""}}]}, "Null prefix/suffix not allowed (at a[0].anything-but.prefix)"),
    ({"a": [{"anything-but": {"numeric": [">", 1]}}]}, "Unsupported anything-but pattern: numeric"),
    ({"a": [{"wildcard": "a**b"}]}, "Consecutive wildcard characters at pos 2 (at a[0].wildcard)"),
    ({"a": [{"wildcard": "a\\b"}]}, "Invalid escape character at pos 1 (at a[0].wildcard)"),
    ({"a": [{"cidr": "10.0.0.1"}]}, "Malformed CIDR, one '/' required"),
    ({"a": [{"cidr": "10.0.0.300/24"}]}, "Nonstandard IP address"),
    ({"$or": [{"a": ["x"]}]}, "There must have at least 2 Objects in $or relationship (at $or)"),
    ({"$or": {"a": ["x"]}}, "It must be an Array followed with $or (at $or)"),
    ({"$or": [{"a": ["x"]}, {"prefix": ["y"]}]}, "prefix is a reserved field name which cannot be used inside $or"),
    ({"a": ["x" * 5000]}, "over the limit of 4096"),
]


@pytest.mark.parametrize(("pattern", "reason"), INVALID)
def test_invalid_patterns_name_the_part_and_the_reason(pattern, reason):
    with pytest.raises(InvalidEventPattern) as caught:
        event_pattern(pattern)
    assert str(caught.value).startswith("Event pattern is not valid. Reason: ")
    assert reason in str(caught.value)


def test_test_event_pattern_takes_json_text_and_checks_the_event():
    assert squall.test_event_pattern('{"source": ["aws.ec2"]}', '{"id": "1", "account": "1", "source": "aws.ec2", '
                                     '"time": "t", "region": "r", "resources": [], "detail-type": "x"}') is True
    with pytest.raises(InvalidEventPattern, match="Parameter\\(s\\) id, account"):
        squall.test_event_pattern({"source": ["aws.ec2"]}, {"source": "aws.ec2"})
    with pytest.raises(InvalidEventPattern, match="Event is not valid JSON"):
        squall.test_event_pattern({"source": ["aws.ec2"]}, "{")
    assert issubclass(InvalidEventPattern, squall.errors.ConfigError)
