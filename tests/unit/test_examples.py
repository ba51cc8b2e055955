"""Each approval pattern in `examples/` works as its docstring says."""

from __future__ import annotations

import pytest

from events.run_events import InterruptRaised, ToolCallScheduled
from examples import approve_before_commit, collaborative, email_review, exception_based
from tests.unit.approvals_sim import Sim

# -- approve before commit -------------------------------------------------------------------------


def test_approve_before_commit_previews_asks_once_then_applies_exactly_the_preview() -> None:
    before = len(approve_before_commit.APPLIED)
    sim = Sim(approve_before_commit.app, "price-update", {"sku_prefix": "TEA-", "percent": 10})

    [raised] = sim.of_type(InterruptRaised)
    assert [s.tool for s in sim.of_type(ToolCallScheduled)] == ["preview_changes"]
    assert raised.request.context == {
        "preview": [
            {"sku": "TEA-1", "from": 4.0, "to": 4.4},
            {"sku": "TEA-2", "from": 6.5, "to": 7.15},
        ]
    }
    assert raised.request.allowed == ("approve", "reject")
    assert len(approve_before_commit.APPLIED) == before  # nothing committed before approval

    assert sim.decide(raised.interrupt_id, "approve", "bob", digest=raised.request.digest).accepted

    assert sim.output == {"status": "applied", "result": {"applied": 2}, "approved_by": "bob"}
    assert len(sim.of_type(InterruptRaised)) == 1
    assert approve_before_commit.APPLIED[-1]["changes"] == raised.request.context["preview"]  # type: ignore[index, call-overload]


def test_approve_before_commit_rejected_commits_nothing() -> None:
    before = len(approve_before_commit.APPLIED)
    sim = Sim(approve_before_commit.app, "price-update", {"sku_prefix": "TEA-", "percent": 10})

    sim.decide(sim.only_open().interrupt_id, "reject", "bob", reason="not before the sale")

    assert sim.output == {"status": "not applied", "reason": "not before the sale", "by": "bob"}
    assert len(approve_before_commit.APPLIED) == before


def test_approve_before_commit_refuses_an_edit() -> None:
    sim = Sim(approve_before_commit.app, "price-update", {"sku_prefix": "TEA-", "percent": 10})

    verdict = sim.decide(sim.only_open().interrupt_id, "edit", "bob", edited_args={})

    assert "not allowed" in verdict.reason


# -- exception-based -------------------------------------------------------------------------------


def _exception_run(batches: list[str], budget: float, seconds: float = 1.0) -> Sim:
    return Sim(
        exception_based.app,
        "invoice-sync",
        {"batches": [*batches], "budget": budget},
        tool_seconds=lambda effect: seconds if effect.tool == "sync_batch" else 0.0,
    )


def test_exception_based_runs_without_anyone_when_nothing_is_odd() -> None:
    sim = _exception_run(["b1", "b2", "b3"], budget=100)

    assert not sim.of_type(InterruptRaised)
    assert sim.output == {"status": "synced", "done": ["b1", "b2", "b3"], "spent": 3.0, "notes": []}


@pytest.mark.parametrize(
    ("rows", "budget", "seconds", "anomaly"),
    [
        (5000, 1000, 1.0, "scale: 5000 rows, expected about 100"),
        (100, 1.1, 1.0, "budget: 1 of 1.1 spent"),
        (100, 1000, 30.0, "slow: the step took 30s, usually 2s"),
    ],
    ids=["scale", "budget", "slow"],
)
def test_exception_based_interrupts_with_the_anomaly(
    rows: int, budget: float, seconds: float, anomaly: str
) -> None:
    exception_based.ROWS["odd"] = rows
    try:
        sim = _exception_run(["odd", "b2"], budget=budget, seconds=seconds)
    finally:
        del exception_based.ROWS["odd"]

    raised = sim.only_open()
    assert raised.request.title == f"Anomaly after batch odd: {anomaly}"
    assert raised.request.context["anomalies"] == [anomaly]  # type: ignore[index, call-overload]

    sim.decide(raised.interrupt_id, "reject", "ops")
    assert sim.output == {"status": "stopped", "after": "odd", "by": "ops", "done": ["odd"]}


def test_exception_based_timing_is_recorded_so_replay_sees_the_same_durations() -> None:
    exception_based.ROWS["odd"] = 5000
    try:
        sim = _exception_run(["odd"], budget=1000, seconds=30.0)
    finally:
        del exception_based.ROWS["odd"]
    sim.decide(sim.only_open().interrupt_id, "respond", "ops", response="known spike")

    assert sim.output == {
        "status": "synced",
        "done": ["odd"],
        "spent": 50.0,
        "notes": ["known spike"],
    }
    replayer = sim.replayed()
    assert replayer.advance().events[-1] == sim.events[-1]  # no clock asked: durations recorded


# -- collaborative ---------------------------------------------------------------------------------


def _offsite() -> Sim:
    return Sim(collaborative.app, "offsite", {"team": "support", "budget": 3000})


def test_collaborative_offers_options_and_books_the_one_picked() -> None:
    sim = _offsite()
    raised = sim.only_open()
    options = raised.request.context["options"]  # type: ignore[index, call-overload]
    assert [o["id"] for o in options] == ["A", "B", "C"]

    assert sim.decide(raised.interrupt_id, "respond", "alice", response={"choice": "B"}).accepted

    assert sim.output["plan"] == "Escape room and dinner"  # type: ignore[index, call-overload]
    assert sim.output["chosen_by"] == "alice"  # type: ignore[index, call-overload]


def test_collaborative_takes_the_persons_own_option() -> None:
    sim = _offsite()

    sim.decide(
        sim.only_open().interrupt_id,
        "respond",
        "alice",
        response={"choice": "own", "text": "Picnic"},
    )

    assert sim.output["plan"] == "Picnic"  # type: ignore[index, call-overload]
    assert collaborative.BOOKED[-1]["plan"] == "Picnic"


@pytest.mark.parametrize(
    "response", [{"choice": "D"}, {"text": "Picnic"}, {"choice": "A", "extra": 1}, "B"]
)
def test_collaborative_refuses_an_answer_outside_its_schema(response: object) -> None:
    sim = _offsite()
    raised = sim.only_open()

    verdict = sim.decide(raised.interrupt_id, "respond", "alice", response=response)

    assert not verdict.accepted
    assert verdict.reason.startswith("the answer does not fit")
    assert sim.only_open() == raised


# -- email with edit -------------------------------------------------------------------------------


def test_email_reviewer_edits_the_body_and_the_edited_email_is_sent() -> None:
    sim = Sim(email_review.app, "email", {"to": "ann@example.com", "customer": "Ann"})
    raised = sim.only_open()
    assert raised.request.approvers == ("role:support",)
    edited = {**(raised.request.args or {}), "body": "Dear Ann, the refund left today."}

    assert sim.decide(raised.interrupt_id, "edit", "carol", edited_args=edited).accepted

    assert email_review.SENT[-1]["body"] == "Dear Ann, the refund left today."
    assert sim.output == {"status": "sent", "as_sent": edited, "approved_by": "carol"}


def test_email_edit_with_a_missing_field_is_refused_and_nothing_is_sent() -> None:
    sent = len(email_review.SENT)
    sim = Sim(email_review.app, "email", {"to": "ann@example.com", "customer": "Ann"})

    verdict = sim.decide(
        sim.only_open().interrupt_id,
        "edit",
        "carol",
        edited_args={"to": "ann@example.com", "body": "x"},
    )

    assert verdict.reason == "the edited arguments are invalid: subject is required"
    assert len(email_review.SENT) == sent


def test_email_to_an_outside_address_needs_a_lead() -> None:
    sim = Sim(email_review.app, "email", {"to": "ann@elsewhere.org", "customer": "Ann"})
    raised = sim.only_open()

    assert (raised.request.risk, raised.request.approvers, raised.request.policy) == (
        "high",
        ("role:support-lead",),
        "external-recipient@1",
    )
    assert not sim.decide(raised.interrupt_id, "approve", "carol").accepted
    assert sim.decide(raised.interrupt_id, "approve", "lena").accepted
