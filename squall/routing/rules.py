"""Many patterns matched at once, at a cost that grows far slower than their number.

AWS's event-ruler compiles every rule into one automaton over field paths and values, so
matching an event does not try each rule. `Rules` does the same with bitmasks: every
alternative of every pattern (after `$or` is expanded) is one bit, and every field path
that some alternative tests is one step of a tree of paths, holding

- `need`: the alternatives with an indexed condition on this path, and a `FieldIndex`
  (`squall.routing.index`) of those conditions' matchers;
- `exists`, `absent`: which of them `{"exists": true}` / `{"exists": false}` satisfies.

Matching walks the event along the tree once. At each path the event has, one call
(`_checker`) looks its values up in that path's index, once each, and answers the
alternatives that need the path but were not satisfied (for a path of exact strings alone,
a dict holds that answer per string); a path the event lacks fails, in one mask, every
alternative that requires it or a path below it. What survives, `~failed`, matched. Two
kinds of alternative are settled one by one instead, among the survivors only:

- those with a condition the index cannot answer (two `anything-but`s in one field:
  `index.indexable`): that condition is tested on its field;
- those with a path below an array of objects in this event: `Node.match` decides, since
  one element must satisfy the whole sub-pattern below the array (array consistency),
  which a flat look-up cannot see.

Above the index, `_Partition` splits many alternatives by the exact strings they require
at one top-level key (a bus rule's `source`), so an event walks only its group's index.

The index answers each indexed condition exactly as `Condition.test` does, so the result is
exactly the set of rules whose pattern matches (`tests/unit/routing/test_rules_index.py`
checks it against rule-by-rule matching on generated patterns and events).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from squall.routing.index import FieldIndex, bits, indexable
from squall.routing.tree import MISSING, Condition, Node, Path, Pattern, leaves_of, objects_of
from squall.routing.values import Exact

K = TypeVar("K", bound=Hashable)

#: fewer alternatives than this are not partitioned: one walk costs less than the split
PARTITION_AT = 64
#: a partition files at most this many times the alternatives it splits
SPREAD = 3


class Rules(Generic[K]):
    """Compiled patterns by rule id: `matching(document)` is the ids whose pattern matches.

    `add` and `remove` rebuild the index on the next match (rules change at declaration,
    events arrive all the time). The patterns come from `squall.routing.event_pattern` or
    `squall.routing.filter_policy(...).pattern`; documents are parsed JSON (an event, or a
    `FilterPolicy.document`). Not thread-safe while rules change.
    """

    def __init__(self) -> None:
        self._patterns: dict[K, Pattern] = {}
        self._index: _Matcher[K] | None = None

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
            self._index = _compile([(rule_id, node) for rule_id, pattern in self._patterns.items()
                                    for node in pattern.alternatives], frozenset())
        return self._index.matching(document)


class _Matcher(Protocol[K]):
    def matching(self, document: Any) -> set[K]: ...


def _compile(entries: list[tuple[K, Node]], used: frozenset[str]) -> _Matcher[K]:
    """The matcher of these alternatives (rule id, node): an `_Index`, or a `_Partition`
    when enough of them require exact strings at one top-level key not in `used`."""
    if len(entries) >= PARTITION_AT:
        partition = _Partition.split(entries, used)
        if partition is not None:
            return partition
    return _Index(entries)


def _exact_strings(condition: Condition) -> tuple[str, ...] | None:
    """The strings a condition of exact strings alone allows (None for any other)."""
    if condition.exists or condition.absent or not condition.matchers:
        return None
    values = []
    for matcher in condition.matchers:
        if type(matcher) is not Exact or type(matcher.value) is not str:
            return None
        values.append(matcher.value)
    return tuple(values)


class _Partition(Generic[K]):
    """Alternatives split by the string an event holds at one top-level key, as
    event-ruler's first transition does: every bit mask then spans one group's
    alternatives, not all of them, and the walk visits the paths that group tests.

    Each group holds the alternatives that allow its string there, and the `rest` (those
    with no exact condition on the key), so an event walks one index: its string's group,
    or `fallback` (the rest alone) for an event without a known string there. An event
    holding an array there walks the group of each string in it."""

    def __init__(self, key: str, groups: dict[str, _Matcher[K]], fallback: _Matcher[K] | None):
        self.key = key
        self.groups = groups
        self.fallback = fallback

    @classmethod
    def split(cls, entries: list[tuple[K, Node]], used: frozenset[str]) -> _Partition[K] | None:
        """The partition on the key that most alternatives require exact strings at, if
        it has two groups or more and files at most `SPREAD` times as many alternatives as
        given (the rest is copied into every group; an alternative allowing several strings
        is filed in each of their groups)."""
        counts: dict[str, int] = {}
        for _, node in entries:
            for key, condition in node.fields:
                if key not in used and _exact_strings(condition) is not None:
                    counts[key] = counts.get(key, 0) + 1
        if not counts:
            return None
        key = max(counts, key=counts.__getitem__)
        by_string: dict[str, list[tuple[K, Node]]] = {}
        rest: list[tuple[K, Node]] = []
        for entry in entries:
            strings = next((_exact_strings(c) for name, c in entry[1].fields if name == key), None)
            if strings is None:
                rest.append(entry)
            else:
                for text in dict.fromkeys(strings):
                    by_string.setdefault(text, []).append(entry)
        filed = sum(len(group) for group in by_string.values()) + len(rest) * (len(by_string) + 1)
        if len(by_string) < 2 or filed > SPREAD * len(entries):
            return None
        used = used | {key}
        return cls(key, {text: _compile(group + rest, used) for text, group in by_string.items()},
                   _compile(rest, used) if rest else None)

    def matching(self, document: Any) -> set[K]:
        value = document.get(self.key) if type(document) is dict else None
        if type(value) is str:
            group = self.groups.get(value)
            if group is not None:
                return group.matching(document)
        elif type(value) is list:
            matched: set[K] = set()
            walked = False
            for text in {leaf for leaf in leaves_of(value) if type(leaf) is str}:
                group = self.groups.get(text)
                if group is not None:
                    matched |= group.matching(document)
                    walked = True
            if walked:
                return matched
        return self.fallback.matching(document) if self.fallback is not None else set()


@dataclass(eq=False)
class _Step:
    """One key of the tested paths: the conditions at this path, and the keys below."""

    below: dict[str, _Step] = field(default_factory=dict)
    #: the alternatives with an indexed condition here, and the matchers of those conditions
    need: int = 0
    index: FieldIndex | None = None
    exists: int = 0
    absent: int = 0
    #: the alternatives with a condition here the index cannot answer
    tested: int = 0

    def freeze(self) -> tuple[int, int, _Frozen]:
        """This path's masks over its subtree, as the walk reads them: (required at or
        below, testing at or below, the frozen step)."""
        required = self.need & ~self.absent
        required_below, beneath = required, 0
        leaves, branches = [], []
        for key, child in self.below.items():
            child_required, testing, frozen = child.freeze()
            required_below |= child_required
            beneath |= testing
            if frozen.leaves or frozen.branches:
                branches.append((key, frozen))
            elif frozen.check is not None:  # else no alternative needs the path (only tests it)
                leaves.append((key, frozen.check, frozen.missing))
        frozen = _Frozen(_checker(self.need, self.exists, self.absent, self.index), required_below,
                         required_below & ~required, beneath, tuple(leaves), tuple(branches))
        return required_below, beneath | self.need | self.tested, frozen


class _Frozen(NamedTuple):
    """A step as the walk reads it: a tuple, unpacked in one go at each key."""

    #: the alternatives of `need` that a value here fails (None: no alternative needs it)
    check: Callable[[Any], int] | None
    #: those a missing field fails: `required` here and at every path below
    missing: int
    #: those a field that has no object here fails: `required` at every path below
    flat: int
    #: the alternatives that test anything (indexed or not) strictly below this path
    beneath: int
    #: the keys below without keys below them: (key, its check, its `missing`)
    leaves: tuple[tuple[str, Callable[[Any], int], int], ...]
    #: the others
    branches: tuple[tuple[str, _Frozen], ...]


def _checker(need: int, exists: int, absent: int, index: FieldIndex | None) -> Callable[[Any], int] | None:
    """The function from a field's value (present) to the alternatives of `need` it fails:
    a value with no leaf (an object, an empty array) fails those not satisfied by absence;
    one with leaves, those that neither `exists` nor a matcher of theirs satisfies. A scalar
    is answered in one or two calls: strings by a dict of failures where a table holds
    them, or by the string look-ups alone where only strings can match."""
    if not need:
        return None
    required = need & ~absent
    unmet = need & ~exists
    if index is None:
        return lambda value: (required if not leaves_of(value) else unmet) \
            if type(value) is dict or type(value) is list else unmet
    probe = index.freeze()

    def of_leaves(value: Any) -> int:
        leaves = leaves_of(value)
        if not leaves:
            return required
        satisfied = 0
        for leaf in leaves:
            satisfied |= probe(leaf)
        return unmet & ~satisfied

    table = index.string_table()
    if table is not None:
        by_string, otherwise = table
        get = {text: unmet & ~satisfied for text, satisfied in by_string.items()}.get
        other = unmet & ~otherwise
        return lambda value: get(value, other) if type(value) is str else \
            of_leaves(value) if type(value) is dict or type(value) is list else unmet & ~probe(value)
    text = index.text_only()
    if text is not None:
        return lambda value: unmet & ~text(value) if type(value) is str else \
            of_leaves(value) if type(value) is dict or type(value) is list else unmet
    return lambda value: of_leaves(value) if type(value) is dict or type(value) is list else unmet & ~probe(value)


@dataclass(eq=False, slots=True)
class _Alternative(Generic[K]):
    rule: K
    node: Node
    #: its conditions the index cannot answer, tested one by one
    rest: list[tuple[Path, Condition]]


class _Index(Generic[K]):
    """The tree of paths over alternatives (rule id, node); see the module's docstring."""

    def __init__(self, entries: list[tuple[K, Node]]):
        self.alternatives: list[_Alternative[K]] = []
        #: the rule of each alternative, by its number
        self.rules: list[K] = []
        self.tree = _Step()
        #: alternatives settled by the masks alone, and those with conditions left to test
        self.settled = 0
        self.unsettled = 0
        for rule_id, node in entries:
            self._file(rule_id, node)
        self.root = self.tree.freeze()[2]

    def _file(self, rule_id: K, node: Node) -> None:
        bit = 1 << len(self.alternatives)
        alternative = _Alternative(rule_id, node, [])
        for path, condition in node.flat():
            step = self._step(path)
            if not indexable(condition):
                step.tested |= bit
                alternative.rest.append((path, condition))
                continue
            step.need |= bit
            if condition.exists:
                step.exists |= bit
            if condition.absent:
                step.absent |= bit
            if condition.matchers:
                if step.index is None:
                    step.index = FieldIndex()
                step.index.file(condition, bit)
        if alternative.rest:
            self.unsettled |= bit
        else:
            self.settled |= bit
        self.alternatives.append(alternative)
        self.rules.append(rule_id)

    def _step(self, path: Path) -> _Step:
        step = self.tree
        for key in path:
            step = step.below.setdefault(key, _Step())
        return step

    def matching(self, document: Any) -> set[K]:
        if type(document) is dict:
            failed, arrayed = _walk(self.root, document)
        else:
            failed, arrayed = self.root.missing, 0
        rules = self.rules
        undecided = failed | arrayed
        matched = {rules[number] for number in bits(self.settled & ~undecided)}
        if self.unsettled:
            for number in bits(self.unsettled & ~undecided):
                alternative = self.alternatives[number]
                if alternative.rule not in matched:
                    for path, condition in alternative.rest:
                        if not condition.test(_value_at(document, path)):
                            break
                    else:
                        matched.add(alternative.rule)
        if arrayed:
            for number in bits(arrayed & ~failed):
                alternative = self.alternatives[number]
                if alternative.rule not in matched and alternative.node.match(document):
                    matched.add(alternative.rule)
        return matched


def _walk(step: _Frozen, document: dict[str, Any]) -> tuple[int, int]:
    """(failed, arrayed): the alternatives some path under `document` (at `step`) fails,
    and those with a path below an array of objects (left to `Node.match`)."""
    failed = arrayed = 0
    get = document.get
    for key, check, missing in step.leaves:
        value = get(key, MISSING)
        failed |= missing if value is MISSING else check(value)
    for key, below in step.branches:
        value = get(key, MISSING)
        if value is MISSING:
            failed |= below.missing
            continue
        if below.check is not None:
            failed |= below.check(value)
        kind = type(value)
        if kind is dict:
            below_failed, below_arrayed = _walk(below, value)
            failed |= below_failed
            arrayed |= below_arrayed
        elif kind is list and objects_of(value):
            arrayed |= below.beneath
        else:
            failed |= below.flat
    return failed, arrayed


def _value_at(document: Any, path: Path) -> Any:
    """The value at `path`, or MISSING; a value on the way that is not an object has no
    fields (an array of objects on the way never gets here: `Node.match` takes those)."""
    value = document
    for key in path:
        if type(value) is not dict:
            return MISSING
        value = value.get(key, MISSING)
    return value
