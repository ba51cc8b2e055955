"""Marking a tool's personal data: which arguments and result fields are personal, and whose. Pure.

    @app.tool()
    async def send_receipt(
        customer_id: Annotated[str, DATA_SUBJECT], email: Annotated[str, PERSONAL], amount: float
    ) -> Annotated[dict, PERSONAL]: ...

    class Customer(TypedDict):
        name: Annotated[str, PERSONAL]
        tier: str

    @app.tool()
    async def lookup(customer_id: Annotated[str, DATA_SUBJECT]) -> Customer: ...

The marks land in the tool's argument schema as the keywords `"personal": true` and
`"dataSubject": true` (a declared `args_schema` may carry them itself); a result is personal
as a whole (`Annotated[..., PERSONAL]`) or by the TypedDict fields so marked. Personal values
are encrypted per data subject before they reach the log (docs/erasure.md).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigurationError
from events.json import JsonObject

__all__ = [
    "DATA_SUBJECT",
    "PERSONAL",
    "DataSubject",
    "Personal",
    "PersonalFields",
    "personal_fields",
    "result_marks",
]

PERSONAL_KEYWORD = "personal"
SUBJECT_KEYWORD = "dataSubject"


class Personal:
    """`Annotated[T, PERSONAL]`: this argument (or result, or result field) is personal data."""

    def __repr__(self) -> str:
        return "PERSONAL"


class DataSubject:
    """`Annotated[str, DATA_SUBJECT]`: this argument names the person the call's personal
    data is about (an id, kept in clear: it finds the key that erasure destroys)."""

    def __repr__(self) -> str:
        return "DATA_SUBJECT"


PERSONAL = Personal()
DATA_SUBJECT = DataSubject()


@dataclass(frozen=True, slots=True)
class PersonalFields:
    """A tool's personal data: the argument naming the subject, the personal arguments,
    and the personal result fields (`whole_result`: all of it)."""

    subject: str
    args: frozenset[str]
    result: frozenset[str] = frozenset()
    whole_result: bool = False


def marks_of(hint: Any) -> tuple[bool, bool]:
    """(personal, subject) of an annotation."""
    extras = typing.get_args(hint)[1:] if typing.get_origin(hint) is typing.Annotated else ()
    return (
        any(isinstance(m, Personal) for m in extras),
        any(isinstance(m, DataSubject) for m in extras),
    )


def hints_of(obj: Any, names: dict[str, Any] | None = None) -> dict[str, Any]:
    """`obj`'s annotations with their marks (resolved in its module, or in `names`: the
    globals of the tool that returns a TypedDict); unresolved ones as written. A mark must
    never be lost silently: an unresolved annotation that names one is refused."""
    try:
        return typing.get_type_hints(obj, globalns=names, include_extras=True)
    except Exception:
        raw = dict(getattr(obj, "__annotations__", {}))
    for name, hint in raw.items():
        text = hint.__forward_arg__ if isinstance(hint, typing.ForwardRef) else hint
        if isinstance(text, str) and ("PERSONAL" in text or "DATA_SUBJECT" in text):
            raise ConfigurationError(
                f"{getattr(obj, '__qualname__', obj)}: the annotation of {name!r} ({hint}) "
                "cannot be resolved, so its personal-data mark cannot be read"
            )
    return raw


def result_marks(fn: Callable[..., Any]) -> tuple[bool, frozenset[str]]:
    """(whole result personal, personal TypedDict fields) from `fn`'s return annotation."""
    hint = hints_of(fn).get("return")
    whole, _ = marks_of(hint)
    base = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
    if not typing.is_typeddict(base):
        return whole, frozenset()
    fields = hints_of(base, getattr(fn, "__globals__", None))
    return whole, frozenset(name for name, h in fields.items() if marks_of(h)[0])


def personal_fields(
    tool: str, args_schema: JsonObject, result: tuple[bool, frozenset[str]]
) -> PersonalFields | None:
    """The tool's personal fields, from its argument schema's marks and its result marks;
    None when it has none. A tool with personal data must name exactly one data subject."""
    properties = args_schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    personal = frozenset(
        name
        for name, schema in properties.items()
        if isinstance(schema, dict) and schema.get(PERSONAL_KEYWORD) is True
    )
    subjects = [
        name
        for name, schema in properties.items()
        if isinstance(schema, dict) and schema.get(SUBJECT_KEYWORD) is True
    ]
    whole, fields = result
    if not (personal or whole or fields):
        return None
    if len(subjects) != 1:
        raise ConfigurationError(
            f"tool {tool!r} has personal data and must mark exactly one argument "
            f"Annotated[str, DATA_SUBJECT] (it marks {len(subjects)})"
        )
    if subjects[0] in personal:
        raise ConfigurationError(
            f"tool {tool!r}: the data subject {subjects[0]!r} is the key's name, kept in "
            "clear; it cannot be personal itself"
        )
    return PersonalFields(subjects[0], personal, fields, whole)
