"""The events index record of an event, as PostgreSQL takes it, built from the event. Pure.

`EVENTS.record(event_row(event))` says what the record is; this builds the same tuple without
the `EventRow` in between and writes the payload's JSON with orjson straight from the payload
dataclass. The events index is written once per event, and the row object and the standard
encoder were a third of the projector's CPU outside decoding.

orjson is handed the payload as a dict made by a function compiled once per payload type
rather than the dataclass itself: on a slotted dataclass orjson walks `__dataclass_fields__`
and looks each field up by name, which cost 12.5 k instructions an event on the projector's
batch against 9.2 k for the dict and its dump.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from events.approval import ApprovalRequest
from events.envelope import EventEnvelope
from events.run_events import RunEventPayload
from projections.batch import LoggedEvent
from projections.describe import field_plan, payload_json
from projections.fold import timestamp
from projections.store_columns import jsonb


def event_record(event: LoggedEvent) -> tuple[Any, ...]:
    """The `cs_events` values of `event`, in `EVENTS.written` order (built ahead or now)."""
    if event.index_record is not None:
        return event.index_record
    return index_record(event.envelope, event.partition, event.offset, event.hash, event.raw)


def index_record(
    env: EventEnvelope, partition: int, offset: int, hash_: str, raw: bytes
) -> tuple[Any, ...]:
    """The `cs_events` values of the event `env` read at `partition` and `offset`. Raises
    what the columns refuse (ValueError, OverflowError for a time out of range, ...)."""
    return (
        env.run_id,
        env.seq,
        env.event_id,
        env.type,
        timestamp(env.occurred_at_us),
        env.agent,
        env.agent_version,
        env.causation_id,
        env.correlation_id,
        payload_jsonb(env.payload),
        partition,
        offset,
        hash_,
        env.prev_hash,
        raw,
    )


def payload_jsonb(payload: RunEventPayload | ApprovalRequest) -> str:
    """`jsonb(payload_json(payload))`: orjson writes a dataclass as the object of its fields in
    order, tuples as arrays, non-finite numbers as null. What it refuses (integers past 64 bits,
    nesting past its limit) and text holding NUL take the general path, which cleans or
    refuses as it does for every jsonb column."""
    try:
        dumped = orjson.dumps(payload_object(payload))
    except TypeError:  # orjson.JSONEncodeError
        dumped = b"\\u0000"
    if b"\\u0000" in dumped:
        general = jsonb(payload_json(payload))
        assert general is not None  # an object is never SQL NULL
        return general
    return dumped.decode()


_Object = Callable[[Any], dict[str, Any]]
_OBJECTS: dict[type[Any], _Object] = {}


def payload_object(payload: RunEventPayload | ApprovalRequest) -> dict[str, Any]:
    """`payload_json(payload)` as orjson takes it: the same keys in the same order, a nested
    request as its object, tuples left as tuples (orjson writes them as arrays)."""
    make = _OBJECTS.get(type(payload))
    if make is None:
        make = _OBJECTS[type(payload)] = _compiled(type(payload))
    return make(payload)


def _compiled(cls: type[Any]) -> _Object:
    """A dict display of `cls`'s fields (the source holds field names only: identifiers)."""
    items = []
    for name, kind in field_plan(cls):
        if not name.isidentifier():
            raise TypeError(f"{cls.__name__}: a field name that is not an identifier")
        value = f"p.{name}"
        if kind == "request":
            value = f"None if p.{name} is None else nested(p.{name})"
        items.append(f"{name!r}: {value}")
    source = "def make(p):\n    return {" + ", ".join(items) + "}"
    scope: dict[str, Any] = {"nested": payload_object}
    exec(compile(source, f"<payload object {cls.__name__}>", "exec"), scope)
    make: _Object = scope["make"]
    return make
