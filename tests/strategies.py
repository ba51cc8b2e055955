"""Hypothesis strategies for every message type: valid values of each field's type."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from hypothesis import strategies as st

from events.approval import ApprovalRequest
from events.checkpoints import Checkpoint
from events.envelope import EventEnvelope
from events.fields import is_json_field

LONGS = st.integers(min_value=-(2**63), max_value=2**63 - 1)
POSITIONS = st.integers(min_value=0, max_value=2**63 - 1)  # seq and *_us: never negative

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)


def _strategy_for_hint(hint: Any) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is str:
        return st.text(max_size=30)
    if hint is bool:
        return st.booleans()
    if hint is bytes:
        return st.binary(max_size=40)
    if hint is int:
        return LONGS
    if hint is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if hint is ApprovalRequest:
        return message_strategy(ApprovalRequest)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(
            *(st.none() if arg is type(None) else _strategy_for_hint(arg) for arg in args)
        )
    if origin is tuple:
        return st.lists(_strategy_for_hint(args[0]), max_size=4).map(tuple)
    raise TypeError(f"no strategy for {hint!r}")  # pragma: no cover


def _strategy_for_field(cls: type[Any], field: dataclasses.Field[Any]) -> st.SearchStrategy[Any]:
    if is_json_field(field):
        if str(field.type) == "JsonObject":
            return json_objects
        if str(field.type) == "JsonObject | None":
            return st.none() | json_objects
        return json_values
    module_globals = vars(__import__(cls.__module__, fromlist=["_"]))
    hint = eval(str(field.type), module_globals)
    if field.name == "seq" or field.name.endswith("_us") or cls is Checkpoint:
        return POSITIONS if hint is int else st.none() | POSITIONS
    return _strategy_for_hint(hint)


def message_strategy(cls: type[Any]) -> st.SearchStrategy[Any]:
    fields = {f.name: _strategy_for_field(cls, f) for f in dataclasses.fields(cls)}
    return st.fixed_dictionaries(fields).map(lambda kwargs: cls(**kwargs))


def envelope_strategy(payload_cls: type[Any]) -> st.SearchStrategy[EventEnvelope]:
    return st.builds(
        EventEnvelope,
        event_id=st.text(max_size=20),
        run_id=st.text(max_size=20),
        seq=POSITIONS,
        occurred_at_us=POSITIONS,
        agent=st.text(max_size=10),
        agent_version=st.text(max_size=5),
        causation_id=st.text(max_size=20),
        correlation_id=st.text(max_size=20),
        prev_hash=st.text(max_size=64),
        payload=message_strategy(payload_cls),
    )


def zigzag(n: int) -> bytes:
    """Avro's spelling of a long: zig-zag, then a little-endian base-128 varint."""
    z = (n << 1) ^ (n >> 63) if -(2**63) <= n < 2**63 else n << 1
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)
