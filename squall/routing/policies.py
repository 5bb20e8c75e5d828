"""SNS subscription filter policies: compiled, checked as SNS checks them, and tested.

The language SNS documents: exact strings and numbers, `prefix`, `suffix`,
`equals-ignore-case`, `anything-but` (values, `prefix`, `suffix`), `numeric` (=, <, <=, >,
>= and ranges), `exists`, `cidr`, `$or`; nested keys only with the `MessageBody` scope.
Numbers compare at 5 decimal places within +-1e9. SNS's limits: five top-level keys, a
total combination of values of at most 150, 256 KB of JSON.

A policy is matched against a *document*: for the `MessageAttributes` scope, the message
attributes as Publish takes them turned into `{name: value}` (`String` as text,
`String.Array` as the array it encodes, `Number` as a number, `Binary` ignored, as SNS
ignores it); for `MessageBody`, the message parsed as a JSON object (a message that is not
one matches nothing).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from squall.errors import ConfigError, InvalidFilterPolicy
from squall.routing.grammar import OPERATORS, Dialect, compile_pattern, load
from squall.routing.tree import Condition, Pattern
from squall.routing.values import Leaf, NumberModel

MAX_KEYS = 5
MAX_COMBINATIONS = 150
MAX_POLICY_SIZE = 256 * 1024

PREFIX = "Invalid parameter: FilterPolicy: "


class FilterScope(StrEnum):
    MESSAGE_ATTRIBUTES = "MessageAttributes"
    MESSAGE_BODY = "MessageBody"


def _dialect(nested: bool) -> Dialect:
    return Dialect(error=InvalidFilterPolicy, prefix=PREFIX, numbers=NumberModel(1e9, 5),
                   operators=OPERATORS - {"wildcard"}, anything_but=frozenset({"prefix", "suffix"}),
                   affix_ignore_case=False, nested=nested, max_size=MAX_POLICY_SIZE, literal_range=True)


DIALECTS = {FilterScope.MESSAGE_ATTRIBUTES: _dialect(nested=False), FilterScope.MESSAGE_BODY: _dialect(nested=True)}


@dataclass(frozen=True)
class FilterPolicy:
    """A compiled filter policy and the part of a message it looks at."""

    pattern: Pattern
    scope: FilterScope

    def document(self, message_attributes: Mapping[str, Mapping[str, Any]] | None,
                 body: str | None) -> dict[str, Any] | None:
        """What the policy is matched against (None: nothing can match)."""
        if self.scope is FilterScope.MESSAGE_ATTRIBUTES:
            return attribute_document(message_attributes or {})
        return body_document(body)

    def matches(self, message_attributes: Mapping[str, Mapping[str, Any]] | None = None,
                body: str | None = None) -> bool:
        document = self.document(message_attributes, body)
        return document is not None and self.pattern.matches(document)


def filter_scope(scope: str | FilterScope) -> FilterScope:
    try:
        return FilterScope(scope)
    except ValueError:
        raise InvalidFilterPolicy(f"Invalid parameter: FilterPolicyScope: Invalid value [{scope}]. Please use "
                                  f"either MessageBody or MessageAttributes") from None


def filter_policy(policy: str | bytes | Mapping[str, Any],
                  scope: str | FilterScope = FilterScope.MESSAGE_ATTRIBUTES) -> FilterPolicy:
    """Compile a filter policy; InvalidFilterPolicy with SNS's reason if SNS would refuse it."""
    checked = filter_scope(scope)
    dialect = DIALECTS[checked]
    data, canonical = load(dialect, policy, "the filter policy")
    pattern = compile_pattern(dialect, data, canonical)
    _check_limits(pattern)
    return FilterPolicy(pattern, checked)


def test_filter_policy(policy: str | bytes | Mapping[str, Any],
                       message_attributes: Mapping[str, Mapping[str, Any]] | None = None, body: str | None = None,
                       scope: str | FilterScope = FilterScope.MESSAGE_ATTRIBUTES) -> bool:
    """Whether SNS would deliver a message with these attributes (in Publish's shape,
    `{"status": {"DataType": "String", "StringValue": "x"}}`) and this body to a
    subscription with `policy`. InvalidFilterPolicy for a policy SNS would refuse."""
    return filter_policy(policy, scope).matches(message_attributes, body)


test_filter_policy.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _check_limits(pattern: Pattern) -> None:
    """SNS's key and complexity limits. Keys are the top-level names (nested ones do not
    count, as SNS counts them); the combination is, per alternative of `$or`, the product
    over the policy's arrays of their number of values times their depth (SNS's formula),
    summed over the alternatives."""
    keys: set[str] = set()
    combinations = 0
    for node in pattern.alternatives:
        keys.update(key for key, _ in node.fields)
        keys.update(key for key, _ in node.children)
        product = 1
        for path, condition in node.flat():
            product *= _values(condition) * len(path)
        combinations += product
    if len(keys) > MAX_KEYS:
        raise InvalidFilterPolicy(f"{PREFIX}Filter policy can not have more than {MAX_KEYS} keys (it has "
                                  f"{len(keys)}: {', '.join(sorted(keys))})")
    if combinations > MAX_COMBINATIONS:
        raise InvalidFilterPolicy(f"{PREFIX}Filter policy is too complex: the total combination of values is "
                                  f"{combinations}, over SNS's limit of {MAX_COMBINATIONS}")


def _values(condition: Condition) -> int:
    return len(condition.matchers) + condition.exists + condition.absent


def attribute_document(message_attributes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Publish's message attributes as the values a policy sees; ConfigError names an
    attribute SNS's Publish would refuse."""
    document: dict[str, Any] = {}
    for name, attribute in message_attributes.items():
        # (a dict tested first: isinstance against an ABC is slow, and this runs per message)
        if not (type(attribute) is dict or isinstance(attribute, Mapping)) or \
                not isinstance(data_type := attribute.get("DataType"), str):
            raise ConfigError(f"message attribute {name!r} must be an object with a DataType")
        text = attribute.get("StringValue")
        if data_type == "String" and isinstance(text, str):
            document[name] = text
            continue
        kind = data_type.split(".", 1)
        base, label = kind[0], kind[1] if len(kind) > 1 else ""
        if base == "Binary":
            continue
        if base not in ("String", "Number") or not isinstance(text, str):
            raise ConfigError(f"message attribute {name!r}: DataType {attribute['DataType']!r} with a StringValue "
                              f"is expected (String, String.Array, Number or Binary)")
        if base == "Number":
            document[name] = _number(name, text)
        elif label == "Array":
            document[name] = _array(name, text)
        else:
            document[name] = text
    return document


def _number(name: str, text: str) -> float | int:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"message attribute {name!r}: {text!r} is not a Number") from None


def _array(name: str, text: str) -> list[Leaf]:
    try:
        values = json.loads(text)
    except ValueError:
        values = None
    if not isinstance(values, list) or any(isinstance(v, (list, dict)) for v in values):
        raise ConfigError(f"message attribute {name!r}: a String.Array must be a JSON array of strings, numbers, "
                          f"true, false or null, not {text[:80]!r}")
    return values


def body_document(body: str | None) -> dict[str, Any] | None:
    """The message as a JSON object, or None if it is not one."""
    if body is None:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None

