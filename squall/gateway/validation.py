"""Opt-in request validation: a route's `request_schema`, checked before its function runs,
as a REST API's request validator checks a body against its model.

A validator is compiled once per route when the gateway is built; routes without a
schema have none and pay nothing. The body is parsed with orjson (bounded at 1,024
levels where `json` would recurse to a RecursionError) whatever its content type: a
route that declares a schema takes JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from jsonschema import exceptions, validators


@dataclass(frozen=True)
class InvalidBody:
    """Why a body was refused: the problem, and where in the body (a JSONPath) when the
    schema, not the syntax, refused it."""

    detail: str
    path: str | None = None


class BodyValidator:
    """Checks request bodies against one JSON Schema (its own `$schema` draft, or the latest)."""

    def __init__(self, schema: Mapping[str, Any]):
        self._validator = validators.validator_for(schema)(schema)

    def problem(self, body: bytes) -> InvalidBody | None:
        """None if `body` is JSON that satisfies the schema; otherwise what is wrong with it,
        the most relevant error first (`jsonschema.exceptions.best_match`)."""
        if not body:
            return InvalidBody("the request body is empty; this route expects JSON")
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return InvalidBody(f"malformed JSON: {exc}")
        error = exceptions.best_match(self._validator.iter_errors(document))
        if error is None:
            return None
        return InvalidBody(error.message, error.json_path)
