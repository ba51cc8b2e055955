"""The core projections' fold: an event in, row changes out; no database."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.approval import ApprovalRequest
from events.envelope import EventEnvelope
from events.json import JsonObject
from events.run_events import (
    DecisionAccepted,
    DecisionHeld,
    DecisionRejected,
    GateEvaluated,
    InterruptEscalated,
    InterruptExpired,
    InterruptRaised,
    ModelCalled,
    RunCancelled,
    RunCompleted,
    RunEventPayload,
    RunParked,
    RunStarted,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallScheduled,
    ValueRecorded,
    VoteRecorded,
)
from projections.batch import LoggedEvent
from projections.describe import summarize
from projections.fold import (
    RunView,
    _replace,
    edit_diff,
    event_row,
    fold,
    project,
    timestamp,
)
from projections.rows import InterruptRow, RunRow

T0 = 1_700_000_000_000_000  # µs


@dataclass
class Run:
    """Builds one run's events with contiguous seqs, one millisecond apart."""

    run_id: str = "run-1"
    partition: int = 0
    first_seq: int = 0
    events: list[LoggedEvent] = field(default_factory=list)

    def add(self, payload: RunEventPayload) -> LoggedEvent:
        seq = self.first_seq + len(self.events)
        envelope = EventEnvelope(
            event_id=f"{self.run_id}/{seq}",
            run_id=self.run_id,
            seq=seq,
            occurred_at_us=T0 + seq * 1000,
            agent="refund",
            agent_version="1",
            causation_id="",
            correlation_id=self.run_id,
            prev_hash=f"h{seq - 1}" if seq else "",
            payload=payload,
        )
        event = LoggedEvent(
            envelope=envelope,
            partition=self.partition,
            offset=seq,
            hash=f"h{seq}",
            raw=b"raw",
        )
        self.events.append(event)
        return event


def refund_request(amount: float = 2400.0) -> ApprovalRequest:
    return ApprovalRequest(
        kind="tool",
        title=f"refund(order_id=A-17, amount={amount})",
        tool="refund",
        args={"order_id": "A-17", "amount": amount},
        reasoning="customer asked for a refund",
        risk="high",
        amount=amount,
        allowed=("approve", "edit", "reject"),
        approvers=("role:support-lead",),
        policy="refund-limit@1",
        deadline_us=T0 + 3_600_000_000,
    )


def started() -> RunStarted:
    return RunStarted(
        input={"order_id": "A-17", "amount": 2400}, requested_by="u:ann", command_id="c1"
    )


def raised(interrupt_id: str = "i-1", call: int = 1) -> InterruptRaised:
    return InterruptRaised(call=call, interrupt_id=interrupt_id, request=refund_request())


def accepted(kind: str = "approve", interrupt_id: str = "i-1", **extra: object) -> DecisionAccepted:
    return DecisionAccepted(
        interrupt_id=interrupt_id,
        decision_id=f"d-{interrupt_id}-{kind}",
        kind=kind,  # type: ignore[arg-type]
        decided_by="u:lead",
        **extra,  # type: ignore[arg-type]
    )


def fold_one_by_one(events: Sequence[LoggedEvent]) -> list[RunRow]:
    """The run row after each event."""
    view = RunView()
    rows = []
    for event in events:
        changes = project(view, event)
        view = view.after(changes)
        rows.append(changes.run)
    return rows


def refund_run_with_edit() -> Run:
    run = Run()
    run.add(started())
    run.add(
        ToolCallScheduled(
            call=0,
            tool="lookup_order",
            args={"order_id": "A-17"},
            args_digest="d0",
            idempotency_key="k0",
            idempotent=True,
        )
    )
    run.add(ToolCallCompleted(call=0, result={"paid": 2400.0}))
    run.add(raised())
    run.add(
        DecisionRejected(
            interrupt_id="i-1",
            decision_id="d-x",
            kind="approve",
            decided_by="u:ann",
            reason="the requester may not approve",
        )
    )
    edited = {"order_id": "A-17", "amount": 2000.0, "note": "partial"}
    run.add(accepted("edit", edited_args=edited, reason="partial refund"))
    run.add(
        ToolCallScheduled(
            call=1,
            tool="refund",
            args=edited,
            args_digest="d1",
            idempotency_key="k1",
            idempotent=False,
        )
    )
    run.add(ToolCallCompleted(call=1, result={"refund_id": "rf-1"}))
    run.add(RunCompleted(output={"status": "refunded"}))
    return run


# -- status transitions ---------------------------------------------------------------------------


def test_a_refund_run_goes_running_waiting_running_completed() -> None:
    run = refund_run_with_edit()

    rows = fold_one_by_one(run.events)

    assert [(r.status, r.open_interrupts) for r in rows] == [
        ("running", 0),
        ("running", 0),
        ("running", 0),
        ("waiting", 1),
        ("waiting", 1),  # a refusal changes no status
        ("running", 0),
        ("running", 0),
        ("running", 0),
        ("completed", 0),
    ]
    final = rows[-1]
    assert final.last_seq == 8
    assert final.requested_by == "u:ann"
    assert final.input == {"order_id": "A-17", "amount": 2400}
    assert final.output == {"status": "refunded"}
    assert final.started_at == timestamp(T0)
    assert final.finished_at == timestamp(T0 + 8000)
    assert final.agent == "refund"
    assert final.error is None


def test_fold_of_a_batch_gives_each_run_and_interrupt_once_with_audit_in_order() -> None:
    run = refund_run_with_edit()

    folded = fold({}, run.events)

    assert [r.status for r in folded.runs] == ["completed"]
    assert [(i.interrupt_id, i.status, i.decided_by) for i in folded.interrupts] == [
        ("i-1", "edited", "u:lead")
    ]
    assert [(a.seq, a.action) for a in folded.audit] == [
        (3, "interrupt_raised"),
        (4, "decision_refused"),
        (5, "decision_accepted"),
    ]


def test_two_open_interrupts_keep_the_run_waiting_until_both_are_closed() -> None:
    run = Run()
    run.add(started())
    run.add(raised("i-1", call=0))
    run.add(raised("i-2", call=1))
    run.add(accepted("approve", "i-2"))
    run.add(InterruptExpired(interrupt_id="i-1", action="reject"))

    rows = fold_one_by_one(run.events)

    assert [(r.status, r.open_interrupts) for r in rows] == [
        ("running", 0),
        ("waiting", 1),
        ("waiting", 2),
        ("waiting", 1),
        ("running", 0),
    ]


def test_cancelling_a_waiting_run_withdraws_its_open_interrupts() -> None:
    run = Run()
    run.add(started())
    run.add(raised())
    cancel = run.add(RunCancelled(cancelled_by="u:ops", reason="customer withdrew"))
    view = RunView()
    for event in run.events[:-1]:
        view = view.after(project(view, event))

    changes = project(view, cancel)

    assert (changes.run.status, changes.run.open_interrupts) == ("cancelled", 0)
    assert changes.run.finished_at == timestamp(T0 + 2000)
    assert [(i.interrupt_id, i.status) for i in changes.interrupts] == [("i-1", "withdrawn")]
    assert changes.audit is not None
    assert (changes.audit.action, changes.audit.actor, changes.audit.reason) == (
        "run_cancelled",
        "u:ops",
        "customer withdrew",
    )


def test_a_parked_run_is_finished_with_the_reason_and_can_then_be_cancelled() -> None:
    run = Run()
    run.add(started())
    run.add(
        RunParked(
            reason="non-determinism", call=2, expected="tool refund ab", actual="tool lookup cd"
        )
    )
    run.add(RunCancelled(cancelled_by="u:ops", reason="operator gave up"))

    rows = fold_one_by_one(run.events)
    folded = fold({}, run.events)

    assert rows[1].status == "parked"
    assert rows[1].error is not None
    assert "expected tool refund ab" in rows[1].error
    assert rows[2].status == "cancelled"
    parked = folded.audit[0]
    assert (parked.action, parked.actor, parked.detail) == (
        "run_parked",
        "system:engine",
        {"call": 2, "expected": "tool refund ab", "actual": "tool lookup cd"},
    )


def test_a_finished_run_keeps_its_status_when_a_late_event_arrives() -> None:
    run = Run()
    run.add(started())
    run.add(RunCompleted(output=None))
    run.add(raised())  # cannot happen in a sane history; must not reopen the run

    rows = fold_one_by_one(run.events)

    assert rows[-1].status == "completed"


def test_a_run_whose_start_was_not_seen_still_gets_a_row() -> None:
    run = Run()
    run.add(started())
    late = run.add(raised())

    row = project(RunView(), late).run

    assert (row.run_id, row.agent, row.status, row.requested_by) == (
        "run-1",
        "refund",
        "waiting",
        "",
    )


# -- audit rows ---------------------------------------------------------------------------------


def test_an_edit_is_audited_with_the_diff_from_requested_to_executed_arguments() -> None:
    run = refund_run_with_edit()

    decision = fold({}, run.events).audit[2]

    assert decision.action == "decision_accepted"
    assert (decision.actor, decision.kind, decision.reason) == ("u:lead", "edit", "partial refund")
    assert (decision.tool, decision.policy, decision.risk, decision.amount) == (
        "refund",
        "refund-limit@1",
        "high",
        2400.0,
    )
    assert decision.args == {"order_id": "A-17", "amount": 2400.0}
    assert decision.edited_args == {"order_id": "A-17", "amount": 2000.0, "note": "partial"}
    assert decision.diff == {
        "changed": {"amount": {"from": 2400.0, "to": 2000.0}},
        "added": {"note": "partial"},
        "removed": {},
    }
    assert decision.decision_id == "d-i-1-edit"
    assert decision.at == datetime.fromtimestamp((T0 + 5000) / 1e6, UTC)


def test_a_refused_decision_is_audited_with_why_and_changes_nothing_else() -> None:
    run = Run()
    run.add(started())
    run.add(raised())
    refusal = run.add(
        DecisionRejected(
            interrupt_id="i-1",
            decision_id="d-2",
            kind="approve",
            decided_by="u:ann",
            reason="the requester may not approve",
        )
    )
    view = RunView()
    for event in run.events[:-1]:
        view = view.after(project(view, event))

    changes = project(view, refusal)

    assert changes.interrupts == ()
    assert (changes.run.status, changes.run.open_interrupts) == ("waiting", 1)
    assert changes.audit is not None
    row = changes.audit
    assert (row.action, row.actor, row.kind, row.reason, row.decision_id) == (
        "decision_refused",
        "u:ann",
        "approve",
        "the requester may not approve",
        "d-2",
    )
    assert (row.interrupt_id, row.tool, row.args) == (
        "i-1",
        "refund",
        {"order_id": "A-17", "amount": 2400.0},
    )


def test_a_raised_interrupt_is_audited_and_opens_an_inbox_row() -> None:
    run = Run()
    run.add(started())
    event = run.add(raised())

    changes = project(RunView(), event)

    (interrupt,) = changes.interrupts
    assert (interrupt.status, interrupt.tool, interrupt.level) == ("open", "refund", 1)
    assert (interrupt.quorum, interrupt.votes) == (1, 0)
    assert interrupt.approvers == ("role:support-lead",)
    assert interrupt.deadline == timestamp(T0 + 3_600_000_000)
    assert changes.audit is not None
    assert (changes.audit.action, changes.audit.actor, changes.audit.kind) == (
        "interrupt_raised",
        "agent:refund",
        "tool",
    )
    assert changes.audit.reason == "customer asked for a refund"


def test_expiry_and_escalation_are_audited_and_only_expiry_closes() -> None:
    run = Run()
    run.add(started())
    run.add(raised())
    run.add(
        InterruptEscalated(
            interrupt_id="i-1",
            level=2,
            approvers=("role:cfo",),
            reason="deadline passed at level 0",
        )
    )
    run.add(InterruptExpired(interrupt_id="i-1", action="reject"))

    rows = fold_one_by_one(run.events)
    folded = fold({}, run.events)

    assert [r.status for r in rows] == ["running", "waiting", "waiting", "running"]
    escalation, expiry = folded.audit[1:]
    assert (escalation.action, escalation.detail) == (
        "interrupt_escalated",
        {"level": 2, "approvers": ["role:cfo"]},
    )
    assert (expiry.action, expiry.actor, expiry.kind, expiry.tool) == (
        "interrupt_expired",
        "system:timeout",
        "reject",
        "refund",
    )
    (interrupt,) = folded.interrupts
    assert (interrupt.status, interrupt.level, interrupt.approvers) == ("expired", 2, ("role:cfo",))


def test_votes_are_counted_on_the_open_interrupt_until_the_decision() -> None:
    run = Run()
    run.add(started())
    run.add(raised())
    run.add(VoteRecorded(interrupt_id="i-1", decision_id="v1", decided_by="u:a", votes=1, quorum=2))
    run.add(VoteRecorded(interrupt_id="i-1", decision_id="v2", decided_by="u:b", votes=2, quorum=2))
    run.add(accepted("approve", approved_by=("u:a", "u:b")))

    rows = fold_one_by_one(run.events)
    folded = fold({}, run.events)

    assert [r.status for r in rows] == ["running", "waiting", "waiting", "waiting", "running"]
    votes = [a for a in folded.audit if a.action == "vote_recorded"]
    assert [(v.actor, v.detail, v.tool) for v in votes] == [
        ("u:a", {"votes": 1, "quorum": 2}, "refund"),
        ("u:b", {"votes": 2, "quorum": 2}, "refund"),
    ]
    assert folded.audit[-1].detail == {"approved_by": ["u:a", "u:b"]}
    (interrupt,) = folded.interrupts
    assert (interrupt.status, interrupt.votes, interrupt.quorum) == ("approved", 2, 2)


def test_a_decision_held_for_a_later_interrupt_is_audited_and_changes_nothing() -> None:
    run = Run()
    run.add(started())
    held = run.add(
        DecisionHeld(
            interrupt_id="i-9",
            decision_id="d-9",
            kind="approve",
            decided_by="u:lead",
            issued_at_us=T0,
        )
    )
    view = RunView()
    view = view.after(project(view, run.events[0]))

    changes = project(view, held)

    assert changes.interrupts == ()
    assert changes.run.status == "running"
    assert changes.audit is not None
    assert (changes.audit.action, changes.audit.actor, changes.audit.interrupt_id) == (
        "decision_held",
        "u:lead",
        "i-9",
    )


def test_a_gate_evaluation_moves_the_run_on_and_is_audited() -> None:
    run = Run()
    run.add(started())
    gate = run.add(
        GateEvaluated(
            call=0,
            tool="refund",
            args_digest="d",
            action="auto",
            policy="never@1",
            rule="small",
            risk="low",
            confidence=0.9,
            amount=20.0,
        )
    )
    view = RunView()
    view = view.after(project(view, run.events[0]))

    changes = project(view, gate)

    assert (changes.run.last_seq, changes.interrupts) == (1, ())
    audit = changes.audit
    assert audit is not None
    assert (audit.action, audit.actor, audit.tool, audit.kind, audit.risk, audit.amount) == (
        "gate_evaluated",
        "policy:never@1",
        "refund",
        "auto",
        "low",
        20.0,
    )
    assert audit.detail == {
        "call": 0,
        "round": 1,
        "rule": "small",
        "confidence": 0.9,
        "levels": None,
    }
    assert fold({}, run.events).audit[-1] == audit  # the batch fold audits it too


def test_duplicated_events_do_not_skew_the_open_count() -> None:
    run = Run()
    run.add(started())
    raise_event = run.add(raised())
    decide = run.add(accepted())
    events = [*run.events, raise_event, decide]  # the same two events again

    rows = fold_one_by_one(events)

    assert [(r.status, r.open_interrupts) for r in rows][-3:] == [
        ("running", 0),
        ("running", 0),
        ("running", 0),
    ]


def test_a_decision_for_an_unknown_interrupt_is_audited_without_the_request() -> None:
    run = Run()
    run.add(started())
    decision = run.add(accepted("approve", "i-404"))

    changes = project(RunView(), decision)

    assert changes.audit is not None
    assert (changes.audit.interrupt_id, changes.audit.tool, changes.audit.args) == (
        "i-404",
        None,
        None,
    )
    assert changes.run.open_interrupts == 0


# -- edit diff and the events index row ------------------------------------------------------------


def test_edit_diff_compares_json_values_not_python_ones() -> None:
    requested: JsonObject = {"a": 1, "b": True, "c": [1, 2], "d": "x", "gone": 0}
    executed: JsonObject = {"a": 1.0, "b": 1, "c": [1, 2], "d": "y", "new": None}

    assert edit_diff(requested, executed) == {
        "changed": {"b": {"from": True, "to": 1}, "d": {"from": "x", "to": "y"}},
        "added": {"new": None},
        "removed": {"gone": 0},
    }
    assert edit_diff(None, {"a": 1}) == {"changed": {}, "added": {"a": 1}, "removed": {}}


def test_event_row_carries_position_hash_and_payload() -> None:
    run = Run(partition=3)
    run.add(started())
    event = run.add(raised())

    row = event_row(event)

    assert (row.run_id, row.seq, row.type, row.partition, row.offset) == (
        "run-1",
        1,
        "InterruptRaised",
        3,
        1,
    )
    assert (row.hash, row.prev_hash, row.raw) == ("h1", "h0", b"raw")
    assert row.occurred_at == timestamp(T0 + 1000)
    assert row.payload["interrupt_id"] == "i-1"
    request = row.payload["request"]
    assert isinstance(request, dict)
    assert request["allowed"] == ["approve", "edit", "reject"]


def test_timeline_summaries_say_what_happened() -> None:
    assert summarize(raised()) == (
        "call 1: tool interrupt i-1: refund(order_id=A-17, amount=2400.0) (risk high)"
    )
    assert summarize(accepted("edit", reason="too much")) == "edit by u:lead accepted: too much"
    assert summarize(RunCompleted(output={"status": "ok"})) == 'completed with {"status":"ok"}'
    long = summarize(ToolCallCompleted(call=2, result="x" * 500))
    assert long.endswith("…")
    assert len(long) < 100


# -- batching does not change the result -----------------------------------------------------------


@dataclass
class Tables:
    """What the store keeps between batches, and the views it loads for the next one."""

    runs: dict[str, RunRow] = field(default_factory=dict)
    interrupts: dict[str, InterruptRow] = field(default_factory=dict)
    audit: list[tuple[int, str]] = field(default_factory=list)

    def views(self, events: Sequence[LoggedEvent]) -> dict[str, RunView]:
        named = {getattr(e.envelope.payload, "interrupt_id", None) for e in events}
        views = {}
        for run_id in {e.envelope.run_id for e in events}:
            known = {
                i.interrupt_id: i
                for i in self.interrupts.values()
                if i.run_id == run_id and (i.status == "open" or i.interrupt_id in named)
            }
            views[run_id] = RunView(run=self.runs.get(run_id), interrupts=known)
        return views

    def apply(self, events: Sequence[LoggedEvent]) -> None:
        folded = fold(self.views(events), events)
        self.runs.update((r.run_id, r) for r in folded.runs)
        self.interrupts.update((i.interrupt_id, i) for i in folded.interrupts)
        self.audit.extend((a.seq, a.action) for a in folded.audit)


def many_runs() -> list[LoggedEvent]:
    a = refund_run_with_edit()
    b = Run(run_id="run-2")
    b.add(started())
    b.add(raised("j-1", call=0))
    b.add(raised("j-2", call=1))
    b.add(accepted("approve", "j-1"))
    b.add(InterruptEscalated(interrupt_id="j-2", level=1, approvers=("role:cfo",), reason="late"))
    b.add(ModelCalled(call=2, request_digest="m", request={"q": 1}, response={"a": 2}))
    b.add(ValueRecorded(call=3, kind="now", value=1))
    c = Run(run_id="run-3")
    c.add(started())
    c.add(raised("k-1"))
    c.add(RunCancelled(cancelled_by="u:ops", reason="stop"))
    d = Run(run_id="run-4", first_seq=5)  # its start is not in the log we read
    d.add(ToolCallCompleted(call=2, result=None))
    d.add(ValueRecorded(call=3, kind="uuid", value="u-1"))
    d.add(raised("m-1", call=4))
    d.add(ToolCallFailed(call=5, error_type="E", error="boom"))
    # Interleave the runs the way one partition would hold them.
    out: list[LoggedEvent] = []
    streams = [list(a.events), list(b.events), list(c.events), list(d.events)]
    while any(streams):
        for stream in streams:
            if stream:
                out.append(stream.pop(0))
    return out


@given(st.sets(st.integers(min_value=1, max_value=16), max_size=6))
def test_any_cut_into_batches_gives_the_same_rows(cuts: set[int]) -> None:
    events = many_runs()
    whole = Tables()
    whole.apply(events)
    batched = Tables()
    bounds = [0, *sorted(c for c in cuts if c < len(events)), len(events)]

    for start, end in itertools.pairwise(bounds):
        batched.apply(events[start:end])

    assert batched.runs == whole.runs
    assert batched.interrupts == whole.interrupts
    assert batched.audit == whole.audit
    final = {r: (row.status, row.open_interrupts, row.last_seq) for r, row in whole.runs.items()}
    assert final == {
        "run-1": ("completed", 0, 8),
        "run-2": ("waiting", 1, 6),
        "run-3": ("cancelled", 0, 2),
        "run-4": ("waiting", 1, 8),
    }


def test_fold_of_a_batch_equals_projecting_event_by_event() -> None:
    events = many_runs()
    views: dict[str, RunView] = {}
    last: dict[str, RunRow] = {}
    for event in events:
        run_id = event.envelope.run_id
        view = views.get(run_id, RunView())
        changes = project(view, event)
        views[run_id] = view.after(changes)
        last[run_id] = changes.run

    folded = fold({}, events)

    assert {r.run_id: r for r in folded.runs} == last
    assert folded.runs[3].started_at == timestamp(T0 + 5000)  # its first event we saw


def test_the_rows_copy_is_dataclasses_replace() -> None:
    at = timestamp(1_700_000_000_000_000)
    run = RunRow(
        run_id="r",
        agent="a",
        agent_version="1",
        requested_by="u",
        status="running",
        started_at=at,
        updated_at=at,
        finished_at=None,
        last_seq=1,
        open_interrupts=0,
        input={"x": 1},
        output=None,
        error=None,
    )
    changes = {"status": "completed", "last_seq": 9, "finished_at": at, "error": "e"}

    copied = _replace(run, **changes)

    assert copied == dataclasses.replace(run, **changes)  # type: ignore[arg-type]
    assert copied is not run
    assert run.status == "running"
    with pytest.raises(TypeError, match="no field"):
        _replace(run, colour="red")
