"""SNS filter policies, case for case: the examples of SNS's filter-policy documentation."""

from __future__ import annotations

import json

import pytest

import squall
from squall import InvalidFilterPolicy
from squall.errors import ConfigError


def s(value):
    return {"DataType": "String", "StringValue": value}


def n(value):
    return {"DataType": "Number", "StringValue": str(value)}


def a(values):
    return {"DataType": "String.Array", "StringValue": json.dumps(values)}


INTERESTS = {"customer_interests": ["rugby", "tennis"]}

ATTRIBUTES = [
    # exact string matching
    (INTERESTS, {"customer_interests": s("rugby")}, True),
    (INTERESTS, {"customer_interests": s("baseball")}, False),
    (INTERESTS, {"customer_interests": a(["rugby", "tennis"])}, True),
    (INTERESTS, {"customer_interests": a(["baseball"])}, False),
    (INTERESTS, {}, False),
    # anything-but
    ({"customer_interests": [{"anything-but": ["rugby", "tennis"]}]}, {"customer_interests": s("baseball")}, True),
    ({"customer_interests": [{"anything-but": ["rugby", "tennis"]}]},
     {"customer_interests": a(["rugby", "baseball"])}, True),
    ({"customer_interests": [{"anything-but": ["rugby", "tennis"]}]}, {"customer_interests": s("rugby")}, False),
    ({"customer_interests": [{"anything-but": ["rugby", "tennis"]}]}, {}, False),
    ({"customer_interests": [{"anything-but": ["rugby"]}, {"exists": False}]}, {}, True),
    ({"event_type": [{"anything-but": {"prefix": "order-"}}]}, {"event_type": s("product-cancelled")}, True),
    ({"event_type": [{"anything-but": {"prefix": "order-"}}]}, {"event_type": s("order-cancelled")}, False),
    ({"event_type": [{"anything-but": {"suffix": "ed"}}]}, {"event_type": s("order-cancelled")}, False),
    # prefix, suffix, equals-ignore-case
    ({"customer_interests": [{"prefix": "bas"}]}, {"customer_interests": s("baseball")}, True),
    ({"customer_interests": [{"prefix": "bas"}]}, {"customer_interests": s("rugby")}, False),
    ({"customer_interests": [{"suffix": "ball"}]}, {"customer_interests": s("baseball")}, True),
    ({"customer_interests": [{"equals-ignore-case": "tennis"}]}, {"customer_interests": s("TENNIS")}, True),
    # numbers
    ({"price_usd": [{"numeric": ["=", 301.5]}]}, {"price_usd": n("3.015e2")}, True),
    ({"price_usd": [{"numeric": ["=", 301.5]}]}, {"price_usd": n(301.5)}, True),
    ({"price": [{"anything-but": [100, 500]}]}, {"price": n(101)}, True),
    ({"price": [{"anything-but": [100, 500]}]}, {"price": n(100)}, False),
    ({"price_usd": [{"numeric": ["<", 0]}]}, {"price_usd": n(-1)}, True),
    ({"price_usd": [{"numeric": [">", 0, "<=", 150]}]}, {"price_usd": n(150)}, True),
    ({"price_usd": [{"numeric": [">", 0, "<=", 150]}]}, {"price_usd": n(150.00001)}, False),
    ({"price_usd": [{"numeric": [">", 0, "<=", 150]}]}, {"price_usd": s("100")}, False),
    ({"price": [100]}, {"price": n(100.0)}, True),
    # key matching
    ({"store": [{"exists": True}]}, {"store": s("example_corp")}, True),
    ({"store": [{"exists": True}]}, {"event": s("order_placed")}, False),
    ({"store": [{"exists": False}]}, {"event": s("order_placed")}, True),
    # IP addresses
    ({"source_ip": [{"cidr": "10.0.0.0/24"}]}, {"source_ip": s("10.0.0.255")}, True),
    ({"source_ip": [{"cidr": "10.0.0.0/24"}]}, {"source_ip": s("10.1.1.0")}, False),
    # AND / OR / $or
    ({"customer_interests": ["rugby"], "price_usd": [{"numeric": [">", 100]}]},
     {"customer_interests": s("rugby"), "price_usd": n(350)}, True),
    ({"customer_interests": ["rugby"], "price_usd": [{"numeric": [">", 100]}]},
     {"customer_interests": s("rugby"), "price_usd": n(50)}, False),
    ({"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}]},
     {"source": s("aws.cloudwatch"), "namespace": s("AWS/EC2")}, True),
    ({"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}]},
     {"source": s("aws.cloudwatch"), "namespace": s("AWS/ES")}, False),
    # Binary attributes are ignored
    ({"blob": [{"exists": False}]}, {"blob": {"DataType": "Binary", "BinaryValue": "AAE="}}, True),
]


@pytest.mark.parametrize(("policy", "attributes", "expected"), ATTRIBUTES)
def test_attribute_scope(policy, attributes, expected):
    assert squall.test_filter_policy(policy, attributes) is expected


BODIES = [
    ({"customer_interests": ["rugby", "tennis"]}, {"customer_interests": "rugby"}, True),
    ({"customer_interests": [{"anything-but": ["rugby", "tennis"]}]}, {"customer_interests": ["rugby", "baseball"]},
     True),
    ({"price_usd": [{"numeric": ["=", 301.5]}]}, {"price_usd": 3.015e2}, True),
    ({"store": {"city": [{"prefix": "New"}], "zip": [{"exists": True}]}}, {"store": {"city": "New York", "zip": 1}},
     True),
    ({"store": {"city": [{"prefix": "New"}]}}, {"store": {"city": "Boston"}}, False),
    ({"store": {"city": [{"prefix": "New"}]}}, "not JSON", False),
]


@pytest.mark.parametrize(("policy", "body", "expected"), BODIES)
def test_body_scope(policy, body, expected):
    text = body if isinstance(body, str) else json.dumps(body)
    assert squall.test_filter_policy(policy, body=text, scope="MessageBody") is expected


INVALID = [
    ({"store": {"city": ["x"]}}, "MessageAttributes", "nested filter policies are only supported with the MessageBody"),
    ({f"k{i}": ["x"] for i in range(6)}, "MessageAttributes", "Filter policy can not have more than 5 keys"),
    ({"a": list(range(10)), "b": list(range(10)), "c": list(range(2))}, "MessageAttributes",
     "the total combination of values is 200, over SNS's limit of 150"),
    ({"a": {"b": {"c": list(range(4))}}, "d": {"e": list(range(3))}}, "MessageBody", None),  # 3x4 x 2x3 = 72
    ({"a": {"b": {"c": list(range(7))}}, "d": {"e": list(range(5))}}, "MessageBody", "is 210, over"),
    ({"a": [{"wildcard": "x*"}]}, "MessageAttributes", "Unrecognized match type wildcard"),
    ({"a": [{"numeric": ["<", "100"]}]}, "MessageAttributes", "Value of < must be numeric"),
    ({"a": [2e9]}, "MessageAttributes", "Value must be between -1.0E9 and 1.0E9, inclusive (at a[0])"),
    ({"a": [{"anything-but": {"wildcard": "x"}}]}, "MessageAttributes", "Unsupported anything-but pattern: wildcard"),
    ({"a": ["x" * 300_000]}, "MessageAttributes", "over the limit of 262144"),
    ({"a": ["x"]}, "Body", "FilterPolicyScope: Invalid value [Body]"),
]


@pytest.mark.parametrize(("policy", "scope", "reason"), INVALID)
def test_invalid_policies_give_the_reason(policy, scope, reason):
    if reason is None:
        assert squall.test_filter_policy(policy, body="{}", scope=scope) is False
        return
    with pytest.raises(InvalidFilterPolicy) as caught:
        squall.test_filter_policy(policy, {}, scope=scope)
    assert str(caught.value).startswith("Invalid parameter: ")
    assert reason in str(caught.value)


def test_malformed_message_attributes_are_refused():
    with pytest.raises(ConfigError, match="String.Array must be a JSON array"):
        squall.test_filter_policy({"a": ["x"]}, {"a": {"DataType": "String.Array", "StringValue": "x"}})
    with pytest.raises(ConfigError, match="is not a Number"):
        squall.test_filter_policy({"a": [1]}, {"a": {"DataType": "Number", "StringValue": "one"}})
