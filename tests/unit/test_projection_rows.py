"""Rows to PostgreSQL values: the hot path's records equal the rows' records."""

from __future__ import annotations

from events.approval import ApprovalRequest
from events.codec import Codec
from events.envelope import EventEnvelope, hash_encoded
from events.run_events import InterruptRaised, RunEventPayload, RunStarted, ToolCallCompleted
from projections.batch import LoggedEvent
from projections.fold import event_row
from projections.store_rows import columns_of, event_records, logged_records

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


def test_records_straight_from_the_envelopes_equal_the_rows_records() -> None:
    request = ApprovalRequest(kind="tool", title="t", tool="x", args={"a": "nul \x00"})
    events = [
        logged(0, RunStarted(input={"n": 1.5}, requested_by="u", command_id="c")),
        logged(1, InterruptRaised(call=0, interrupt_id="i", request=request)),
        logged(2, ToolCallCompleted(call=0, result=[1, "two", None])),
    ]

    fast = logged_records(events)

    assert fast == event_records([event_row(e) for e in events])
    assert columns_of(fast)[1] == [0, 1, 2]
    assert '"nul \ufffd"' in fast[1][9]  # cleaned for jsonb
