"""The one parser of EventBridge event patterns and SNS filter policies.

Both languages are event-ruler's JSON rule language; they differ in which operators they
accept, at which numeric range and precision they compare, and whether fields nest. A
`Dialect` states those differences; `compile_pattern` checks a pattern as AWS checks it and
compiles it into a `Pattern`. Every error names the offending part by its path in the
pattern (`detail.state[1]`), with event-ruler's reason for it.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from squall.errors import SquallError
from squall.routing.tree import Condition, Node, Pattern
from squall.routing.values import (
    Affix,
    AnythingBut,
    Cidr,
    EqualsIgnoreCase,
    Exact,
    Matcher,
    NumberModel,
    Numeric,
    Wildcard,
    is_number,
)

OR = "$or"
#: the match types of the language; a dialect accepts a subset
OPERATORS = frozenset({"prefix", "suffix", "equals-ignore-case", "wildcard", "anything-but", "numeric", "exists",
                       "cidr"})
COMPARISONS = frozenset({"=", "<", "<=", ">", ">="})


@dataclass(frozen=True)
class Dialect:
    """What one AWS service accepts of the rule language."""

    #: the error raised for an invalid pattern
    error: type[SquallError]
    #: the error text before the reason, as the service words it
    prefix: str
    numbers: NumberModel
    operators: frozenset[str]
    #: what `anything-but` may wrap besides values: prefix, suffix, equals-ignore-case, wildcard
    anything_but: frozenset[str]
    #: whether `prefix` and `suffix` take `{"equals-ignore-case": ...}`
    affix_ignore_case: bool
    #: whether fields nest (false: SNS attribute policies are flat)
    nested: bool
    #: the longest pattern, in characters of its JSON text
    max_size: int
    #: whether a literal number must lie within `numbers` (SNS) or may be any (EventBridge: account ids)
    literal_range: bool = False


class _Compiler:
    def __init__(self, dialect: Dialect):
        self.dialect = dialect

    def fail(self, reason: str, path: str = "") -> NoReturn:
        where = f" (at {path})" if path else ""
        raise self.dialect.error(f"{self.dialect.prefix}{reason}{where}")

    # ---- structure -----------------------------------------------------------------

    def branches(self, obj: Mapping[str, Any], path: str, inside_or: bool) -> list[dict[str, Any]]:
        """The alternatives of one pattern object, each a tree of dicts whose leaves are
        Conditions: `$or` forks every alternative built so far."""
        if not obj:
            self.fail("Empty objects are not allowed", path)
        branches: list[dict[str, Any]] = [{}]
        for key, value in obj.items():
            if not isinstance(key, str):
                self.fail(f"field names must be strings, not {key!r}", path)
            here = f"{path}.{key}" if path else key
            if key == OR:
                options = self.or_options(value, here)
                branches = [_merge(_copy(b), o) for b in branches for o in options]
                continue
            if inside_or and key in OPERATORS:
                self.fail(f"{key} is a reserved field name which cannot be used inside {OR}", here)
            if isinstance(value, Mapping):
                if not self.dialect.nested:
                    self.fail("nested filter policies are only supported with the MessageBody scope", here)
                subs = self.branches(value, here, inside_or)
                branches = [_merge(_copy(b), {key: s}) for b in branches for s in subs]
            elif isinstance(value, list):
                condition = self.condition(value, here)
                for branch in branches:
                    branch[key] = condition
            else:
                self.fail(f'"{key}" must be an object or an array', here)
        return branches

    def or_options(self, value: Any, path: str) -> list[dict[str, Any]]:
        if not isinstance(value, list):
            self.fail(f"It must be an Array followed with {OR}", path)
        if len(value) < 2:
            self.fail(f"There must have at least 2 Objects in {OR} relationship", path)
        options: list[dict[str, Any]] = []
        for index, option in enumerate(value):
            if not isinstance(option, Mapping):
                self.fail(f"Only JSON object is allowed in array of {OR} relationship", f"{path}[{index}]")
            options.extend(self.branches(option, f"{path}[{index}]", inside_or=True))
        return options

    # ---- values ----------------------------------------------------------------------

    def condition(self, values: list[Any], path: str) -> Condition:
        if not values:
            self.fail("Empty arrays are not allowed", path)
        matchers: list[Matcher] = []
        exists = absent = False
        for index, value in enumerate(values):
            here = f"{path}[{index}]"
            if isinstance(value, Mapping):
                name, argument = self.expression(value, here)
                if name == "exists":
                    if argument is not True and argument is not False:
                        self.fail("exists match pattern must be either true or false.", here)
                    exists, absent = exists or argument, absent or not argument
                else:
                    matchers.append(self.operator(name, argument, here))
            elif isinstance(value, str) or value is None or isinstance(value, bool):
                matchers.append(Exact(value))
            elif is_number(value):
                self.literal_number(value, here)
                matchers.append(Exact(value, self.dialect.numbers))
            else:
                self.fail("Match value must be String, number, true, false, or null", here)
        return Condition(tuple(matchers), exists, absent)

    def literal_number(self, value: float, path: str) -> None:
        if not math.isfinite(value):
            self.fail("numbers must be finite", path)
        if self.dialect.literal_range and self.dialect.numbers.comparable(value) is None:
            self.fail(self.range_reason(), path)

    def range_reason(self) -> str:
        billions = self.dialect.numbers.limit / 1e9
        return f"Value must be between -{billions:.1f}E9 and {billions:.1f}E9, inclusive"

    def expression(self, value: Mapping[str, Any], path: str) -> tuple[str, Any]:
        if not value:
            self.fail("Match expression name not found", path)
        if len(value) > 1:
            self.fail("Only one key allowed in match expression", path)
        ((name, argument),) = value.items()
        if name not in self.dialect.operators:
            self.fail(f"Unrecognized match type {name}", path)
        return name, argument

    def operator(self, name: str, argument: Any, path: str) -> Matcher:
        here = f"{path}.{name}"
        if name in ("prefix", "suffix"):
            return self.affix(name, argument, here)
        if name == "equals-ignore-case":
            return EqualsIgnoreCase(self.text(name, argument, here).lower())
        if name == "wildcard":
            return self.wildcard(self.text(name, argument, here), here)
        if name == "anything-but":
            return self.anything_but(argument, here)
        if name == "numeric":
            return self.numeric(argument, here)
        return self.cidr(self.text(name, argument, here), here)

    def text(self, name: str, argument: Any, path: str) -> str:
        if not isinstance(argument, str):
            self.fail(f"{name} match pattern must be a string", path)
        return argument

    def affix(self, name: str, argument: Any, path: str) -> Affix:
        suffix = name == "suffix"
        if isinstance(argument, Mapping) and self.dialect.affix_ignore_case:
            inner, text = self.expression_of(argument, path, frozenset({"equals-ignore-case"}))
            return Affix(self.text(inner, text, f"{path}.{inner}").lower(), suffix, ignore_case=True)
        return Affix(self.text(name, argument, path), suffix)

    def expression_of(self, value: Mapping[str, Any], path: str, allowed: frozenset[str]) -> tuple[str, Any]:
        if len(value) != 1:
            self.fail("Only one key allowed in match expression", path)
        ((name, argument),) = value.items()
        if name not in allowed:
            self.fail(f"Unsupported {path.rsplit('.', 1)[-1]} pattern: {name}", path)
        return name, argument

    def wildcard(self, text: str, path: str) -> Wildcard:
        """`*` is any run of characters; a backslash escapes `*` or itself, nothing else;
        two stars in a row are refused (they would only make the rule slower)."""
        segments: list[str] = []
        run: list[str] = []
        index, previous_star = 0, False
        while index < len(text):
            char = text[index]
            if char == "*":
                if previous_star:
                    self.fail(f"Consecutive wildcard characters at pos {index}", path)
                segments.append("".join(run))
                run = []
                previous_star = True
            elif char == "\\":
                escaped = text[index + 1] if index + 1 < len(text) else ""
                if escaped not in ("*", "\\"):
                    self.fail(f"Invalid escape character at pos {index}", path)
                run.append(escaped)
                index += 1
                previous_star = False
            else:
                run.append(char)
                previous_star = False
            index += 1
        segments.append("".join(run))
        return Wildcard(text, tuple(segments))

    def anything_but(self, argument: Any, path: str) -> AnythingBut:
        if isinstance(argument, Mapping):
            name, inner = self.expression_of(argument, path, self.dialect.anything_but)
            here = f"{path}.{name}"
            if name in ("prefix", "suffix"):
                text = self.text(name, inner, here)
                if not text:
                    self.fail("Null prefix/suffix not allowed", here)
                return AnythingBut((Affix(text, suffix=name == "suffix"),))
            values = inner if isinstance(inner, list) else [inner]
            if not values or not all(isinstance(v, str) for v in values):
                self.fail(f"Inside anything-but/{name} list, number|start|null|boolean is not supported.", here)
            if name == "wildcard":
                return AnythingBut(tuple(self.wildcard(v, f"{here}[{i}]") for i, v in enumerate(values)))
            return AnythingBut(tuple(EqualsIgnoreCase(v.lower()) for v in values))
        values = argument if isinstance(argument, list) else [argument]
        if not isinstance(argument, (list, str)) and not is_number(argument):
            self.fail("Value of anything-but must be an array or single string/number value.", path)
        if any(not isinstance(v, str) and not is_number(v) for v in values):
            self.fail("Inside anything but list, start|null|boolean is not supported.", path)
        strings = sum(isinstance(v, str) for v in values)
        if not values or 0 < strings < len(values):
            self.fail("Inside anything but list, either all values are number or string, mixed type is not "
                      "supported", path)
        if strings:
            return AnythingBut(tuple(Exact(v) for v in values))
        for index, number in enumerate(values):
            if not math.isfinite(number) or self.dialect.numbers.comparable(number) is None:
                self.fail(self.range_reason(), f"{path}[{index}]")
        return AnythingBut(tuple(Exact(v, self.dialect.numbers) for v in values), numbers_only=True)

    def numeric(self, argument: Any, path: str) -> Numeric:
        """`[op, n]` or `[">"|">=", low, "<"|"<=", high]`, with `=` alone."""
        if not isinstance(argument, list):
            self.fail("Value of numeric must be an array.", path)
        model = self.dialect.numbers
        if not argument or not isinstance(argument[0], str):
            self.fail(f"Invalid member in numeric match: {json.dumps(argument[0]) if argument else ']'}", path)
        terms = list(argument)
        operator = terms[0]
        if operator not in COMPARISONS:
            self.fail(f"Unrecognized numeric range operator: {operator}", path)
        low = self.bound(operator, terms[1:2], path)
        if operator == "=":
            if len(terms) > 2:
                self.fail("Too many elements in numeric expression", path)
            return Numeric(model, low, True, low, True)
        if operator in ("<", "<="):
            if len(terms) > 2:
                self.fail("Too many elements in numeric expression", path)
            return Numeric(model, None, False, low, operator == "<=")
        if len(terms) == 2:
            return Numeric(model, low, operator == ">=", None, False)
        top = terms[2]
        if top not in ("<", "<="):
            self.fail(f"Bad numeric range operator: {top if isinstance(top, str) else json.dumps(top)}", path)
        high = self.bound(top, terms[3:4], path)
        if len(terms) > 4:
            self.fail("Too many terms in numeric range expression", path)
        if high <= low:
            self.fail("Bottom must be less than top", path)
        return Numeric(model, low, operator == ">=", high, top == "<=")

    def bound(self, operator: str, terms: list[Any], path: str) -> int:
        if not terms or not is_number(terms[0]) or not math.isfinite(terms[0]):
            self.fail(f"Value of {operator} must be numeric", path)
        scaled = self.dialect.numbers.comparable(terms[0])
        if scaled is None:
            self.fail(self.range_reason(), path)
        return scaled

    def cidr(self, text: str, path: str) -> Cidr:
        if text.count("/") != 1:
            self.fail(f"Malformed CIDR, one '/' required: {text!r}", path)
        try:
            return Cidr(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            self.fail(f"Nonstandard IP address: {exc}", path)


def _copy(tree: dict[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) if isinstance(v, dict) else v for k, v in tree.items()}


def _merge(into: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """`other`'s fields added to `into` (sub-patterns merged, a later field replacing an
    earlier one of the same name, as event-ruler does)."""
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = _copy(value) if isinstance(value, dict) else value
    return into


def _node(tree: dict[str, Any]) -> Node:
    fields = tuple((k, v) for k, v in tree.items() if isinstance(v, Condition))
    children = tuple((k, _node(v)) for k, v in tree.items() if isinstance(v, dict))
    return Node(fields, children)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def load(dialect: Dialect, source: str | bytes | Mapping[str, Any], what: str) -> tuple[Any, str]:
    """Parse `source` (JSON text or an already parsed object): the object and its canonical
    text. A syntax error or an over-sized pattern is the dialect's error."""
    compiler = _Compiler(dialect)
    data: Any = source
    if isinstance(source, (str, bytes)):
        try:
            data = json.loads(source, parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            compiler.fail(f"{what} is not valid JSON: {exc}")
    if not isinstance(data, Mapping):
        compiler.fail("Filter is not an object")
    try:
        canonical = json.dumps(data, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        compiler.fail(f"{what} is not JSON: {exc}")
    given = source.encode() if isinstance(source, str) else source if isinstance(source, bytes) else None
    size = len(given if given is not None else canonical.encode())
    if size > dialect.max_size:
        compiler.fail(f"{what} is {size} bytes, over the limit of {dialect.max_size}")
    return data, canonical


def compile_pattern(dialect: Dialect, data: Mapping[str, Any], canonical: str) -> Pattern:
    """Check and compile a parsed pattern (see `load`)."""
    branches = _Compiler(dialect).branches(data, "", inside_or=False)
    return Pattern(tuple(_node(b) for b in branches), canonical)
