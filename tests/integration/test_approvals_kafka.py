"""Approval semantics end to end on a real Kafka broker, workers in-process as asyncio tasks.

Edit, reject fed back to the agent, parallel interrupts answered out of order, a deadline
fired by a worker that did not raise the interrupt, and k-of-n with a duplicate approver
refused. Every wait is on something observable in the runs or approvals topic.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from engine.log.kafka import KafkaLog
from engine.log.port import Topics
from events.notices import ActionNotified, DecisionOutcome
from events.run_events import (
    DecisionAccepted,
    InterruptEscalated,
    InterruptExpired,
    RunCompleted,
    RunEventPayload,
    ToolCallScheduled,
)
from examples import email_review, payments
from tests.approvals_harness import Clock, Harness

pytestmark = pytest.mark.kafka

HOUR = 3600.0


@pytest.fixture
async def harness(kafka_bootstrap: str, fresh_prefix: str) -> AsyncIterator[Harness]:
    event_log = KafkaLog(kafka_bootstrap, client_id=fresh_prefix, heartbeat_interval_ms=250)
    await event_log.start()
    topics = Topics(fresh_prefix)
    await event_log.ensure_topics(topics, 2)
    h = Harness(event_log, topics, timeout=60.0)
    try:
        yield h
    finally:
        await h.halt_all()
        await event_log.close()


def _completed(payloads: list[RunEventPayload]) -> bool:
    return any(isinstance(p, RunCompleted) for p in payloads)


def _output(payloads: list[RunEventPayload]) -> object:
    [done] = [p for p in payloads if isinstance(p, RunCompleted)]
    return done.output


def _item(payee: str, amount: float, confidence: float) -> dict[str, object]:
    return {"payee": payee, "amount": amount, "confidence": confidence}


async def test_an_edited_email_is_sent_as_edited(harness: Harness) -> None:
    await harness.start_worker(email_review.app, Clock())
    run_id = await harness.publisher.start_run(
        "email", {"to": "ann@example.com", "customer": "Ann"}, requested_by="alice"
    )
    [raised] = await harness.open_interrupts(run_id, 1)
    bad = await harness.publisher.submit_decision(
        run_id, raised.interrupt_id, "edit", decided_by="carol", edited_args={"to": "x"}
    )
    refused = await harness.outcome(bad, run_id)
    assert not refused.accepted
    assert refused.reason.startswith("the edited arguments are invalid")

    edited = {**(raised.request.args or {}), "body": "Dear Ann, your refund left today."}
    await harness.publisher.submit_decision(
        run_id,
        raised.interrupt_id,
        "edit",
        decided_by="carol",
        edited_args=edited,
        digest=raised.request.digest,
    )
    payloads = await harness.wait_for(run_id, _completed, "the email is sent")

    [scheduled] = [p for p in payloads if isinstance(p, ToolCallScheduled)]
    assert scheduled.args == edited
    assert _output(payloads) == {"status": "sent", "as_sent": edited, "approved_by": "carol"}


async def test_a_rejection_reason_is_fed_back_to_the_agent(harness: Harness) -> None:
    await harness.start_worker(email_review.app, Clock())
    run_id = await harness.publisher.start_run(
        "email", {"to": "ann@example.com", "customer": "Ann"}, requested_by="alice"
    )
    [raised] = await harness.open_interrupts(run_id, 1)

    await harness.publisher.submit_decision(
        run_id, raised.interrupt_id, "reject", decided_by="bob", reason="Ann asked for no email"
    )
    payloads = await harness.wait_for(run_id, _completed, "the run completes")

    assert _output(payloads) == {
        "status": "not sent",
        "reason": "Ann asked for no email",
        "by": "bob",
    }
    assert not any(isinstance(p, ToolCallScheduled) for p in payloads)


async def test_parallel_interrupts_are_answered_out_of_order(harness: Harness) -> None:
    await harness.start_worker(payments.app, Clock())
    run_id = await harness.publisher.start_run(
        "payout",
        {"payments": [_item("a", 100, 0.6), _item("b", 200, 0.6), _item("c", 300, 0.85)]},  # type: ignore[list-item]
        requested_by="alice",
    )
    first, second = await harness.open_interrupts(run_id, 2)

    await harness.publisher.submit_decision(
        run_id, second.interrupt_id, "reject", decided_by="carol", reason="duplicate invoice"
    )
    await harness.wait_for(
        run_id,
        lambda ps: any(
            isinstance(p, DecisionAccepted) and p.interrupt_id == second.interrupt_id for p in ps
        ),
        "the second decision is in",
    )
    await harness.publisher.submit_decision(run_id, first.interrupt_id, "approve", decided_by="bob")
    payloads = await harness.wait_for(run_id, _completed, "the payout completes")

    assert [(r["status"], r["by"]) for r in _output(payloads)] == [  # type: ignore[attr-defined]
        ("ok", "bob"),
        ("rejected", "carol"),
        ("ok", "policy:payment-confidence@2"),  # a NOTIFY call: the policy let it run
    ]
    notified = [n for n in await harness.notices(run_id) if isinstance(n, ActionNotified)]
    assert [n.args for n in notified] == [{"payee": "c", "amount": 300}]


async def test_a_deadline_fires_on_a_worker_that_did_not_raise_the_interrupt(
    harness: Harness,
) -> None:
    clock = Clock()
    first = await harness.start_worker(payments.app, clock)
    run_id = await harness.publisher.start_run(
        "payout", {"payments": [_item("acme", 100, 0.6)]}, requested_by="alice"
    )
    [raised] = await harness.open_interrupts(run_id, 1)
    await first.halt()

    later = Clock(clock.now_us)
    later.advance(4 * HOUR + 1)
    await harness.start_worker(payments.app, later)

    payloads = await harness.wait_for(
        run_id, lambda ps: any(isinstance(p, InterruptEscalated) for p in ps), "the escalation"
    )
    assert InterruptExpired(interrupt_id=raised.interrupt_id, action="escalate") in payloads
    [escalated] = await harness.open_interrupts(run_id, 1, besides={raised.interrupt_id})
    assert escalated.request.approvers == ("role:cfo",)

    late = await harness.publisher.submit_decision(
        run_id, raised.interrupt_id, "approve", decided_by="bob"
    )
    assert "expired" in (await harness.outcome(late, run_id)).reason
    await harness.publisher.submit_decision(
        run_id, escalated.interrupt_id, "approve", decided_by="erin"
    )
    payloads = await harness.wait_for(run_id, _completed, "the payout completes")
    assert [r["by"] for r in _output(payloads)] == ["erin"]  # type: ignore[attr-defined]


async def test_k_of_n_refuses_a_duplicate_approver(harness: Harness) -> None:
    await harness.start_worker(payments.app, Clock())
    run_id = await harness.publisher.start_run(
        "payout", {"payments": [_item("acme", 25_000, 0.99)]}, requested_by="alice"
    )
    [level_one] = await harness.open_interrupts(run_id, 1)
    assert (level_one.request.quorum, level_one.request.levels) == (2, 2)

    one = await harness.publisher.submit_decision(
        run_id, level_one.interrupt_id, "approve", decided_by="bob"
    )
    assert (await harness.outcome(one, run_id)).status == "counted"
    twice = await harness.publisher.submit_decision(
        run_id, level_one.interrupt_id, "approve", decided_by="bob"
    )
    refused: DecisionOutcome = await harness.outcome(twice, run_id)
    assert not refused.accepted
    assert refused.reason == (
        "bob already approved this request; each approval needs a different person"
    )
    requester = await harness.publisher.submit_decision(
        run_id, level_one.interrupt_id, "approve", decided_by="alice"
    )
    assert "may not approve" in (await harness.outcome(requester, run_id)).reason

    await harness.publisher.submit_decision(
        run_id, level_one.interrupt_id, "approve", decided_by="carol"
    )
    [level_two] = await harness.open_interrupts(run_id, 1, besides={level_one.interrupt_id})
    assert (level_two.request.level, level_two.request.excluded) == (2, ("bob", "carol"))
    await harness.publisher.submit_decision(
        run_id, level_two.interrupt_id, "approve", decided_by="erin"
    )
    payloads = await harness.wait_for(run_id, _completed, "the payment runs")

    [accepted] = [
        p
        for p in payloads
        if isinstance(p, DecisionAccepted) and p.interrupt_id == level_one.interrupt_id
    ]
    assert accepted.approved_by == ("bob", "carol")
    assert sum(isinstance(p, ToolCallScheduled) for p in payloads) == 1
