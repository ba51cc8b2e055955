"""Rows to PostgreSQL values: the events' records, derived from the row type."""

from __future__ import annotations

import dataclasses
import json
import math
from decimal import Decimal
from typing import Any, get_args

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.approval import ApprovalRequest
from events.codec import Codec
from events.envelope import EventEnvelope, hash_encoded
from events.json import Json
from events.run_events import InterruptRaised, RunEventPayload, RunStarted, ToolCallCompleted
from projections.batch import LoggedEvent
from projections.event_record import event_record, payload_object
from projections.fold import event_row
from projections.store_columns import _clean, columns_of, jsonb
from projections.store_tables import EVENTS
from tests.strategies import envelope_strategy, json_values
from tests.unit.golden import payload_fixtures

CODEC = Codec()


def logged(seq: int, payload: RunEventPayload) -> LoggedEvent:
    envelope = EventEnvelope(
        event_id=f"e{seq}",
        run_id="r",
        seq=seq,
        occurred_at_us=1_700_000_000_000_000 + seq,
        agent="a",
        agent_version="1",
        causation_id="c",
        correlation_id="k",
        prev_hash=f"h{seq - 1}" if seq else "",
        payload=payload,
    )
    raw = CODEC.encode(envelope)
    return LoggedEvent(
        envelope=envelope, partition=2, offset=40 + seq, hash=hash_encoded(raw), raw=raw
    )


def test_the_events_records_come_from_the_rows_in_column_order() -> None:
    request = ApprovalRequest(kind="tool", title="t", tool="x", args={"a": "nul \x00"})
    events = [
        logged(0, RunStarted(input={"n": 1.5}, requested_by="u", command_id="c")),
        logged(1, InterruptRaised(call=0, interrupt_id="i", request=request)),
        logged(2, ToolCallCompleted(call=0, result=[1, "two", None])),
    ]

    records = EVENTS.records(event_row(e) for e in events)

    assert [r[0] for r in records] == ["r", "r", "r"]  # run_id first, as cs_events has it
    columns = columns_of(records)
    assert columns is not None
    assert columns[1] == [0, 1, 2]
    assert columns[-1] == [e.raw for e in events]
    assert '"nul \ufffd"' in records[1][9]  # cleaned for jsonb


# -- the events record built straight from the event (`event_record`) ------------------------


def _json(text: str) -> object:
    """JSON text as a value that keeps key order and exact decimal numbers (what jsonb keeps:
    `1e-05` and `0.00001` are one number)."""
    return json.loads(text, object_pairs_hook=list, parse_float=Decimal)


def _same_record(fast: tuple[Any, ...], general: tuple[Any, ...]) -> None:
    payload = EVENTS.written.index("payload")
    assert fast[:payload] == general[:payload]
    assert fast[payload + 1 :] == general[payload + 1 :]
    assert _json(fast[payload]) == _json(general[payload])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(get_args(RunEventPayload)).flatmap(envelope_strategy))
def test_event_record_is_the_record_of_the_event_row(envelope: EventEnvelope) -> None:
    event = LoggedEvent(envelope=envelope, partition=3, offset=7, hash="h", raw=b"\x00raw")
    try:
        general = EVENTS.record(event_row(event))
    except OverflowError:  # a time past year 9999: refused both ways
        with pytest.raises(OverflowError):
            event_record(event)
        return
    _same_record(event_record(event), general)


def test_event_record_matches_for_every_golden_event() -> None:
    envelopes = [m for m in payload_fixtures().values() if isinstance(m, EventEnvelope)]
    assert {type(e.payload) for e in envelopes} == set(get_args(RunEventPayload))
    for offset, envelope in enumerate(envelopes):
        event = LoggedEvent(envelope=envelope, partition=0, offset=offset, hash="h", raw=b"r")
        _same_record(event_record(event), EVENTS.record(event_row(event)))


def test_a_payload_orjson_refuses_or_holding_nul_takes_the_general_path() -> None:
    huge = ToolCallCompleted(call=0, result={"n": 2**70, "s": "a\x00b", "x": [math.nan]})
    envelope = logged(0, RunStarted(input=None, requested_by="u", command_id="c")).envelope
    envelope = dataclasses.replace(envelope, payload=huge)
    event = LoggedEvent(envelope=envelope, partition=0, offset=0, hash="h", raw=b"")
    record = event_record(event)
    payload = record[EVENTS.written.index("payload")]
    expected = {"call": 0, "result": {"n": 2**70, "s": "a\ufffdb", "x": [None]}}
    assert _json(payload) == _json(json.dumps(expected))


# -- jsonb: orjson first, the standard encoder for what orjson refuses ------------------------


def _standard(value: Json) -> str | None:
    """What `jsonb` wrote before orjson: the standard encoder, cleaned on NaN or NUL."""
    if value is None:
        return None
    encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    try:
        dumped = encoder.encode(value)
    except ValueError:
        return encoder.encode(_clean(value))
    return encoder.encode(_clean(value)) if "\\u0000" in dumped else dumped


_ODD = st.sampled_from(
    [math.nan, math.inf, -math.inf, 2**64, -(2**70), "nul\x00", "\\u0000", 1e16, 1e-05, -0.0]
)
_VALUES = st.recursive(
    json_values | _ODD,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(_VALUES)
def test_jsonb_writes_what_the_standard_encoder_wrote(value: Json) -> None:
    fast, general = jsonb(value), _standard(value)
    if general is None:
        assert fast is None
        return
    assert fast is not None
    assert _json(fast) == _json(general)


def test_jsonb_refuses_a_lone_surrogate_as_before() -> None:
    written = jsonb({"s": "\ud800"})  # orjson refuses it; the standard encoder writes it
    assert written == _standard({"s": "\ud800"})
    with pytest.raises(UnicodeEncodeError):  # and the driver refuses it: an unstorable batch
        str(written).encode("utf-8")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(get_args(RunEventPayload)).flatmap(envelope_strategy))
def test_the_payload_object_dumps_as_orjson_dumped_the_payload(envelope: EventEnvelope) -> None:
    """What orjson wrote from the dataclass before, byte for byte (or refused the same way)."""
    try:
        before = orjson.dumps(envelope.payload)
    except orjson.JSONEncodeError:
        with pytest.raises(orjson.JSONEncodeError):
            orjson.dumps(payload_object(envelope.payload))
        return
    assert orjson.dumps(payload_object(envelope.payload)) == before


def test_the_payload_object_of_every_golden_event() -> None:
    for message in payload_fixtures().values():
        if isinstance(message, EventEnvelope):
            assert orjson.dumps(payload_object(message.payload)) == orjson.dumps(message.payload)
