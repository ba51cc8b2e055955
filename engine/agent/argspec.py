"""Argument and answer schemas: a small, JSON-schema-shaped subset, derived and checked purely.

A tool's argument schema is derived from its signature (required parameters, basic types
from the annotations) unless the tool declares one. Edits are checked against it before they
are accepted; responses are checked against a question's `answer_schema` the same way.

Supported keywords: `type` (a name or a list of names: object, array, string, integer,
number, boolean, null), `properties`, `required`, `additionalProperties` (false only),
`items`, `enum`, `minimum`, `maximum`, `minLength`, `maxLength`. Anything else is ignored.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

from engine.agent.personal import PERSONAL_KEYWORD, SUBJECT_KEYWORD, hints_of, marks_of
from events.json import Json, JsonObject

IDEMPOTENCY_KEY_PARAM = "idempotency_key"
DRY_RUN_PARAM = "dry_run"
"""A tool taking this is called with dry_run=True in a dry-run fork (engine.core.forking)."""

_SIMPLE: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
    dict: "object",
    list: "array",
    tuple: "array",
}


def schema_of_function(fn: Callable[..., Any]) -> JsonObject:
    """An object schema for `fn`'s keyword arguments: every parameter, the ones without a
    default required, typed where the annotation is simple. `idempotency_key` and `dry_run`
    are the engine's."""
    hints = hints_of(fn)  # an annotation that cannot be resolved loses its type, not a mark
    properties: JsonObject = {}
    required: list[Json] = []
    open_ended = False
    for name, param in inspect.signature(fn).parameters.items():
        if name in (IDEMPOTENCY_KEY_PARAM, DRY_RUN_PARAM):
            continue
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            open_ended = True
            continue
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            continue
        properties[name] = _marked(schema_of_annotation(hints.get(name)), hints.get(name))
        if param.default is inspect.Parameter.empty:
            required.append(name)
    schema: JsonObject = {"type": "object", "properties": properties, "required": required}
    if not open_ended:
        schema["additionalProperties"] = False
    return schema


def _marked(schema: JsonObject, hint: Any) -> JsonObject:
    """The schema with the personal-data marks of `Annotated[T, PERSONAL | DATA_SUBJECT]`
    (`engine.agent.personal`) as keywords."""
    personal, subject = marks_of(hint)
    if personal:
        schema[PERSONAL_KEYWORD] = True
    if subject:
        schema[SUBJECT_KEYWORD] = True
    return schema


def schema_of_annotation(hint: Any) -> JsonObject:
    """`{}` (anything) when the annotation says nothing we can check."""
    if hint is None or hint is Any:
        return {}
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return schema_of_annotation(typing.get_args(hint)[0])
    if origin is typing.Literal:
        return {"enum": list(typing.get_args(hint))}
    if origin in (typing.Union, types.UnionType):
        names: list[Json] = []
        for arg in typing.get_args(hint):
            name = _SIMPLE.get(typing.get_origin(arg) or arg)
            if name is None:
                return {}
            names.append(name)
        if "number" in names and "integer" not in names:
            names.append("integer")
        return {"type": names}
    name = _SIMPLE.get(origin or hint)
    if name is None:
        return {}
    if name == "number":
        return {"type": ["number", "integer"]}
    return {"type": name}


def validate(value: Json, schema: Json, where: str = "") -> list[str]:
    """Every way `value` breaks `schema`, as readable sentences; empty when it conforms."""
    if not isinstance(schema, dict):
        return []
    at = where or "the value"
    errors: list[str] = []
    expected = schema.get("type")
    if expected is not None:
        names = expected if isinstance(expected, list) else [expected]
        if not any(_is_type(value, name) for name in names):
            shown = " or ".join(str(n) for n in names)
            return [f"{at} must be {shown}, not {_type_name(value)}"]
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        errors.append(f"{at} must be one of {enum}")
    errors.extend(_bounds(value, schema, at))
    if isinstance(value, dict):
        errors.extend(_object_errors(value, schema, where))
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors.extend(validate(item, schema["items"], f"{at}[{i}]"))
    return errors


def _object_errors(value: JsonObject, schema: JsonObject, where: str) -> list[str]:
    errors: list[str] = []
    prefix = f"{where}." if where else ""
    required = schema.get("required")
    for name in required if isinstance(required, list) else []:
        if isinstance(name, str) and name not in value:
            errors.append(f"{prefix}{name} is required")
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    for name, item in value.items():
        if name in properties:
            errors.extend(validate(item, properties[name], f"{prefix}{name}"))
        elif schema.get("additionalProperties") is False:
            errors.append(f"{prefix}{name} is not an accepted argument")
    return errors


def _bounds(value: Json, schema: JsonObject, at: str) -> list[str]:
    errors = []
    if isinstance(value, int | float) and not isinstance(value, bool):
        low, high = schema.get("minimum"), schema.get("maximum")
        if isinstance(low, int | float) and value < low:
            errors.append(f"{at} must be at least {low}")
        if isinstance(high, int | float) and value > high:
            errors.append(f"{at} must be at most {high}")
    if isinstance(value, str):
        shortest, longest = schema.get("minLength"), schema.get("maxLength")
        if isinstance(shortest, int) and len(value) < shortest:
            errors.append(f"{at} must have at least {shortest} characters")
        if isinstance(longest, int) and len(value) > longest:
            errors.append(f"{at} must have at most {longest} characters")
    return errors


def _is_type(value: Json, name: Json) -> bool:
    match name:
        case "object":
            return isinstance(value, dict)
        case "array":
            return isinstance(value, list)
        case "string":
            return isinstance(value, str)
        case "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        case "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "boolean":
            return isinstance(value, bool)
        case "null":
            return value is None
        case _:
            return True  # a type name we do not know constrains nothing


def _type_name(value: Json) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
