"""HTML forms from argument and answer schemas, and form fields back to JSON. Pure.

    fields = fields_for(request.args_schema, request.args or {}, prefix="arg.")
    args, errors = read_fields(request.args_schema, form, prefix="arg.")

The schemas are the JSON-schema subset of `engine.agent.argspec`: each property becomes an
input of its type (text, a number, a checkbox, a choice for an `enum`), and what the subset
cannot express as one input (objects, arrays, anything) is a JSON text area. Values come back
typed by the same schema; what does not parse is an error sentence, and the result is then
checked by `argspec.validate` as the worker will check it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal, TypeAlias

from countersign.web.json_input import parse_json
from events.json import Json, JsonObject

InputKind: TypeAlias = Literal[
    "text", "textarea", "integer", "number", "checkbox", "select", "json"
]
MAX_FIELD_CHARS = 100_000


@dataclass(frozen=True, kw_only=True, slots=True)
class FormField:
    name: str
    """The input's name: the prefix and the property."""
    label: str
    kind: InputKind
    value: str
    required: bool = False
    options: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    nullable: bool = False


def fields_for(schema: Json, current: Json, *, prefix: str) -> list[FormField]:
    """One field per property of an object schema; one field named `prefix` for any other."""
    props = _properties(schema)
    if props is None:
        return [_field(prefix, "answer", schema, current, required=True)]
    values = current if isinstance(current, dict) else {}
    required = _required(schema)
    names = [*props, *(k for k in values if k not in props)]
    return [
        _field(f"{prefix}{name}", name, props.get(name, {}), values.get(name), name in required)
        for name in names
    ]


def read_fields(schema: Json, form: Mapping[str, str], *, prefix: str) -> tuple[Json, list[str]]:
    """The JSON value the form's fields make (by the schema's types), and what did not parse."""
    props = _properties(schema)
    errors: list[str] = []
    if props is None:
        return _parse(form.get(prefix), schema, "the answer", errors), errors
    out: JsonObject = {}
    names = [*props, *(k[len(prefix) :] for k in form if k.startswith(prefix))]
    for name in dict.fromkeys(names):
        raw = form.get(f"{prefix}{name}")
        field_schema = props.get(name, {})
        if raw is None and _types(field_schema) == ("boolean",):
            raw = "false"  # an unticked checkbox sends nothing
        if raw is None or raw == "":
            continue  # left empty: not given (argspec then says whether it was required)
        out[name] = _parse(raw, field_schema, name, errors)
    return out, errors


def _field(name: str, label: str, schema: Json, value: Json, required: bool) -> FormField:
    spec = schema if isinstance(schema, dict) else {}
    types = _types(spec)
    nullable = "null" in types
    kinds = tuple(t for t in types if t != "null")
    enum = spec.get("enum")
    base = FormField(name=name, label=label, kind="json", value="", required=required,
                     nullable=nullable)  # fmt: skip
    if isinstance(enum, list) and enum and all(isinstance(e, str) for e in enum):
        shown = value if isinstance(value, str) else ""
        return replace(base, kind="select", value=shown, options=tuple(map(str, enum)))
    if kinds == ("boolean",):
        return replace(base, kind="checkbox", value="true" if value is True else "")
    if kinds in (("integer",), ("number",), ("number", "integer"), ("integer", "number")):
        kind: InputKind = "integer" if kinds == ("integer",) else "number"
        shown = "" if value is None or isinstance(value, bool) else _number(value)
        return replace(
            base,
            kind=kind,
            value=shown,
            minimum=_float(spec.get("minimum")),
            maximum=_float(spec.get("maximum")),
        )
    if kinds == ("string",):
        text = value if isinstance(value, str) else ("" if value is None else str(value))
        long = "\n" in text or len(text) > 80
        longest = spec.get("maxLength")
        limit = longest if isinstance(longest, int) else None
        kind = "textarea" if long else "text"
        return replace(base, kind=kind, value=text, max_length=limit)
    shown = "" if value is None and not required else json.dumps(value, indent=2)
    return replace(base, kind="json", value=shown)


def _parse(raw: str | None, schema: Json, name: str, errors: list[str]) -> Json:
    spec = schema if isinstance(schema, dict) else {}
    kinds = tuple(t for t in _types(spec) if t != "null")
    text = (raw or "")[: MAX_FIELD_CHARS + 1]
    if len(text) > MAX_FIELD_CHARS:
        errors.append(f"{name} is too long")
        return None
    if text == "" and "null" in _types(spec):
        return None
    enum = spec.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(e, str) for e in enum):
        return text
    try:
        if kinds == ("boolean",):
            return text in ("true", "on", "1")
        if kinds == ("integer",):
            return int(text.strip())
        if kinds and set(kinds) <= {"number", "integer"}:
            number = float(text.strip())
            if not math.isfinite(number):
                raise ValueError("not a finite number")
            return int(number) if number.is_integer() and "." not in text else number
        if kinds == ("string",):
            return text
        return parse_json(text)
    except ValueError:
        errors.append(f"{name}: {text[:40]!r} is not {' or '.join(kinds) or 'JSON'}")
        return None


def _properties(schema: Json) -> dict[str, Json] | None:
    if not isinstance(schema, dict):
        return None
    props = schema.get("properties")
    if isinstance(props, dict) and (props or schema.get("type") == "object"):
        return dict(props)
    return None


def _required(schema: Json) -> set[str]:
    found = schema.get("required") if isinstance(schema, dict) else None
    return {r for r in found if isinstance(r, str)} if isinstance(found, list) else set()


def _types(schema: Json) -> tuple[str, ...]:
    if not isinstance(schema, dict):
        return ()
    found = schema.get("type")
    if isinstance(found, str):
        return (found,)
    if isinstance(found, list):
        return tuple(t for t in found if isinstance(t, str))
    return ()


def _number(value: Json) -> str:
    return str(value) if isinstance(value, int | float) else ""


def _float(value: Json) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
