"""Our message dataclasses to and from the plain dicts an Avro library reads and writes. Pure.

Each field gets a rule once per class: JSON fields travel as canonical JSON text (read back
strictly, within a size cap), tuples as arrays, an `ApprovalRequest` as a nested record, the
rest as they are. A command's string fields are checked against their documented caps here,
so a refusal names the field.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from events.approval import ApprovalRequest
from events.errors import InvalidField
from events.fields import cap_of, is_json_field
from events.json import Json, JsonRefused, canonical_json, check_limits
from events.json import loads as json_loads


@dataclasses.dataclass(frozen=True, slots=True)
class FieldRule:
    name: str
    to_avro: Callable[[Any], Any] | None
    from_avro: Callable[[Any], Any] | None
    cap: int | None  # characters, for a command's string field
    accept: Callable[[Any], None] | None = None  # the reader's checks, on what to_avro made


class RecordMapper:
    """Maps one dataclass (and the records nested in it) to and from Avro's dict form."""

    def __init__(
        self,
        cls: type[Any],
        *,
        json_chars: int,
        string_caps: Mapping[str, int] | None = None,
    ) -> None:
        self.cls = cls
        self._json_chars = json_chars
        self._fields = tuple(self._rule(f, hint, string_caps) for f, hint in _hints(cls))
        # Read as they are (most fields): one comprehension, not a loop with checks.
        self._as_is = tuple(r.name for r in self._fields if r.cap is None and r.from_avro is None)
        self._checked = tuple(r for r in self._fields if r.cap is not None or r.from_avro)

    @property
    def rules(self) -> tuple[FieldRule, ...]:
        """One rule per field of the class, in its order (`events.building` compiles them)."""
        return self._fields

    def to_avro(self, obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for rule in self._fields:
            value = getattr(obj, rule.name)
            out[rule.name] = rule.to_avro(value) if rule.to_avro is not None else value
        return out

    def from_avro(self, data: Mapping[str, Any]) -> Any:
        kwargs = {name: data[name] for name in self._as_is}
        for rule in self._checked:
            value = data[rule.name]
            if rule.cap is not None and isinstance(value, str) and len(value) > rule.cap:
                self.over_cap(rule, value)
            kwargs[rule.name] = rule.from_avro(value) if rule.from_avro is not None else value
        return self.cls(**kwargs)

    def accept(self, data: Mapping[str, Any]) -> None:
        """Raise what `from_avro` would raise for a record `to_avro` just made, without
        building anything: the encoder's proof that a reader takes what it writes. JSON text
        made by `canonical_json` always parses (finite numbers, str keys, UTF-8 the Avro
        writer already encoded); only its size and depth can break a reader's limit."""
        for rule in self._fields:
            value = data[rule.name]
            if rule.cap is not None and isinstance(value, str) and len(value) > rule.cap:
                self.over_cap(rule, value)
            if rule.accept is not None:
                rule.accept(value)

    def over_cap(self, rule: FieldRule, value: str) -> None:
        """Refuse `value`, over its field's cap."""
        raise InvalidField(
            f"{self.cls.__name__}.{rule.name}",
            f"{len(value)} characters is over the {rule.cap}-character limit",
        )

    def _rule(
        self, field: dataclasses.Field[Any], hint: Any, caps: Mapping[str, int] | None
    ) -> FieldRule:
        name = field.name
        if is_json_field(field):
            read, accept = self._json_rules(name)
            return FieldRule(name, canonical_json, read, None, accept)
        origin = typing.get_origin(hint)
        cap = cap_of(field)
        if caps is not None and str in (hint, *typing.get_args(hint)) and cap is None:
            cap = caps.get(name)
            if cap is None:
                raise TypeError(f"{self.cls.__name__}.{name}: a command string needs a cap")
        if origin is tuple:
            return FieldRule(name, list, tuple, None)
        if hint is ApprovalRequest:
            nested = RecordMapper(ApprovalRequest, json_chars=self._json_chars)
            return FieldRule(name, nested.to_avro, nested.from_avro, None, nested.accept)
        if (
            origin in (typing.Union, types.UnionType)
            or hint in (str, int, float, bool)
            or origin is typing.Literal
        ):
            return FieldRule(name, None, None, cap)
        raise TypeError(f"{self.cls.__name__}.{name}: no Avro mapping for {hint!r}")

    def _json_rules(self, name: str) -> tuple[Callable[[str], Json], Callable[[str], None]]:
        """How a JSON field is read (strictly), and how text `canonical_json` wrote is checked
        against the same limits."""
        where = f"{self.cls.__name__}.{name}"
        limit = self._json_chars

        def read(text: str) -> Json:
            try:
                return json_loads(text, max_chars=limit)
            except JsonRefused as exc:
                raise InvalidField(where, f"not acceptable JSON: {exc}") from exc

        def accept(text: str) -> None:
            try:
                check_limits(text, max_chars=limit)
            except JsonRefused as exc:
                raise InvalidField(where, f"not acceptable JSON: {exc}") from exc

        return read, accept


def _hints(cls: type[Any]) -> list[tuple[dataclasses.Field[Any], Any]]:
    return [
        (field, None if is_json_field(field) else _hint(cls, field))
        for field in dataclasses.fields(cls)
    ]


def _hint(cls: type[Any], field: dataclasses.Field[Any]) -> Any:
    """The field's annotation, evaluated in the module of the class that declared it, so a
    subclass defined elsewhere (a later release's message, in a test) maps like its base."""
    if not isinstance(field.type, str):
        return field.type
    owner = next(k for k in cls.__mro__ if field.name in vars(k).get("__annotations__", {}))
    return eval(field.type, vars(sys.modules[owner.__module__]))
