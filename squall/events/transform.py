"""What a rule's target receives instead of the whole event: EventBridge's `InputPath` and
input transformer (`InputPathsMap` + `InputTemplate`), in AWS's own JSON shape.

Both are compiled once, when the rule is declared (a bad path, variable or template is a
`ConfigError` naming it), and applied per delivery.

- A path is the JSONPath subset EventBridge documents: `$`, then dotted members (letters,
  digits, `_`, `-`, `/`) or `*`, and array indices `[0]` or `[*]`; bracket notation for
  members is refused, as AWS refuses it. jsonpath-ng evaluates it. A path that matches
  several values (a wildcard) gives them as an array; one that matches nothing gives no
  value.
- A template's placeholders are `<name>` (AWS: "<" and ">" cannot be escaped). Where a
  placeholder stands outside any JSON string of the template, its value goes in as JSON
  (a string quoted, an object as JSON; no value: `null`); inside a string, as text, unescaped
  (an object's or array's JSON with its inner quotes removed; no value: nothing), as
  EventBridge's documented examples show. The predefined variables are
  `aws.events.rule-arn`, `aws.events.rule-name`, `aws.events.event.ingestion-time` (strings),
  and `aws.events.event` (the event without `detail`) and `aws.events.event.json` (the whole
  event), which AWS allows only as the value of a JSON field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonpath_ng import JSONPath
from jsonpath_ng import parse as jsonpath

from squall.errors import ConfigError

#: AWS's limits: 100 variables, names of [A-Za-z0-9_-] up to 256 characters, paths up to
#: 256 characters, templates of 1 to 8192 characters
MAX_VARIABLES = 100
VARIABLE = re.compile(r"[A-Za-z0-9_\-]{1,256}")
MAX_PATH = 256
MAX_TEMPLATE = 8192
_SEGMENT = r"(?:\.(?:[A-Za-z0-9_\-/]+|\*)|\[(?:\d+|\*)\])"
_PATH = re.compile(rf"\$(?:{_SEGMENT})*")
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_\-.]+)>")

RULE_ARN, RULE_NAME = "aws.events.rule-arn", "aws.events.rule-name"
INGESTION_TIME = "aws.events.event.ingestion-time"
EVENT, EVENT_JSON = "aws.events.event", "aws.events.event.json"
#: the predefined variables AWS allows only as the value of a JSON field
_JSON_ONLY = frozenset({EVENT, EVENT_JSON})
PREDEFINED = frozenset({RULE_ARN, RULE_NAME, INGESTION_TIME, *_JSON_ONLY})

#: what a path gives when it matches nothing
MISSING: Any = object()


@dataclass(frozen=True)
class Path:
    """One JSONPath of AWS's subset, compiled."""

    text: str
    compiled: JSONPath

    @classmethod
    def parse(cls, what: str, text: Any) -> Path:
        if not isinstance(text, str) or not 0 < len(text) <= MAX_PATH or not _PATH.fullmatch(text):
            raise ConfigError(f"{what}: invalid JSON path {text!r}: expected '$' then dotted members (letters, digits, "
                              f"'_', '-', '/') or '*', and indices [0] or [*], at most {MAX_PATH} characters")
        # members quoted for jsonpath-ng, which reads '/' and '-' as operators otherwise
        quoted = re.sub(r"\.([A-Za-z0-9_\-/]+)", lambda m: f'."{m[1]}"', text[1:])
        return cls(text, jsonpath("$" + quoted))

    def find(self, event: Any) -> Any:
        """The value at the path; several values as an array; MISSING when there is none."""
        values = [match.value for match in self.compiled.find(event)]
        if not values:
            return MISSING
        return values[0] if len(values) == 1 and "*" not in self.text else values


@dataclass(frozen=True)
class Context:
    """What the predefined variables of one delivery hold."""

    rule_name: str
    rule_arn: str
    ingestion_time: str


@dataclass(frozen=True)
class _Placeholder:
    name: str
    #: inside a JSON string of the template
    quoted: bool


@dataclass(frozen=True)
class InputTransformer:
    paths: Mapping[str, Path]
    template: str
    parts: tuple[str | _Placeholder, ...]

    @classmethod
    def parse(cls, what: str, value: Any) -> InputTransformer:
        """`{"InputPathsMap": {...}, "InputTemplate": "..."}`, checked as AWS checks it."""
        if not isinstance(value, Mapping) or set(value) - {"InputPathsMap", "InputTemplate"}:
            raise ConfigError(f"{what}: input_transformer must be {{'InputPathsMap': {{...}}, 'InputTemplate': "
                              f"'...'}}, not {value!r}")
        variables = value.get("InputPathsMap", {})
        if not isinstance(variables, Mapping) or len(variables) > MAX_VARIABLES:
            raise ConfigError(f"{what}: InputPathsMap must map at most {MAX_VARIABLES} variable names to JSON paths")
        paths: dict[str, Path] = {}
        for name, path in variables.items():
            if not isinstance(name, str) or not VARIABLE.fullmatch(name):
                raise ConfigError(f"{what}: invalid InputPathsMap variable {name!r}: 1 to 256 letters, digits, '_' "
                                  f"or '-' (the aws.* names are reserved)")
            paths[name] = Path.parse(f"{what}: InputPathsMap variable {name!r}", path)
        template = value.get("InputTemplate")
        if not isinstance(template, str) or not 0 < len(template) <= MAX_TEMPLATE:
            raise ConfigError(f"{what}: InputTemplate must be a string of 1 to {MAX_TEMPLATE} characters")
        parts = _split(template)
        for part in parts:
            if isinstance(part, str):
                continue
            if part.name not in paths and part.name not in PREDEFINED:
                raise ConfigError(f"{what}: InputTemplate placeholder <{part.name}> is neither in InputPathsMap nor "
                                  f"a predefined variable")
            if part.quoted and part.name in _JSON_ONLY:
                raise ConfigError(f"{what}: InputTemplate placeholder <{part.name}> can only be the value of a JSON "
                                  f"field, not part of a string")
        transformer = cls(paths, template, parts)
        if template.lstrip().startswith("{"):
            transformer._check_json(what)
        return transformer

    def _check_json(self, what: str) -> None:
        """A template that is a JSON object must be one whatever the values, and (AWS) a
        placeholder cannot be one of its keys."""
        for part, after in zip(self.parts, self.parts[1:], strict=False):
            if not isinstance(part, str) and isinstance(after, str) and re.match(
                    r'"?\s*:' if part.quoted else r"\s*:", after):
                raise ConfigError(f"{what}: InputTemplate placeholder <{part.name}> cannot be an object key")
        try:
            json.loads(self._sample())
        except ValueError as exc:
            raise ConfigError(f"{what}: InputTemplate is not valid JSON: {exc}") from None

    def is_json(self) -> bool:
        """Whether every rendering is JSON (what a function target must receive)."""
        try:
            json.loads(self._sample())
        except ValueError:
            return False
        return True

    def _sample(self) -> str:
        return "".join(part if isinstance(part, str) else ("x" if part.quoted else "null") for part in self.parts)

    def render(self, event: Mapping[str, Any], context: Context) -> str:
        """The text the target receives for `event`."""
        values: dict[str, Any] = {name: path.find(event) for name, path in self.paths.items()}
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = values[part.name] if part.name in values else _predefined(part.name, event, context)
            out.append(_in_string(value) if part.quoted else _as_json(value))
        return "".join(out)


def _predefined(name: str, event: Mapping[str, Any], context: Context) -> Any:
    if name == RULE_ARN:
        return context.rule_arn
    if name == RULE_NAME:
        return context.rule_name
    if name == INGESTION_TIME:
        return context.ingestion_time
    if name == EVENT:
        return {key: value for key, value in event.items() if key != "detail"}
    return dict(event)


def _as_json(value: Any) -> str:
    return "null" if value is MISSING else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _in_string(value: Any) -> str:
    if value is MISSING:
        return ""
    if isinstance(value, str):
        return value
    text = json.dumps(value, ensure_ascii=False)
    return text.replace('"', "") if isinstance(value, (dict, list)) else text


def _split(template: str) -> tuple[str | _Placeholder, ...]:
    """Literal text and placeholders, each placeholder knowing whether it stands inside a
    JSON string (quotes counted from the start, a backslash escaping the next character)."""
    parts: list[str | _Placeholder] = []
    quoted = escaped = False
    start = position = 0
    while position < len(template):
        char = template[position]
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "<" and (found := _PLACEHOLDER.match(template, position)):
            if start < position:
                parts.append(template[start:position])
            parts.append(_Placeholder(found[1], quoted))
            position = start = found.end()
            continue
        position += 1
    if start < len(template):
        parts.append(template[start:])
    return tuple(parts)


def input_path(what: str, value: Any) -> Path:
    """A target's `InputPath`: the part of the event it receives."""
    return Path.parse(f"{what}: input_path", value)
