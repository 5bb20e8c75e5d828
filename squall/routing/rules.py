"""Many patterns matched at once, at a cost that grows far slower than their number.

AWS's event-ruler compiles every rule into one automaton over field paths and values, so
matching an event does not try each rule. `Rules` does the same in two steps:

1. *Index.* Every alternative of every pattern (after `$or` is expanded) is filed under
   the values of its *indexable* fields: exact values, `equals-ignore-case`, `prefix` and
   `suffix` (with or without case), in one dict per field path and kind. An event is
   walked along the indexed paths only; each of its values is looked up (a prefix index
   tries each prefix length it holds), and an alternative is a candidate when every one of
   its indexable fields was hit.
2. *Confirm.* Each candidate, and each alternative with no indexable field at all (only
   `numeric`, `anything-but`, `exists`, `cidr`, `wildcard`), is matched in full
   (`Node.match`), which also applies the array-consistency rule the index ignores.

The index never misses a match (a value that satisfies a field is found at its path), so
the result is exactly the set of rules whose pattern matches.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from squall.routing.tree import MISSING, Condition, Node, Path, Pattern, leaves_of, objects_of
from squall.routing.values import Affix, EqualsIgnoreCase, Exact, Leaf, NumberModel, is_number

K = TypeVar("K", bound=Hashable)


@dataclass(eq=False)
class _Values:
    """The alternatives filed under one field path, by the values that hit them."""

    strings: dict[str, set[int]] = field(default_factory=dict)
    #: numbers in the model's range, by their scaled form
    numbers: dict[int, set[int]] = field(default_factory=dict)
    #: numbers outside it, compared exactly
    literals: dict[float, set[int]] = field(default_factory=dict)
    constants: dict[bool | None, set[int]] = field(default_factory=dict)
    lowered: dict[str, set[int]] = field(default_factory=dict)
    #: prefix length -> prefix -> alternatives (case-sensitive, then lower-cased)
    prefixes: dict[int, dict[str, set[int]]] = field(default_factory=dict)
    prefixes_lowered: dict[int, dict[str, set[int]]] = field(default_factory=dict)
    suffixes: dict[int, dict[str, set[int]]] = field(default_factory=dict)
    suffixes_lowered: dict[int, dict[str, set[int]]] = field(default_factory=dict)
    model: NumberModel | None = None

    def indexable(self, condition: Condition) -> bool:
        if condition.exists or condition.absent or not condition.matchers:
            return False
        for matcher in condition.matchers:
            if type(matcher) is Exact and matcher.model is not None:
                if self.model is not None and matcher.model != self.model:
                    return False
            elif type(matcher) not in (Exact, EqualsIgnoreCase, Affix):
                return False
        return True

    def file(self, condition: Condition, alternative: int) -> None:
        for matcher in condition.matchers:
            if type(matcher) is Exact:
                value = matcher.value
                if type(value) is str:
                    self.strings.setdefault(value, set()).add(alternative)
                elif matcher.model is None:
                    self.constants.setdefault(value, set()).add(alternative)  # type: ignore[arg-type]
                else:
                    self.model = matcher.model
                    scaled = matcher.model.comparable(value)
                    if scaled is None:
                        self.literals.setdefault(float(value), set()).add(alternative)  # type: ignore[arg-type]
                    else:
                        self.numbers.setdefault(scaled, set()).add(alternative)
            elif type(matcher) is EqualsIgnoreCase:
                self.lowered.setdefault(matcher.text, set()).add(alternative)
            elif type(matcher) is Affix:
                if matcher.suffix:
                    table = self.suffixes_lowered if matcher.ignore_case else self.suffixes
                else:
                    table = self.prefixes_lowered if matcher.ignore_case else self.prefixes
                table.setdefault(len(matcher.text), {}).setdefault(matcher.text, set()).add(alternative)

    def weight(self, alternative: int) -> int:
        """How many alternatives share the buckets `alternative` is filed in here: the
        smaller, the better this field tells candidates apart."""
        total = 0
        tables: list[dict[Any, set[int]]] = [self.strings, self.numbers, self.literals, self.constants, self.lowered]
        for affixes in (self.prefixes, self.prefixes_lowered, self.suffixes, self.suffixes_lowered):
            tables.extend(affixes.values())
        for table in tables:
            for bucket in table.values():
                if alternative in bucket:
                    total += len(bucket)
        return total

    def hits(self, leaves: list[Leaf], into: set[int]) -> None:
        """Add the alternatives that some leaf hits."""
        for leaf in leaves:
            if type(leaf) is str:
                self._strings(leaf, into)
            elif is_number(leaf):
                scaled = self.model.comparable(leaf) if self.model is not None else None
                found = self.numbers.get(scaled) if scaled is not None else self.literals.get(leaf)  # type: ignore[arg-type]
                if found:
                    into |= found
            else:
                found = self.constants.get(leaf)  # type: ignore[arg-type]
                if found:
                    into |= found

    def _strings(self, leaf: str, into: set[int]) -> None:
        found = self.strings.get(leaf)
        if found:
            into |= found
        lower = leaf.lower() if self.lowered or self.prefixes_lowered or self.suffixes_lowered else leaf
        if self.lowered and (found := self.lowered.get(lower)):
            into |= found
        for table, text in ((self.prefixes, leaf), (self.prefixes_lowered, lower)):
            for length, by_text in table.items():
                if len(text) >= length and (found := by_text.get(text[:length])):
                    into |= found
        for table, text in ((self.suffixes, leaf), (self.suffixes_lowered, lower)):
            for length, by_text in table.items():
                if len(text) >= length and (found := by_text.get(text[len(text) - length:])):
                    into |= found


@dataclass(eq=False)
class _Step:
    """One key of the indexed paths: the values filed at this path, and the keys below."""

    #: its number in the index (hits are kept by it)
    number: int
    values: _Values | None = None
    below: dict[str, _Step] = field(default_factory=dict)
    #: the alternatives whose key field is this one
    keyed: set[int] = field(default_factory=set)


class Rules(Generic[K]):
    """Compiled patterns by rule id: `matching(document)` is the ids whose pattern matches.

    `add` and `remove` rebuild the index on the next match (rules change at declaration,
    events arrive all the time). The patterns come from `squall.routing.event_pattern` or
    `squall.routing.filter_policy(...).pattern`; documents are parsed JSON (an event, or a
    `FilterPolicy.document`). Not thread-safe while rules change.
    """

    def __init__(self) -> None:
        self._patterns: dict[K, Pattern] = {}
        self._index: _Index[K] | None = None

    def add(self, rule_id: K, pattern: Pattern) -> None:
        """File `pattern` under `rule_id`, replacing the rule's previous pattern."""
        self._patterns[rule_id] = pattern
        self._index = None

    def remove(self, rule_id: K) -> None:
        self._patterns.pop(rule_id, None)
        self._index = None

    def __len__(self) -> int:
        return len(self._patterns)

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._patterns

    def __iter__(self) -> Iterator[K]:
        return iter(self._patterns)

    def matching(self, document: Any) -> set[K]:
        """The ids of the rules whose pattern matches `document`."""
        if self._index is None:
            self._index = _Index(self._patterns)
        return self._index.matching(document)


_NONE: frozenset[int] = frozenset()
#: a path crosses an array of objects: only `Node.match` knows which element to look at
_ARRAY: Any = object()


def _lookup(document: Any, path: Path) -> Any:
    """The value at `path`, MISSING, or _ARRAY if an array of objects lies on the way."""
    value = document
    for key in path:
        if type(value) is list:
            return _ARRAY if objects_of(value) else MISSING
        if type(value) is not dict:
            return MISSING
        value = value.get(key, MISSING)
    return value


@dataclass(eq=False, slots=True)
class _Alternative(Generic[K]):
    rule: K
    node: Node
    #: the steps of its indexed fields; the first is its key, the most selective
    steps: list[_Step]
    #: its fields the index cannot check, confirmed one by one
    rest: list[tuple[Path, Condition]]


class _Index(Generic[K]):
    """Each alternative is a candidate when its key field is hit; it matches when its other
    indexed fields were hit too and its remaining fields hold. Where an array of objects
    lies on one of its paths, `Node.match` decides instead (array consistency)."""

    def __init__(self, patterns: dict[K, Pattern]):
        self.alternatives: list[_Alternative[K]] = []
        #: alternatives with no indexed field: matched in full every time
        self.always: list[_Alternative[K]] = []
        self.steps = 1
        self.root = _Step(0)
        for rule_id, pattern in patterns.items():
            for node in pattern.alternatives:
                self._file(rule_id, node)
        for number, alternative in enumerate(self.alternatives):
            if alternative.steps:
                alternative.steps.sort(key=lambda step: step.values.weight(number) if step.values else 0)
                alternative.steps[0].keyed.add(number)
            else:
                self.always.append(alternative)
        #: per step, the alternatives keyed on it
        self.keyed = self._steps_keyed(self.root, {})

    def _file(self, rule_id: K, node: Node) -> None:
        number = len(self.alternatives)
        alternative = _Alternative(rule_id, node, [], [])
        for path, condition in node.flat():
            step = self._step(path) if _Values().indexable(condition) else None
            if step is not None and step.values is None:
                step.values = _Values()
            if step is not None and step.values is not None and step.values.indexable(condition):
                step.values.file(condition, number)
                alternative.steps.append(step)
            else:
                alternative.rest.append((path, condition))
        self.alternatives.append(alternative)

    def _step(self, path: Path) -> _Step:
        step = self.root
        for key in path:
            if key not in step.below:
                step.below[key] = _Step(self.steps)
                self.steps += 1
            step = step.below[key]
        return step

    def matching(self, document: Any) -> set[K]:
        hits: dict[int, set[int]] = {}
        arrayed: set[int] = set()
        if type(document) is dict:
            self._walk(self.root.below, document, hits, arrayed, False)
        candidates: set[int] = set()
        keyed = self.keyed
        for step_id, found in hits.items():
            candidates |= found & keyed[step_id]
        matched: set[K] = set()
        alternatives = self.alternatives
        for number in candidates:
            alternative = alternatives[number]
            if alternative.rule not in matched and self._confirm(number, alternative, document, hits, arrayed):
                matched.add(alternative.rule)
        for alternative in self.always:
            if alternative.rule not in matched and alternative.node.match(document):
                matched.add(alternative.rule)
        return matched

    def _steps_keyed(self, step: _Step, into: dict[int, set[int]]) -> dict[int, set[int]]:
        into[step.number] = step.keyed
        for below in step.below.values():
            self._steps_keyed(below, into)
        return into

    @staticmethod
    def _confirm(number: int, alternative: _Alternative[K], document: Any, hits: dict[int, set[int]],
                 arrayed: set[int]) -> bool:
        steps = alternative.steps
        if arrayed and any(step.number in arrayed for step in steps):
            return alternative.node.match(document)
        for step in steps[1:]:  # the first, its key, was hit: it is a candidate
            if number not in hits.get(step.number, _NONE):
                return False
        for path, condition in alternative.rest:
            value = _lookup(document, path)
            if value is _ARRAY:
                return alternative.node.match(document)
            if not condition.test(value):
                return False
        return True

    def _walk(self, steps: dict[str, _Step], document: dict[str, Any], hits: dict[int, set[int]],
              arrayed: set[int], in_array: bool) -> None:
        for key, step in steps.items():
            value = document.get(key, MISSING)
            if value is MISSING:
                continue
            if step.values is not None:
                leaves = leaves_of(value)
                if leaves:
                    if in_array:
                        arrayed.add(step.number)
                    step.values.hits(leaves, hits.setdefault(step.number, set()))
            if step.below:
                if type(value) is dict:
                    self._walk(step.below, value, hits, arrayed, in_array)
                elif type(value) is list:
                    for element in objects_of(value):
                        self._walk(step.below, element, hits, arrayed, True)
