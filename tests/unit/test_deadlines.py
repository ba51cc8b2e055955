"""Deadlines: derived from the log, fired by whoever owns the run, decided by the log's order."""

from __future__ import annotations

import dataclasses

import pytest

from engine.agent.app import App
from engine.agent.context import RunContext
from engine.agent.policies import Always
from engine.core.deadlines import expire_due, next_due_us, timeout_action
from engine.core.handling import judge_decision
from engine.core.state import fold
from events.approval import ApprovalRequest
from events.commands import SubmitDecision
from events.json import Json, JsonObject
from events.run_events import (
    DecisionAccepted,
    InterruptEscalated,
    InterruptExpired,
    InterruptRaised,
    ToolCallScheduled,
)
from examples import payments
from tests.unit.approvals_sim import SECOND_US, Sim

HOUR = 3600.0
APP = App("deadlines-test", directory={"lee": ["lead"], "bob": ["ops"]})


@APP.tool(policy=Always(name="gate", risk="high", deadline_s=HOUR, approvers=("role:ops",)))
async def risky(n: int) -> Json:
    return {"done": n}


@APP.tool(policy=Always(name="low-gate", risk="low", deadline_s=HOUR, on_timeout="approve"))
async def harmless(n: int) -> Json:
    return {"done": n}


@APP.tool(
    policy=Always(
        name="escalating",
        risk="high",
        deadline_s=HOUR,
        on_timeout="escalate",
        approvers=("role:ops",),
        escalate_to=("role:lead",),
    )
)
async def escalating(n: int) -> Json:
    return {"done": n}


@APP.agent("call")
async def call(ctx: RunContext, input: JsonObject) -> Json:
    result = await ctx.tool(str(input["tool"]), {"n": 1})
    return {"status": result.status, "reason": result.reason, "by": result.decided_by}


@APP.agent("ask")
async def ask(ctx: RunContext, input: JsonObject) -> Json:
    answer = await ctx.interrupt(
        "Go ahead?",
        allowed=("approve", "reject"),
        deadline_s=60.0,
        on_timeout="escalate",
        escalate_to=("role:lead",),
    )
    return {"kind": answer.kind, "by": answer.decided_by, "expired": answer.expired}


@APP.agent("two-gates")
async def two_gates(ctx: RunContext, input: JsonObject) -> Json:
    results = await ctx.all(ctx.tool("risky", {"n": 1}), ctx.tool("risky", {"n": 2}))
    return [r.status for r in results]


def test_every_request_has_a_deadline_and_the_next_due_one_is_derived_from_state() -> None:
    sim = Sim(APP, "two-gates", {})
    deadlines = {r.request.deadline_us for r in sim.open()}

    assert deadlines == {sim.clock.now_us + int(HOUR * SECOND_US)}
    assert next_due_us(sim.run) == sim.clock.now_us + int(HOUR * SECOND_US)
    assert expire_due(sim.run, sim.clock.now_us + int(HOUR * SECOND_US) - 1) == []


def test_a_restarted_worker_derives_the_same_timers_from_the_log() -> None:
    sim = Sim(APP, "two-gates", {})

    rebuilt = fold(sim.envelopes)

    assert rebuilt == sim.run
    assert rebuilt is not None
    later = sim.clock.now_us + int(2 * HOUR * SECOND_US)
    assert expire_due(rebuilt, later) == expire_due(sim.run, later)
    assert len(expire_due(rebuilt, later)) == 2


def test_expiry_rejects_by_default_and_the_agent_hears_why() -> None:
    sim = Sim(APP, "call", {"tool": "risky"})
    raised = sim.only_open()

    assert sim.tick(HOUR) == 1

    assert sim.of_type(InterruptExpired) == [
        InterruptExpired(interrupt_id=raised.interrupt_id, action="reject")
    ]
    assert sim.output == {"status": "rejected", "reason": "deadline passed", "by": "system:timeout"}
    assert not sim.of_type(ToolCallScheduled)


def test_auto_approve_on_timeout_applies_to_low_risk() -> None:
    sim = Sim(APP, "call", {"tool": "harmless"})

    sim.tick(HOUR)

    assert sim.of_type(InterruptExpired)[0].action == "approve"
    assert sim.output == {"status": "ok", "reason": "", "by": "system:timeout"}


@pytest.mark.parametrize("risk", ["medium", "high", "critical"])
def test_auto_approve_is_never_applied_above_low_risk_even_if_a_request_asks(risk: str) -> None:
    request = ApprovalRequest(kind="tool", title="t", risk=risk, on_timeout="approve")  # type: ignore[arg-type]

    assert timeout_action(request) == "reject"


def test_escalation_without_anyone_to_escalate_to_rejects() -> None:
    assert (
        timeout_action(ApprovalRequest(kind="tool", title="t", on_timeout="escalate")) == "reject"
    )


def test_expiry_escalates_to_the_next_group_with_a_new_deadline() -> None:
    sim = Sim(APP, "call", {"tool": "escalating"})
    first = sim.only_open()

    sim.tick(HOUR)

    expired, escalated = sim.of_type(InterruptExpired)[0], sim.of_type(InterruptEscalated)[0]
    assert expired == InterruptExpired(interrupt_id=first.interrupt_id, action="escalate")
    assert (escalated.interrupt_id, escalated.level, escalated.approvers) == (
        first.interrupt_id,
        1,
        ("role:lead",),
    )
    assert escalated.deadline_us == sim.clock.now_us + int(HOUR * SECOND_US)
    second = sim.only_open()
    assert second.call == first.call
    assert second.request.approvers == ("role:lead",)
    assert second.request.deadline_us == escalated.deadline_us
    assert (second.request.on_timeout, second.request.escalation) == ("reject", 1)
    assert second.request.title.startswith("Escalated:")

    assert not sim.decide(second.interrupt_id, "approve", "bob").accepted  # ops is not enough now
    assert sim.decide(second.interrupt_id, "approve", "lee").accepted
    assert sim.output == {"status": "ok", "reason": "", "by": "lee"}


def test_an_escalated_request_that_times_out_again_is_rejected() -> None:
    sim = Sim(APP, "call", {"tool": "escalating"})
    sim.tick(HOUR)

    sim.tick(HOUR)

    assert [e.action for e in sim.of_type(InterruptExpired)] == ["escalate", "reject"]
    assert sim.output["status"] == "rejected"  # type: ignore[index, call-overload]


def test_a_question_escalates_too() -> None:
    sim = Sim(APP, "ask", {})

    sim.tick(60)
    second = sim.only_open()
    sim.decide(second.interrupt_id, "approve", "lee")

    assert second.request.kind == "question"
    assert sim.output == {"kind": "approve", "by": "lee", "expired": False}


def test_a_question_that_times_out_returns_an_expired_decision() -> None:
    sim = Sim(APP, "ask", {})

    sim.tick(60)
    sim.tick(60)

    assert sim.output == {"kind": "reject", "by": "system:timeout", "expired": True}


def test_payments_escalate_to_the_cfo_on_timeout() -> None:
    sim = Sim(
        payments.app, "payout", {"payments": [{"payee": "acme", "amount": 100, "confidence": 0.6}]}
    )

    sim.tick(4 * HOUR)

    assert sim.only_open().request.approvers == ("role:cfo",)


# -- the race: whichever is appended first wins ----------------------------------------------------


def test_a_decision_appended_first_wins_and_the_expiry_never_happens() -> None:
    sim = Sim(APP, "call", {"tool": "risky"})
    raised = sim.only_open()
    sim.clock.advance(HOUR - 1)
    assert sim.decide(raised.interrupt_id, "approve", "bob").accepted

    assert sim.tick(10 * HOUR) == 0

    assert not sim.of_type(InterruptExpired)
    assert sim.output["status"] == "ok"  # type: ignore[index, call-overload]


def test_an_expiry_appended_first_wins_and_the_late_decision_is_refused() -> None:
    sim = Sim(APP, "call", {"tool": "risky"})
    raised = sim.only_open()
    sim.tick(HOUR)

    verdict = sim.decide(raised.interrupt_id, "approve", "bob")

    assert verdict.reason == f"interrupt {raised.interrupt_id} expired before this decision"
    assert not sim.of_type(DecisionAccepted)
    assert sim.output["status"] == "rejected"  # type: ignore[index, call-overload]


def test_a_decision_arriving_after_the_deadline_loses_to_the_expiry_appended_just_before_it() -> (
    None
):
    sim = Sim(APP, "call", {"tool": "risky"})
    raised = sim.only_open()
    sim.clock.advance(HOUR)  # the timer has not fired yet

    verdict = sim.decide(raised.interrupt_id, "approve", "bob")

    assert not verdict.accepted
    assert "expired" in verdict.reason
    names = [type(e).__name__ for e in sim.events]
    assert names.index("InterruptExpired") < names.index("DecisionRejected")


def test_the_pure_judge_refuses_a_decision_past_the_deadline_even_without_the_expiry() -> None:
    sim = Sim(APP, "call", {"tool": "risky"})
    raised = sim.only_open()
    deadline = raised.request.deadline_us
    assert deadline is not None
    command = SubmitDecision(
        decision_id="late",
        run_id="run-1",
        interrupt_id=raised.interrupt_id,
        kind="approve",
        decided_by="bob",
        issued_at_us=0,
    )

    assert judge_decision(sim.run, command, directory=APP.directory, now_us=deadline - 1).accepted
    late = judge_decision(sim.run, command, directory=APP.directory, now_us=deadline)
    assert late.reason == "the deadline of this request has passed"


def test_no_expiry_for_a_parked_run() -> None:
    sim = Sim(APP, "call", {"tool": "risky"})
    raised = sim.only_open()
    parked = dataclasses.replace(sim.run, status="parked")

    assert next_due_us(parked) is None
    assert expire_due(parked, (raised.request.deadline_us or 0) + 1) == []


def test_an_interrupt_without_a_deadline_never_expires() -> None:
    sim = Sim(APP, "call", {"tool": "risky"})
    raised = sim.only_open()
    request = dataclasses.replace(raised.request, deadline_us=None)
    state = dataclasses.replace(
        sim.run,
        open_interrupts={
            raised.interrupt_id: InterruptRaised(
                call=0, interrupt_id=raised.interrupt_id, request=request
            )
        },
    )

    assert next_due_us(state) is None
    assert expire_due(state, 2**62) == []
