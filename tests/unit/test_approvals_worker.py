"""The approval rules through the real worker, on the in-memory event log (no server).

Workers run in-process as asyncio tasks; every step waits on something observable in the
runs or approvals topic."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from structlog.testing import capture_logs

from engine.agent.app import App
from engine.core.executor import interrupt_id_for
from engine.log.memory import MemoryLog
from engine.log.port import Topics
from events.notices import ActionNotified, ApprovalRequested, DecisionOutcome
from events.run_events import (
    DecisionAccepted,
    DecisionHeld,
    InterruptEscalated,
    InterruptExpired,
    RunCompleted,
    ToolCallScheduled,
)
from examples import payments
from tests.approvals_harness import Clock, Harness

HOUR = 3600.0


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    event_log = MemoryLog(default_partitions=2)
    topics = Topics("approvals")
    await event_log.ensure_topics(topics, 2)
    h = Harness(event_log, topics, timeout=10.0)
    try:
        yield h
    finally:
        await h.halt_all()


def _item(payee: str, amount: float, confidence: float) -> dict[str, object]:
    return {"payee": payee, "amount": amount, "confidence": confidence}


def _completed(payloads: list[object]) -> bool:
    return any(isinstance(p, RunCompleted) for p in payloads)


async def test_auto_notify_and_approve_in_one_run_with_their_notices(harness: Harness) -> None:
    await harness.start_worker(payments.app, Clock())
    run_id = await harness.publisher.start_run(
        "payout",
        {"payments": [_item("a", 10, 0.99), _item("b", 20, 0.85), _item("c", 30, 0.6)]},  # type: ignore[list-item]
        requested_by="alice",
    )
    [gated] = await harness.open_interrupts(run_id, 1)
    assert gated.request.args == {"payee": "c", "amount": 30}

    decision = await harness.publisher.submit_decision(
        run_id, gated.interrupt_id, "approve", decided_by="bob", digest=gated.request.digest
    )
    payloads = await harness.wait_for(run_id, _completed, "the payout completes")

    [done] = [p for p in payloads if isinstance(p, RunCompleted)]
    assert [r["status"] for r in done.output] == ["ok", "ok", "ok"]  # type: ignore[index, union-attr]
    notices = await harness.notices(run_id)
    [notified] = [n for n in notices if isinstance(n, ActionNotified)]
    assert (notified.tool, notified.args, notified.policy) == (
        "pay",
        {"payee": "b", "amount": 20},
        "payment-confidence@2",
    )
    assert [n.interrupt_id for n in notices if isinstance(n, ApprovalRequested)] == [
        gated.interrupt_id
    ]
    outcome = await harness.outcome(decision, run_id)
    assert (outcome.accepted, outcome.status) == (True, "accepted")


async def test_a_deadline_fires_on_a_worker_that_did_not_raise_the_interrupt(
    harness: Harness,
) -> None:
    first_clock = Clock()
    first = await harness.start_worker(payments.app, first_clock)
    run_id = await harness.publisher.start_run(
        "payout", {"payments": [_item("acme", 100, 0.6)]}, requested_by="alice"
    )
    [raised] = await harness.open_interrupts(run_id, 1)
    await first.halt()

    later = Clock(first_clock.now_us)
    later.advance(4 * HOUR + 1)
    await harness.start_worker(payments.app, later)  # a different worker, hours later

    payloads = await harness.wait_for(
        run_id, lambda ps: any(isinstance(p, InterruptEscalated) for p in ps), "an escalation"
    )
    assert InterruptExpired(interrupt_id=raised.interrupt_id, action="escalate") in payloads
    [escalated] = await harness.open_interrupts(run_id, 1, besides={raised.interrupt_id})
    assert escalated.request.approvers == ("role:cfo",)

    await harness.publisher.submit_decision(
        run_id, escalated.interrupt_id, "approve", decided_by="erin"
    )
    await harness.wait_for(run_id, _completed, "the payout completes after the escalation")


async def test_k_of_n_counts_distinct_people_and_refuses_a_duplicate(harness: Harness) -> None:
    await harness.start_worker(payments.app, Clock())
    run_id = await harness.publisher.start_run(
        "payout", {"payments": [_item("acme", 25_000, 0.99)]}, requested_by="alice"
    )
    [first] = await harness.open_interrupts(run_id, 1)
    assert (first.request.quorum, first.request.levels) == (2, 2)

    one = await harness.publisher.submit_decision(
        run_id, first.interrupt_id, "approve", decided_by="bob"
    )
    counted = await harness.outcome(one, run_id)
    again = await harness.publisher.submit_decision(
        run_id, first.interrupt_id, "approve", decided_by="bob"
    )
    refused = await harness.outcome(again, run_id)
    two = await harness.publisher.submit_decision(
        run_id, first.interrupt_id, "approve", decided_by="carol"
    )
    await harness.outcome(two, run_id)

    assert (counted.status, counted.reason) == ("counted", "approval 1 of 2 counted")
    assert not refused.accepted
    assert (
        refused.reason
        == "bob already approved this request; each approval needs a different person"
    )
    [second] = await harness.open_interrupts(run_id, 1, besides={first.interrupt_id})
    assert (second.request.level, second.request.approvers) == (2, ("role:cfo",))


async def test_a_decision_before_its_interrupt_is_held_then_applied(harness: Harness) -> None:
    await harness.start_worker(payments.app, Clock())
    run_id = await harness.publisher.start_run(
        "payout-serial",
        {"payments": [_item("a", 100, 0.6), _item("b", 200, 0.6)]},
        requested_by="alice",
    )
    [first] = await harness.open_interrupts(run_id, 1)

    early = await harness.publisher.submit_decision(
        run_id, interrupt_id_for(run_id, 1, "approval"), "approve", decided_by="carol"
    )
    held = await harness.outcome(early, run_id, status="held")
    await harness.publisher.submit_decision(run_id, first.interrupt_id, "approve", decided_by="bob")
    payloads = await harness.wait_for(run_id, _completed, "the run completes")

    assert not held.accepted
    assert sum(isinstance(p, DecisionHeld) for p in payloads) == 1
    [applied] = [p for p in payloads if isinstance(p, DecisionAccepted) and p.decision_id == early]
    assert applied.decided_by == "carol"
    assert sum(isinstance(p, ToolCallScheduled) for p in payloads) == 2
    final = [n for n in await harness.notices(run_id) if isinstance(n, DecisionOutcome)]
    assert [n.accepted for n in final if n.decision_id == early] == [False, True]


async def test_a_worker_without_the_runs_version_leaves_it_alone_and_says_so(
    harness: Harness,
) -> None:
    first = await harness.start_worker(payments.app, Clock())
    run_id = await harness.publisher.start_run(
        "payout", {"payments": [_item("acme", 100, 0.6)]}, requested_by="alice"
    )
    [raised] = await harness.open_interrupts(run_id, 1)
    await first.halt()
    newer = App("payments-v2", directory=payments.DIRECTORY)
    newer.tool(policy=payments.app.get_tool("pay").policy)(payments.pay)  # type: ignore[union-attr]
    newer.agent("payout", version="2")(payments.payout)

    with capture_logs() as logs:
        second = await harness.start_worker(newer, Clock())
        decision = await harness.publisher.submit_decision(
            run_id, raised.interrupt_id, "approve", decided_by="bob"
        )
        await harness.outcome(decision, run_id)
        await second.halt()

    left_alone = [entry for entry in logs if entry["event"] == "run_left_alone"]
    assert left_alone
    assert left_alone[0]["version"] == "1"
    payloads = await harness.payloads(run_id)
    assert not any(isinstance(p, ToolCallScheduled) for p in payloads)
    assert isinstance(payloads[-1], DecisionAccepted)

    await harness.start_worker(payments.app, Clock())  # a worker with version 1 again
    await harness.wait_for(run_id, _completed, "the v1 worker finishes the run")
