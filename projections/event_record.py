"""The events index record of an event, as PostgreSQL takes it, built from the event. Pure.

`EVENTS.record(event_row(event))` says what the record is; this builds the same tuple without
the `EventRow` in between and writes the payload's JSON with orjson straight from the payload
dataclass. The events index is written once per event, and the row object and the standard
encoder were a third of the projector's CPU outside decoding.
"""

from __future__ import annotations

from typing import Any

import orjson

from events.approval import ApprovalRequest
from events.run_events import RunEventPayload
from projections.batch import LoggedEvent
from projections.describe import payload_json
from projections.fold import timestamp
from projections.store_columns import jsonb


def event_record(event: LoggedEvent) -> tuple[Any, ...]:
    """The `cs_events` values of `event`, in `EVENTS.written` order."""
    env = event.envelope
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
        event.partition,
        event.offset,
        event.hash,
        env.prev_hash,
        event.raw,
    )


def payload_jsonb(payload: RunEventPayload | ApprovalRequest) -> str:
    """`jsonb(payload_json(payload))`: orjson writes a dataclass as the object of its fields in
    order, tuples as arrays, non-finite numbers as null. What it refuses (integers past 64 bits,
    nesting past its limit) and text holding NUL take the general path, which cleans or
    refuses as it does for every jsonb column."""
    try:
        dumped = orjson.dumps(payload)
    except TypeError:  # orjson.JSONEncodeError
        dumped = b"\\u0000"
    if b"\\u0000" in dumped:
        general = jsonb(payload_json(payload))
        assert general is not None  # an object is never SQL NULL
        return general
    return dumped.decode()
