"""A compiled pattern: alternatives of nested fields, matched against a parsed JSON document.

`$or` is expanded when a pattern is compiled, so a `Pattern` is a disjunction of
`Node`s free of it, each a conjunction of its fields. Matching walks the document and the
node together, which gives EventBridge's array-consistent semantics (event-ruler's
`rulesForJSONEvent`): where the document holds an array of objects, one element must
satisfy the whole sub-pattern below that point, so two fields never match from different
elements of the same array.

What a field sees, as AWS defines it: an array offers each of its (nested) scalar elements;
a field whose value is an object, or an empty array, has no leaf value, so `exists` is
false for it (exists "only works on leaf nodes"); a sub-pattern over a value that is not an
object sees every field below it absent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from squall.routing.values import Leaf, Matcher

#: a field the document does not have
MISSING: Any = object()

Path = tuple[str, ...]


def leaves_of(value: Any) -> list[Leaf]:
    """The scalar values a field offers: itself, or the scalars of an array, flattened."""
    if value is MISSING or type(value) is dict:
        return []
    if type(value) is not list:
        return [value]
    found: list[Leaf] = []
    for item in value:
        if type(item) is list:
            found.extend(leaves_of(item))
        elif type(item) is not dict:
            found.append(item)
    return found


def objects_of(value: list[Any]) -> list[dict[str, Any]]:
    """The objects of an array, nested arrays flattened."""
    found: list[dict[str, Any]] = []
    for item in value:
        if type(item) is dict:
            found.append(item)
        elif type(item) is list:
            found.extend(objects_of(item))
    return found


@dataclass(frozen=True, slots=True)
class Condition:
    """One field's array of values: it matches when any of them does (OR)."""

    matchers: tuple[Matcher, ...]
    #: `{"exists": true}` is among the values
    exists: bool = False
    #: `{"exists": false}` is among the values
    absent: bool = False

    def test(self, value: Any) -> bool:
        leaves = leaves_of(value)
        if not leaves:
            return self.absent
        if self.exists:
            return True
        return any(matcher.matches(leaf) for leaf in leaves for matcher in self.matchers)


@dataclass(frozen=True, slots=True)
class Node:
    """A conjunction: every leaf field and every nested sub-pattern must match."""

    fields: tuple[tuple[str, Condition], ...]
    children: tuple[tuple[str, Node], ...] = ()

    def match(self, document: Any) -> bool:
        """Whether `document` (an object, or MISSING) satisfies this node."""
        get = document.get if type(document) is dict else None
        for key, condition in self.fields:
            if not condition.test(MISSING if get is None else get(key, MISSING)):
                return False
        for key, child in self.children:
            value = MISSING if get is None else get(key, MISSING)
            if type(value) is list:
                elements = objects_of(value)
                if elements:
                    if not any(child.match(element) for element in elements):
                        return False
                    continue
            if not child.match(value if type(value) is dict else MISSING):
                return False
        return True

    def flat(self, prefix: Path = ()) -> Iterator[tuple[Path, Condition]]:
        """Every leaf field with its path from the top of the document."""
        for key, condition in self.fields:
            yield (*prefix, key), condition
        for key, child in self.children:
            yield from child.flat((*prefix, key))


@dataclass(frozen=True, slots=True)
class Pattern:
    """A compiled event pattern or filter policy: it matches when one alternative does."""

    alternatives: tuple[Node, ...]
    #: the pattern as given, as canonical JSON text
    source: str

    def matches(self, document: Any) -> bool:
        return any(node.match(document) for node in self.alternatives)
