"""A record's values straight into its message objects, compiled once per writer schema. Pure.

The general path reads a record into a dict (`events.reading`), makes a dict of keyword
arguments from it (`RecordMapper.from_avro`), calls the payload's dataclass `__init__` (on a
frozen class, one `object.__setattr__` call per field), then makes a dict of the envelope's
fields and the envelope the same way: about half of what decoding a run event cost.
`compile_builder` writes one function per writer schema that takes the values as
`compile_reader(values=True)` returns them (a tuple in the schema's field order), applies the
mapper's rules to the same fields in the same order (a command's string caps, strict JSON,
tuples, the nested approval request), so that it refuses what `from_avro` refuses with the
same error, and makes the objects as their `__init__` would (`_maker` says when it may).
`tests/unit/test_building.py` holds it to the general path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from events.records import RecordMapper

Build = Callable[[tuple[Any, ...]], Any]
"""Makes the message from a record's values, in its writer schema's field order."""


def compile_builder(
    field_names: Sequence[str], mapper: RecordMapper, envelope: type[Any] | None
) -> Build | None:
    """The builder for records whose fields are `field_names` (the writer schema's order),
    of `mapper`'s class, wrapped in `envelope` when given; None when the schema lacks a
    field the classes need (the general path then refuses the record, as it always has)."""
    where = {name: f"v{index}" for index, name in enumerate(field_names)}
    source = _Source()
    lines = [f"def build(values):\n    {''.join(v + ', ' for v in where.values())}= values"]
    for rule in mapper.rules:
        if rule.name not in where:
            return None
        if rule.cap is not None:
            lines.append(
                f"    if isinstance({where[rule.name]}, str) and len({where[rule.name]}) > "
                f"{rule.cap}: {source.constant(mapper.over_cap)}("
                f"{source.constant(rule)}, {where[rule.name]})"
            )
        if rule.from_avro is not None:
            call = source.constant(rule.from_avro)
            lines.append(f"    {where[rule.name]} = {call}({where[rule.name]})")
    made = {rule.name: where[rule.name] for rule in mapper.rules}
    lines.extend(source.make("payload", mapper.cls, made))
    if envelope is not None:
        names = [f.name for f in dataclasses.fields(envelope) if f.name != "payload"]
        if not set(names) <= where.keys():
            return None
        meta = {name: where[name] for name in names}
        lines.extend(source.make("message", envelope, {**meta, "payload": "payload"}))
        lines.append("    return message")
    else:
        lines.append("    return payload")
    scope = dict(source.constants)
    # The source holds no text from the schema but field names, which are identifiers.
    exec(compile("\n".join(lines), f"<build {mapper.cls.__name__}>", "exec"), scope)
    build: Build = scope["build"]
    return build


class _Source:
    def __init__(self) -> None:
        self.constants: dict[str, Any] = {"_new": object.__new__}

    def constant(self, value: Any) -> str:
        name = f"_c{len(self.constants)}"
        self.constants[name] = value
        return name

    def make(self, target: str, cls: type[Any], values: dict[str, str]) -> list[str]:
        """Lines that make `cls` from the local variables `values` names, into `target`."""
        if not all(name.isidentifier() for name in values):
            raise TypeError(f"{cls.__name__}: a field name that is not an identifier")
        twin = _maker(cls)
        if twin is None:  # its own __init__ (and __post_init__) decides, as before
            arguments = ", ".join(f"{name}={local}" for name, local in values.items())
            return [f"    {target} = {self.constant(cls)}({arguments})"]
        return [
            f"    {target} = _new({self.constant(twin)})",
            *(f"    {target}.{name} = {local}" for name, local in values.items()),
            f"    {target}.__class__ = {self.constant(cls)}",
        ]


def _maker(cls: type[Any]) -> type[Any] | None:
    """A plain class with `cls`'s slots, whose instances, once filled, become instances of
    `cls`: the same object its `__init__` makes (a slot store per field; the generated
    `__init__` of a frozen class calls `object.__setattr__` for each, which costs twice as
    much). Only where `__init__` does nothing more: a frozen, slotted dataclass of its own,
    on `object`, whose generated `__init__` takes every field and has no `__post_init__`.
    CPython refuses to change the class of an object whose layout differs, which the probe
    at the end checks once; None means "call the class"."""
    if not dataclasses.is_dataclass(cls) or cls.__bases__ != (object,):
        return None
    fields = dataclasses.fields(cls)
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    if (
        not params.frozen
        or not params.init
        or hasattr(cls, "__post_init__")
        or cls.__init__.__code__.co_filename != "<string>"  # dataclasses' own, not the class's
        or len(cls.__dataclass_fields__) != len(fields)  # an InitVar: __init__ takes more
        or any(not f.init for f in fields)
        or cls.__dict__.get("__slots__") != tuple(f.name for f in fields)
    ):
        return None
    slots = tuple(f.name for f in fields)
    twin = type(cls.__name__, (), {"__slots__": slots, "__module__": cls.__module__})
    probe: Any = object.__new__(twin)
    try:
        probe.__class__ = cls
    except TypeError:
        return None
    return twin
