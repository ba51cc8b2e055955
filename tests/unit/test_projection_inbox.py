"""The inbox's pure parts: SLA states, who may decide, ages."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from projections.inbox import InboxItem, at_deadline, deciders, role_names, sla_state
from projections.rows import InterruptRow

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def request(**changes: object) -> InterruptRow:
    base = InterruptRow(
        interrupt_id="i-1",
        run_id="r-1",
        seq=3,
        call=1,
        kind="tool",
        title="refund(amount=2400)",
        tool="refund",
        args={"amount": 2400},
        risk="high",
        amount=2400.0,
        policy="refund-limit@1",
        approvers=("role:support-lead", "carol"),
        allowed=("approve", "edit", "reject"),
        deadline=NOW + 3 * HOUR,
        on_timeout="reject",
        level=1,
        quorum=1,
        votes=0,
        status="open",
        raised_at=NOW - 2 * HOUR,
        closed_at=None,
        decided_by=None,
        decision_kind=None,
        reason=None,
        requested_by="bob",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "state"),
    [
        ({}, "on_time"),
        ({"deadline": NOW + 30 * timedelta(minutes=1)}, "due_soon"),
        ({"deadline": NOW + HOUR}, "due_soon"),
        ({"deadline": NOW}, "overdue"),
        ({"deadline": NOW - HOUR}, "overdue"),
        ({"deadline": None}, "no_deadline"),
        ({"status": "approved", "closed_at": NOW - HOUR, "deadline": NOW}, "met"),
        ({"status": "rejected", "closed_at": NOW, "deadline": NOW - HOUR}, "missed"),
        ({"status": "expired", "closed_at": NOW, "deadline": None}, "no_deadline"),
    ],
)
def test_sla_states(changes: dict[str, object], state: str) -> None:
    assert sla_state(request(**changes), NOW, HOUR) == state


def test_the_due_soon_window_is_a_setting() -> None:
    soon = request(deadline=NOW + 2 * HOUR)

    assert sla_state(soon, NOW, HOUR) == "on_time"
    assert sla_state(soon, NOW, 3 * HOUR) == "due_soon"


def test_who_may_decide_by_name_role_requester_and_exclusion() -> None:
    r = request()

    assert r.may_decide("carol")
    assert r.may_decide("alice", ("support-lead",))
    assert r.may_decide("alice", ("role:support-lead",))
    assert not r.may_decide("alice", ("finance",))
    assert not r.may_decide("bob", ("support-lead",))  # the requester never
    assert not request(excluded=("carol",)).may_decide("carol")  # approved an earlier level
    anyone = request(approvers=())
    assert anyone.may_decide("dave")
    assert not anyone.may_decide("bob")


def test_whoever_started_the_run_may_answer_its_questions_as_the_engine_judges() -> None:
    question = request(kind="question", tool=None, args=None, approvers=())

    assert question.may_decide("bob")  # the requester answers; approving is what is barred
    assert deciders(question) == ("anyone",)
    assert not request(approvers=()).may_decide("bob")


@pytest.mark.parametrize(
    ("changes", "default", "words"),
    [
        ({}, None, "rejected: the call does not run"),
        ({"on_timeout": "approve", "risk": "low"}, None, "approved (low risk)"),
        ({"on_timeout": "approve", "risk": "high"}, None, "rejected: the call does not run"),
        ({"on_timeout": "escalate"}, None, "escalated to the next level"),
        ({"kind": "question"}, None, "no answer: the agent is told the question expired"),
        ({"kind": "question", "on_timeout": "respond"}, "standard", 'default: "standard"'),
        ({"deadline": None}, None, "nothing: it has no deadline"),
    ],
    ids=["reject", "approve-low", "approve-high", "escalate", "question", "default", "none"],
)
def test_what_the_deadline_does_is_said_as_the_engine_does_it(
    changes: dict[str, object], default: str | None, words: str
) -> None:
    assert words in at_deadline(request(**changes), default)


def test_deciders_say_who_in_words() -> None:
    assert deciders(request(excluded=("carol",))) == ("role:support-lead",)
    assert deciders(request(approvers=())) == ("anyone but bob",)
    assert deciders(request(approvers=(), requested_by="")) == ("anyone",)
    assert role_names(("a", "role:b")) == ("role:a", "role:b")


def test_an_item_has_its_age_and_outcome() -> None:
    open_item = InboxItem.of(request(), NOW, HOUR)
    closed = InboxItem.of(
        request(status="edited", closed_at=NOW - HOUR, decided_by="carol", decision_kind="edit"),
        NOW,
        HOUR,
    )

    assert (open_item.age_s, open_item.sla) == (7200.0, "on_time")
    assert open_item.to_json()["outcome"] is None
    assert closed.age_s == 3600.0
    assert closed.to_json()["outcome"] == {
        "status": "edited",
        "decided_by": "carol",
        "kind": "edit",
        "reason": None,
        "closed_at": (NOW - HOUR).isoformat(),
        "edited_args": None,
    }
    shown = open_item.to_json()
    assert (shown["why"], shown["risk"], shown["amount"]) == ("", "high", 2400.0)
    assert shown["what"] == {
        "title": "refund(amount=2400)",
        "kind": "tool",
        "tool": "refund",
        "args": {"amount": 2400},
    }
