"""Rows to PostgreSQL values: the events' records, derived from the row type."""

from __future__ import annotations

from events.approval import ApprovalRequest
from events.codec import Codec
from events.envelope import EventEnvelope, hash_encoded
from events.run_events import InterruptRaised, RunEventPayload, RunStarted, ToolCallCompleted
from projections.batch import LoggedEvent
from projections.fold import event_row
from projections.store_columns import columns_of
from projections.store_tables import EVENTS

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
