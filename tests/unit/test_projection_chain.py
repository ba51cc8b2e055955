"""Hash-chain verification, pure: every kind of tampering is found, lag is not a break."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from events.approval import ApprovalRequest
from events.codec import Codec
from events.envelope import GENESIS_HASH, EventEnvelope, hash_encoded
from events.run_events import (
    DecisionAccepted,
    InterruptRaised,
    RunCompleted,
    RunEventPayload,
    RunStarted,
    ToolCallCompleted,
)
from projections.batch import LoggedEvent
from projections.chain import (
    Link,
    audit_break,
    chain_break,
    comparison_break,
    log_link,
    log_links,
    projection_links,
)
from projections.fold import event_row, fold
from projections.rows import EventRow

CODEC = Codec()
RUN = "run-1"


def history() -> list[RunEventPayload]:
    request = ApprovalRequest(kind="tool", title="refund", tool="refund", args={"amount": 5})
    return [
        RunStarted(input={"amount": 5}, requested_by="u:ann", command_id="c"),
        InterruptRaised(call=0, interrupt_id="i-1", request=request),
        DecisionAccepted(interrupt_id="i-1", decision_id="d", kind="approve", decided_by="u:bo"),
        ToolCallCompleted(call=0, result={"ok": True}),
        RunCompleted(output={"done": True}),
    ]


def encode_all(payloads: list[RunEventPayload]) -> list[tuple[EventEnvelope, bytes]]:
    out, prev = [], GENESIS_HASH
    for seq, payload in enumerate(payloads):
        envelope = EventEnvelope(
            event_id=f"{RUN}/{seq}",
            run_id=RUN,
            seq=seq,
            occurred_at_us=1_700_000_000_000_000 + seq,
            agent="refund",
            agent_version="1",
            causation_id="",
            correlation_id="",
            prev_hash=prev,
            payload=payload,
        )
        data = CODEC.encode(envelope)
        prev = hash_encoded(data)
        out.append((envelope, data))
    return out


@pytest.fixture
def encoded() -> list[tuple[EventEnvelope, bytes]]:
    return encode_all(history())


def links_of(encoded: list[tuple[EventEnvelope, bytes]]) -> list[Link]:
    return [log_link(0, offset, data, env) for offset, (env, data) in enumerate(encoded)]


def rows_of(encoded: list[tuple[EventEnvelope, bytes]]) -> list[EventRow]:
    return [
        event_row(
            LoggedEvent(envelope=env, partition=0, offset=i, hash=hash_encoded(data), raw=data)
        )
        for i, (env, data) in enumerate(encoded)
    ]


# -- the log --------------------------------------------------------------------------------------


def test_an_intact_chain_has_no_break(encoded: list[tuple[EventEnvelope, bytes]]) -> None:
    links, problem = log_links(RUN, links_of(encoded))

    assert problem is None
    assert [link.seq for link in links] == [0, 1, 2, 3, 4]


def test_a_record_repeated_byte_for_byte_is_harmless_but_a_fork_is_not(
    encoded: list[tuple[EventEnvelope, bytes]],
) -> None:
    links = links_of(encoded)
    repeated = [*links, dataclasses.replace(links[2], offset=9)]
    assert log_links(RUN, repeated)[1] is None

    other = encode_all([*history()[:2], RunCompleted(output="forked")])[2]
    forked = [*links, log_link(0, 9, other[1], other[0])]
    problem = log_links(RUN, forked)[1]
    assert problem is not None
    assert (problem.where, problem.seq) == ("log", 2)
    assert "two different events claim seq 2" in problem.what


@pytest.mark.parametrize(
    ("change", "seq", "what"),
    [
        (lambda ls: ls[:2] + ls[3:], 2, "seq 2 is missing"),
        (lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], 1, "seq 1 is missing"),
        (lambda ls: ls[1:], 0, "seq 0 is missing"),
        (lambda ls: [*ls[:3], dataclasses.replace(ls[3], prev_hash="f00")], 3, "prev_hash"),
        (lambda ls: [*ls[:2], ls[1], *ls[2:]], 2, "comes again"),
    ],
    ids=["gap", "swapped", "no-start", "wrong-prev-hash", "repeated-seq"],
)
def test_every_break_of_the_chain_is_found_at_its_seq(
    encoded: list[tuple[EventEnvelope, bytes]], change: object, seq: int, what: str
) -> None:
    links = change(links_of(encoded))  # type: ignore[operator]

    problem = chain_break(RUN, links, "log")

    assert problem is not None
    assert (problem.seq, problem.where) == (seq, "log")
    assert what in problem.what


# -- the projection -------------------------------------------------------------------------------


def check_rows(rows: list[EventRow]) -> tuple[int | None, str]:
    _, _, problem = projection_links(RUN, rows, CODEC.decode_event)
    assert problem is not None
    return problem.seq, problem.what


def test_intact_rows_decode_and_chain(encoded: list[tuple[EventEnvelope, bytes]]) -> None:
    links, envelopes, problem = projection_links(RUN, rows_of(encoded), CODEC.decode_event)

    assert problem is None
    assert links == [dataclasses.replace(link) for link in links_of(encoded)]
    assert [e.seq for e in envelopes] == [0, 1, 2, 3, 4]


def test_a_changed_byte_is_found(encoded: list[tuple[EventEnvelope, bytes]]) -> None:
    rows = rows_of(encoded)
    raw = bytearray(rows[2].raw)
    raw[-1] ^= 1
    rows[2] = dataclasses.replace(rows[2], raw=bytes(raw))

    assert check_rows(rows) == (
        2,
        f"stored hash {rows[2].hash[:12]}… is not the hash of the stored bytes "
        f"({hash_encoded(bytes(raw))[:12]}…): the bytes or the hash were changed",
    )


def test_bytes_and_hash_changed_together_break_the_next_link(
    encoded: list[tuple[EventEnvelope, bytes]],
) -> None:
    forged = encode_all([*history()[:2], RunCompleted(output="forged")])[2][1]
    rows = rows_of(encoded)
    rows[2] = dataclasses.replace(rows[2], raw=forged, hash=hash_encoded(forged))

    seq, what = check_rows(rows)

    assert seq == 2  # its type and payload columns no longer match its bytes
    assert "column type" in what


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("payload", {"kind": "reject"}, "the payload column differs"),
        ("type", "DecisionRejected", "column type"),
        ("seq", 7, "column seq"),
        ("prev_hash", "00", "column prev_hash"),
    ],
)
def test_a_column_that_disagrees_with_its_bytes_is_found(
    encoded: list[tuple[EventEnvelope, bytes]], column: str, value: object, message: str
) -> None:
    rows = rows_of(encoded)
    rows[2] = dataclasses.replace(rows[2], **{column: value})

    seq, what = check_rows(rows)

    assert seq == (7 if column == "seq" else 2)
    assert message in what


def test_deleted_and_reordered_rows_are_found(encoded: list[tuple[EventEnvelope, bytes]]) -> None:
    rows = rows_of(encoded)

    assert check_rows(rows[:1] + rows[2:]) == (1, "seq 1 is missing (the next event has seq 2)")
    swapped = [
        dataclasses.replace(rows[0], seq=1),
        dataclasses.replace(rows[1], seq=0),
        *rows[2:],
    ]
    assert check_rows(sorted(swapped, key=lambda r: r.seq)) == (
        0,
        "column seq is 0 but the event's bytes say 1",
    )


# -- the log against the projection ---------------------------------------------------------------


def test_the_projection_must_hold_what_the_log_holds_up_to_its_position(
    encoded: list[tuple[EventEnvelope, bytes]],
) -> None:
    log = links_of(encoded)
    projected = links_of(encoded)

    assert comparison_break(RUN, log, projected, {0: 5}) is None
    assert comparison_break(RUN, log, projected[:3], {0: 3}) is None  # lag: not a break
    problem = comparison_break(RUN, log, projected[:3], {0: 5})  # the tail is gone
    assert problem is not None
    assert (problem.seq, problem.what) == (3, "in the log but missing from the projection")
    recorded = comparison_break(RUN, log, projected[:3], {0: 5}, {(0, 3): "unstorable: x"})
    assert recorded is not None
    assert "recorded an error for it: unstorable: x" in recorded.what


def test_a_projection_that_differs_from_the_log_or_has_more_is_found(
    encoded: list[tuple[EventEnvelope, bytes]],
) -> None:
    log = links_of(encoded)
    other = dataclasses.replace(log[1], hash="beef")

    different = comparison_break(RUN, log, [log[0], other, *log[2:]], {0: 5})
    extra = comparison_break(RUN, log[:3], log, {0: 5})

    assert different is not None
    assert (different.seq, different.where) == (1, "comparison")
    assert extra is not None
    assert (extra.seq, extra.what) == (3, "in the projection but not in the log")


# -- the audit rows -------------------------------------------------------------------------------


def test_audit_rows_must_be_what_the_events_say(
    encoded: list[tuple[EventEnvelope, bytes]],
) -> None:
    events = [
        LoggedEvent(envelope=env, partition=0, offset=i, hash=hash_encoded(data), raw=data)
        for i, (env, data) in enumerate(encoded)
    ]
    expected = fold({}, events).audit
    stored = [dataclasses.replace(row, id=n) for n, row in zip(itertools.count(1), expected)]

    assert audit_break(RUN, expected, stored) is None
    changed = audit_break(RUN, expected, [stored[0], dataclasses.replace(stored[1], actor="eve")])
    missing = audit_break(RUN, expected, stored[:1])
    extra = audit_break(RUN, expected[:1], stored)

    assert changed is not None
    assert (changed.seq, changed.what) == (
        2,
        "decision_accepted row differs from the event in actor",
    )
    assert missing is not None
    assert (missing.seq, missing.what) == (2, "decision_accepted row is missing")
    assert extra is not None
    assert extra.what == "decision_accepted row is not what any event says"
