"""The replay executor, driven the way a worker drives it: advance, perform effects, feed results.

Most tests use the refund agent from `examples/refund.py`; agents that exist only to probe the
executor are built as `AgentSpec`s here and served with the refund app's tools (the app itself
is never changed).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.agent.app import AgentSpec, App
from engine.agent.authorization import Level
from engine.agent.context import RunContext, ToolResult
from engine.agent.policies import Always
from engine.core.executor import (
    Advance,
    ExecuteTool,
    Replayer,
    Services,
    idempotency_key_for,
    interrupt_id_for,
)
from events.codec import Codec
from events.envelope import EventEnvelope
from events.json import Json, JsonObject, digest
from events.run_events import (
    DecisionAccepted,
    DecisionHeld,
    DecisionRejected,
    GateEvaluated,
    InterruptEscalated,
    InterruptExpired,
    InterruptRaised,
    RunCompleted,
    RunEventPayload,
    RunFailed,
    RunParked,
    RunStarted,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallScheduled,
    ValueRecorded,
    VoteRecorded,
)
from examples import payments as payments_example
from examples import refund as refund_example
from tests.unit.golden import (
    CLOCK_US,
    HISTORIES,
    PAYMENTS_RUN_ID,
    REFUND_RUN_ID,
    fixed_services,
    load_history,
)

APP = refund_example.app


def _refund_spec() -> AgentSpec:
    spec = APP.find_agent("refund", "1")
    assert spec is not None
    return spec


REFUND = _refund_spec()
RUN_ID = "run-1"
DAY_US = 24 * 3600 * 1_000_000
LOOKUP_ARGS: JsonObject = {"order_id": "A-17"}


def started(amount: Json = 2400, order_id: str = "A-17") -> RunStarted:
    return RunStarted(
        input={"order_id": order_id, "amount": amount}, requested_by="alice", command_id="cmd-1"
    )


def refund_args(amount: Json = 2400) -> JsonObject:
    return {"order_id": "A-17", "amount": amount}


def _explode() -> Any:
    raise AssertionError("replay asked a live service for a value the history already has")


EXPLODING = Services(clock_us=_explode, new_uuid=_explode, random=_explode)


def _run_tool(coro: Coroutine[Any, Any, Json]) -> Json:
    """Run a tool coroutine that never suspends (the example tools don't)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("the tool suspended; this driver only runs tools that do not")


class Driver:
    """Plays the worker for one run: keeps the history, performs effects, feeds decisions."""

    def __init__(
        self,
        spec: AgentSpec = REFUND,
        start: RunStarted | None = None,
        *,
        app: App = APP,
        services: Services | None = None,
    ) -> None:
        self.app = app
        self.spec = spec
        self.started = start or started()
        self.history: list[RunEventPayload] = [self.started]
        self.replayer = Replayer(app, spec, RUN_ID, self.started, services or fixed_services())

    def advance(self) -> Advance:
        step = self.replayer.advance()
        self.history.extend(step.events)
        return step

    def feed(self, *events: RunEventPayload) -> None:
        self.replayer.feed(events)
        self.history.extend(events)

    def perform(self, effects: list[ExecuteTool]) -> None:
        for effect in effects:
            tool = self.app.get_tool(effect.tool)
            assert tool is not None
            result = _run_tool(tool.invoke(effect.args, effect.idempotency_key))
            self.feed(ToolCallCompleted(call=effect.call, result=result))

    def decide(self, interrupt_id: str, kind: Any, decided_by: str = "bob", **kw: Any) -> None:
        self.feed(
            DecisionAccepted(
                interrupt_id=interrupt_id,
                decision_id=f"dec-{interrupt_id}-{kind}",
                kind=kind,
                decided_by=decided_by,
                **kw,
            )
        )

    def fresh(self, spec: AgentSpec | None = None, services: Services = EXPLODING) -> Replayer:
        """A new replayer rebuilt from the history so far, as another worker would build it."""
        return rebuild(self.history, spec or self.spec, app=self.app, services=services)


def rebuild(
    history: list[RunEventPayload],
    spec: AgentSpec = REFUND,
    *,
    app: App = APP,
    services: Services = EXPLODING,
    run_id: str = RUN_ID,
) -> Replayer:
    start = history[0]
    assert isinstance(start, RunStarted)
    replayer = Replayer(app, spec, run_id, start, services)
    replayer.feed(history[1:])
    return replayer


def to_interrupt(driver: Driver) -> InterruptRaised:
    """Advance the refund run to its approval interrupt (the gate's verdict comes first)."""
    driver.perform(driver.advance().effects)
    [evaluated, raised] = driver.advance().events
    assert isinstance(evaluated, GateEvaluated)
    assert isinstance(raised, InterruptRaised)
    return raised


def effects_so_far() -> int:
    return len(refund_example.EFFECTS)


# -- (a) the happy path ---------------------------------------------------------------------------


def test_happy_path_lookup_interrupt_approve_refund_complete() -> None:
    before = effects_so_far()
    driver = Driver()

    step = driver.advance()
    assert step.events == [
        ToolCallScheduled(
            call=0,
            tool="lookup_order",
            args=LOOKUP_ARGS,
            args_digest=digest(LOOKUP_ARGS),
            idempotency_key="run-1:0",
            idempotent=True,
        )
    ]
    assert step.effects == [ExecuteTool(0, "lookup_order", LOOKUP_ARGS, "run-1:0")]
    assert not step.finished

    driver.perform(step.effects)
    step = driver.advance()
    [evaluated, raised] = step.events
    assert step.effects == []
    assert evaluated == GateEvaluated(
        call=1,
        tool="refund",
        args_digest=digest(refund_args()),
        action="approve",
        policy="refund-limit@1",
        rule="predicate",
        reason="refunds over 500 need a person",
        risk="high",
        amount=2400.0,
        levels=[{"approvers": ["role:support-lead"], "quorum": 1}],
        allowed=("approve", "edit", "reject"),
        deadline_s=24 * 3600.0,
        relevant_args=None,
    )
    assert isinstance(raised, InterruptRaised)
    assert raised.call == 1
    assert raised.interrupt_id == interrupt_id_for(RUN_ID, 1, "approval")
    request = raised.request
    assert request.kind == "tool"
    assert request.tool == "refund"
    assert request.args == refund_args()
    assert len(request.digest) == 64
    assert int(request.digest, 16) >= 0
    assert request.risk == "high"
    assert request.amount == 2400.0
    assert request.allowed == ("approve", "edit", "reject")
    assert request.approvers == ("role:support-lead",)
    assert request.policy == "refund-limit@1"
    assert request.deadline_us == CLOCK_US + DAY_US
    assert request.on_timeout == "reject"
    assert "2400" in request.reasoning
    assert "2400" in request.impact
    assert "refund" in request.title

    driver.decide(raised.interrupt_id, "approve")
    step = driver.advance()
    assert step.events == [
        ToolCallScheduled(
            call=1,
            tool="refund",
            args=refund_args(),
            args_digest=digest(refund_args()),
            idempotency_key="run-1:1",
            idempotent=False,
        )
    ]
    assert step.effects == [ExecuteTool(1, "refund", refund_args(), "run-1:1")]

    driver.perform(step.effects)
    step = driver.advance()
    assert step.finished
    assert step.effects == []
    assert step.events == [
        RunCompleted(
            output={
                "status": "refunded",
                "refund": {"refund_id": "rf-run-1:1", "order_id": "A-17", "amount": 2400},
                "approved_by": "bob",
            }
        )
    ]
    assert refund_example.EFFECTS[before:] == [("lookup_order", "run-1:0"), ("refund", "run-1:1")]
    assert driver.advance() == Advance([], [], True)


def test_request_digest_is_stable_and_covers_the_arguments() -> None:
    first, second = to_interrupt(Driver()), to_interrupt(Driver())
    other = to_interrupt(Driver(start=started(amount=2401)))

    assert first.request.digest == second.request.digest
    assert first.request.digest != other.request.digest


def test_idempotency_keys_are_run_and_call_position() -> None:
    assert idempotency_key_for("run-9", 3) == "run-9:3"
    assert interrupt_id_for("run-9", 3, "approval") == interrupt_id_for("run-9", 3, "approval")
    assert interrupt_id_for("run-9", 3, "approval") != interrupt_id_for("run-9", 4, "approval")


# -- (b) rebuilding at the interrupt does nothing twice -------------------------------------------


def test_rebuild_at_the_interrupt_emits_nothing_and_runs_nothing() -> None:
    driver = Driver()
    to_interrupt(driver)
    before = effects_so_far()

    for _ in range(2):
        replayer = driver.fresh()
        step = replayer.advance()
        assert step == Advance([], [], False)
        assert replayer.advance() == Advance([], [], False)  # and again, on the same replayer
    assert effects_so_far() == before  # lookup_order did not run again


def test_rebuilt_run_continues_after_the_decision_like_the_original() -> None:
    driver = Driver()
    raised = to_interrupt(driver)
    driver.decide(raised.interrupt_id, "approve")

    rebuilt = driver.fresh(services=fixed_services()).advance()
    original = driver.advance()

    assert rebuilt == original
    assert [type(e) for e in rebuilt.events] == [ToolCallScheduled]


def test_rebuild_of_a_finished_history_reproduces_its_outcome() -> None:
    driver = Driver()
    raised = to_interrupt(driver)
    driver.decide(raised.interrupt_id, "approve")
    driver.perform(driver.advance().effects)
    outcome = driver.advance().events

    step = rebuild(driver.history[:-1]).advance()

    assert step.events == outcome
    assert step.effects == []


# -- (c) reject, (d) edit, (e) under the limit ----------------------------------------------------


async def _probe_refund(ctx: RunContext, input: JsonObject) -> Json:
    """Returns the ToolResult it got for the refund, field by field."""
    result = await ctx.tool("refund", {"order_id": "A-17", "amount": input["amount"]})
    assert isinstance(result, ToolResult)
    return {
        "status": result.status,
        "value": result.value,
        "args": result.args,
        "reason": result.reason,
        "decided_by": result.decided_by,
    }


PROBE = AgentSpec(name="probe", version="1", fn=_probe_refund)


def test_reject_gives_the_agent_a_rejected_result_and_never_schedules_the_tool() -> None:
    before = effects_so_far()
    driver = Driver()
    raised = to_interrupt(driver)

    driver.decide(raised.interrupt_id, "reject", reason="not eligible", decided_by="carol")
    step = driver.advance()

    assert step.finished
    assert step.effects == []
    assert step.events == [
        RunCompleted(output={"status": "refund rejected", "reason": "not eligible", "by": "carol"})
    ]
    assert not any(isinstance(e, ToolCallScheduled) and e.tool == "refund" for e in driver.history)
    assert ("refund", "run-1:1") not in refund_example.EFFECTS[before:]


def test_reject_result_carries_status_reason_args_and_decider() -> None:
    driver = Driver(PROBE)
    [_, raised] = driver.advance().events
    assert isinstance(raised, InterruptRaised)

    driver.decide(raised.interrupt_id, "reject", reason="not eligible", decided_by="carol")
    step = driver.advance()

    assert step.events == [
        RunCompleted(
            output={
                "status": "rejected",
                "value": None,
                "args": refund_args(),
                "reason": "not eligible",
                "decided_by": "carol",
            }
        )
    ]


def test_edit_runs_the_tool_with_the_edited_arguments() -> None:
    driver = Driver()
    raised = to_interrupt(driver)
    edited = refund_args(1200)

    driver.decide(raised.interrupt_id, "edit", edited_args=edited, reason="half")
    step = driver.advance()

    [reevaluated, scheduled] = step.events
    assert isinstance(reevaluated, GateEvaluated)
    assert (reevaluated.round, reevaluated.action) == (2, "approve")
    assert reevaluated.args_digest == digest(edited)
    assert isinstance(scheduled, ToolCallScheduled)
    assert scheduled.args == edited
    assert step.effects == [ExecuteTool(1, "refund", edited, "run-1:1")]
    driver.perform(step.effects)
    step = driver.advance()
    assert step.events == [
        RunCompleted(
            output={
                "status": "refunded",
                "refund": {"refund_id": "rf-run-1:1", "order_id": "A-17", "amount": 1200},
                "approved_by": "bob",
            }
        )
    ]
    # and a rebuild of the edited run matches what was recorded
    assert rebuild(driver.history[:-1]).advance().events == step.events


def test_edit_result_reports_the_edited_arguments() -> None:
    driver = Driver(PROBE)
    [_, raised] = driver.advance().events
    assert isinstance(raised, InterruptRaised)
    driver.decide(raised.interrupt_id, "edit", edited_args=refund_args(10))
    driver.perform(driver.advance().effects)

    [completed] = driver.advance().events
    assert isinstance(completed, RunCompleted)
    assert isinstance(completed.output, dict)
    assert completed.output["args"] == refund_args(10)
    assert completed.output["status"] == "ok"


@pytest.mark.parametrize("amount", [0, 400, 500, 500.0])
def test_amount_at_or_under_the_limit_needs_no_interrupt(amount: Json) -> None:
    driver = Driver(start=started(amount=amount))
    driver.perform(driver.advance().effects)

    step = driver.advance()

    assert [type(e) for e in step.events] == [GateEvaluated, ToolCallScheduled]
    evaluated = step.events[0]
    assert isinstance(evaluated, GateEvaluated)
    assert (evaluated.action, evaluated.policy, evaluated.rule) == (
        "auto",
        "refund-limit@1",
        "not-matched",
    )
    assert step.effects == [ExecuteTool(1, "refund", refund_args(amount), "run-1:1")]
    driver.perform(step.effects)
    step = driver.advance()
    assert step.finished
    assert not any(isinstance(e, InterruptRaised) for e in driver.history)
    [completed] = step.events
    assert isinstance(completed, RunCompleted)
    assert isinstance(completed.output, dict)
    assert completed.output["approved_by"] == "policy:refund-limit@1"  # the policy decided


def test_amount_just_over_the_limit_needs_an_interrupt() -> None:
    driver = Driver(start=started(amount=500.01))
    driver.perform(driver.advance().effects)

    [_, raised] = driver.advance().events

    assert isinstance(raised, InterruptRaised)
    assert raised.request.amount == 500.01


# -- (f) non-determinism --------------------------------------------------------------------------


def _agent(fn: Any, version: str = "2") -> AgentSpec:
    return AgentSpec(name="refund", version=version, fn=fn)


async def _calls_refund_first(ctx: RunContext, input: JsonObject) -> Json:
    await ctx.tool("refund", {"order_id": input["order_id"], "amount": input["amount"]})
    return None


async def _looks_up_another_order(ctx: RunContext, input: JsonObject) -> Json:
    await ctx.tool("lookup_order", {"order_id": "B-99"})
    return None


async def _only_looks_up(ctx: RunContext, input: JsonObject) -> Json:
    await ctx.tool("lookup_order", {"order_id": input["order_id"]})
    return {"status": "looked up"}


async def _asks_the_time_first(ctx: RunContext, input: JsonObject) -> Json:
    ctx.now()
    return None


async def _asks_a_question_first(ctx: RunContext, input: JsonObject) -> Json:
    await ctx.interrupt("Really refund?")
    return None


def _sig(kind: str, name: str, value: Json) -> str:
    return f"{kind} {name} {digest(value)[:12]}"


@pytest.mark.parametrize(
    ("fn", "call", "expected", "actual"),
    [
        (
            _calls_refund_first,
            0,
            _sig("tool", "lookup_order", LOOKUP_ARGS),
            _sig("tool", "refund", refund_args()),
        ),
        (
            _looks_up_another_order,
            0,
            _sig("tool", "lookup_order", LOOKUP_ARGS),
            _sig("tool", "lookup_order", {"order_id": "B-99"}),
        ),
        (_only_looks_up, 1, _sig("tool", "refund", refund_args()), "agent returned"),
        (_asks_the_time_first, 0, _sig("tool", "lookup_order", LOOKUP_ARGS), "value now "),
        (
            _asks_a_question_first,
            0,
            _sig("tool", "lookup_order", LOOKUP_ARGS),
            _sig("interrupt", "", "Really refund?"),
        ),
    ],
    ids=["other-tool", "other-args", "fewer-calls", "value-for-tool", "question-for-tool"],
)
def test_changed_agent_code_parks_the_run_with_both_sides(
    fn: Any, call: int, expected: str, actual: str
) -> None:
    driver = Driver()
    to_interrupt(driver)

    step = driver.fresh(_agent(fn)).advance()

    [parked] = step.events
    assert isinstance(parked, RunParked)
    assert replace(parked, detail="") == RunParked(
        reason="non-determinism", call=call, expected=expected, actual=actual
    )
    assert parked.detail.startswith(f"step {call} does not replay")
    assert "likely fix:" in parked.detail
    assert "countersign runs resume-parked run-1" in parked.detail
    assert step.effects == []
    assert step.finished


def test_more_calls_than_recorded_is_not_a_divergence() -> None:
    async def looks_up_twice(ctx: RunContext, input: JsonObject) -> Json:
        await ctx.tool("lookup_order", {"order_id": input["order_id"]})
        await ctx.tool("lookup_order", {"order_id": "A-18"})
        return None

    driver = Driver()
    driver.perform(driver.advance().effects)

    step = driver.fresh(_agent(looks_up_twice), services=fixed_services()).advance()

    assert [type(e) for e in step.events] == [ToolCallScheduled]
    assert step.effects == [ExecuteTool(1, "lookup_order", {"order_id": "A-18"}, "run-1:1")]


def test_divergence_parks_the_run_even_if_agent_code_catches_exceptions() -> None:
    async def catches_everything(ctx: RunContext, input: JsonObject) -> Json:
        with contextlib.suppress(Exception):  # agent code that swallows everything
            await ctx.tool("lookup_order", {"order_id": "B-99"})  # diverges from the history
        await ctx.tool("refund", {"order_id": input["order_id"], "amount": input["amount"]})
        return None

    driver = Driver()
    raised = to_interrupt(driver)
    driver.decide(raised.interrupt_id, "approve")

    step = driver.fresh(_agent(catches_everything), services=fixed_services()).advance()

    # Today: the refund is scheduled and handed out for execution on a diverged history.
    assert [type(e) for e in step.events] == [RunParked]
    assert step.effects == []


# -- (g) crash mid-tool ---------------------------------------------------------------------------


def test_crash_during_an_idempotent_tool_re_runs_it() -> None:
    driver = Driver()
    driver.advance()  # ToolCallScheduled(lookup_order) appended; the worker died before the result

    replayer = driver.fresh()
    step = replayer.advance()

    assert step.events == []
    assert step.effects == [ExecuteTool(0, "lookup_order", LOOKUP_ARGS, "run-1:0")]
    assert replayer.advance() == Advance([], [], False)  # in flight: not asked for twice


def _crashed_during_refund() -> Driver:
    """A run whose refund was scheduled (after approval) and never finished."""
    driver = Driver()
    raised = to_interrupt(driver)
    driver.decide(raised.interrupt_id, "approve")
    step = driver.advance()
    assert [type(e) for e in step.events] == [ToolCallScheduled]
    return driver


def _in_doubt(driver: Driver) -> InterruptRaised:
    """Rebuild after the crash; the new owner must ask instead of re-running the refund."""
    driver.replayer = driver.fresh(services=fixed_services())
    step = driver.advance()
    assert step.effects == []
    [raised] = step.events
    assert isinstance(raised, InterruptRaised)
    return raised


def test_crash_during_a_non_idempotent_tool_asks_a_person() -> None:
    driver = _crashed_during_refund()

    raised = _in_doubt(driver)

    assert raised.call == 1
    assert raised.interrupt_id == interrupt_id_for(RUN_ID, 1, "in-doubt-1")
    assert raised.request.kind == "in_doubt"
    assert raised.request.tool == "refund"
    assert raised.request.args == refund_args()
    assert set(raised.request.allowed) == {"approve", "respond", "reject"}
    assert driver.fresh().advance() == Advance([], [], False)  # asked once, not again


def test_in_doubt_respond_records_the_given_result() -> None:
    driver = _crashed_during_refund()
    raised = _in_doubt(driver)
    response: JsonObject = {"refund_id": "rf-manual", "order_id": "A-17", "amount": 2400}

    driver.decide(raised.interrupt_id, "respond", response=response, decided_by="ops")
    step = driver.advance()

    assert step.effects == []
    assert step.events[0] == ToolCallCompleted(call=1, result=response)
    [completed] = step.events[1:]
    assert isinstance(completed, RunCompleted)
    assert isinstance(completed.output, dict)
    assert completed.output["refund"] == response


def test_in_doubt_respond_replays_to_the_same_result() -> None:
    driver = _crashed_during_refund()
    raised = _in_doubt(driver)
    driver.decide(raised.interrupt_id, "respond", response={"refund_id": "x"}, decided_by="ops")
    live = driver.advance().events

    assert [type(e) for e in live] == [ToolCallCompleted, RunCompleted]

    rebuilt = rebuild(driver.history[:-1]).advance().events  # all but RunCompleted

    assert rebuilt == live[1:]


def test_in_doubt_approve_runs_the_tool_again() -> None:
    driver = _crashed_during_refund()
    raised = _in_doubt(driver)

    driver.decide(raised.interrupt_id, "approve", decided_by="ops")
    step = driver.advance()

    # A new schedule is recorded first, so a crash during the re-run asks again.
    assert [type(e) for e in step.events] == [ToolCallScheduled]
    assert step.effects == [ExecuteTool(1, "refund", refund_args(), "run-1:1")]
    driver.perform(step.effects)
    [completed] = driver.advance().events
    assert isinstance(completed, RunCompleted)


def test_a_second_crash_during_an_approved_re_run_asks_again() -> None:
    driver = _crashed_during_refund()
    first = _in_doubt(driver)
    driver.decide(first.interrupt_id, "approve", decided_by="ops")
    driver.advance()  # the re-run is scheduled; the worker dies again before the result

    step = driver.fresh().advance()

    assert step.effects == [], "a non-idempotent tool is never re-run without asking"
    [second] = step.events
    assert isinstance(second, InterruptRaised)
    assert second.request.kind == "in_doubt"
    assert second.interrupt_id == interrupt_id_for(RUN_ID, 1, "in-doubt-2")


def test_in_doubt_reject_gives_a_rejected_result() -> None:
    driver = _crashed_during_refund()
    raised = _in_doubt(driver)

    driver.decide(
        raised.interrupt_id, "reject", reason="it did not run; leave it", decided_by="ops"
    )
    step = driver.advance()

    assert step.effects == []
    assert step.events == [
        RunCompleted(
            output={"status": "refund rejected", "reason": "it did not run; leave it", "by": "ops"}
        )
    ]


def test_a_failed_tool_gives_the_agent_a_failed_result() -> None:
    driver = Driver(PROBE, start=started(amount=10))
    step = driver.advance()
    driver.feed(ToolCallFailed(call=0, error_type="Timeout", error="bank did not answer"))

    [completed] = driver.advance().events

    assert step.effects[0].tool == "refund"
    assert isinstance(completed, RunCompleted)
    assert isinstance(completed.output, dict)
    assert completed.output["status"] == "failed"
    assert completed.output["reason"] == "Timeout: bank did not answer"


# -- (h) several interrupts at once ---------------------------------------------------------------

BATCH = App("batch")
PAYEES = ("ann", "ben", "cat")


@BATCH.tool(policy=Always(name="pay"))
async def pay(payee: str, amount: int) -> Json:
    return {"paid": payee, "amount": amount}


async def _pay_three(ctx: RunContext, input: JsonObject) -> Json:
    results = await ctx.all(
        *(ctx.tool("pay", {"payee": p, "amount": 10 * (i + 1)}) for i, p in enumerate(PAYEES))
    )
    return [[r.status, r.value, r.decided_by] for r in results]


PAY_THREE = AgentSpec(name="pay-three", version="1", fn=_pay_three)


@settings(max_examples=30, deadline=None)
@given(
    order=st.permutations(range(3)),
    kinds=st.lists(st.sampled_from(["approve", "reject"]), min_size=3, max_size=3),
)
def test_three_gated_calls_interrupt_at_once_and_finish_after_all_decisions(
    order: list[int], kinds: list[str]
) -> None:
    driver = Driver(PAY_THREE, app=BATCH)
    step = driver.advance()
    raised = [e for e in step.events if isinstance(e, InterruptRaised)]
    assert len(raised) == 3
    assert [type(e) for e in step.events] == [GateEvaluated, InterruptRaised] * 3
    assert [r.call for r in raised] == [0, 1, 2]
    assert step.effects == []

    for n, i in enumerate(order):
        driver.decide(raised[i].interrupt_id, kinds[i], decided_by=f"approver-{i}")
        step = driver.advance()
        if kinds[i] == "approve":
            assert step.effects == [
                ExecuteTool(i, "pay", {"payee": PAYEES[i], "amount": 10 * (i + 1)}, f"run-1:{i}")
            ]
        else:
            assert step.effects == []
        if n < 2:
            assert not step.finished
        driver.perform(step.effects)
    if not step.finished:
        step = driver.advance()

    assert step.finished
    assert step.events == [
        RunCompleted(
            output=[
                ["ok", {"paid": PAYEES[i], "amount": 10 * (i + 1)}, f"approver-{i}"]
                if kinds[i] == "approve"
                else ["rejected", None, f"approver-{i}"]
                for i in range(3)
            ]
        )
    ]
    assert sum(isinstance(e, RunCompleted) for e in driver.history) == 1


# -- (i) recorded values --------------------------------------------------------------------------


async def _uses_values(ctx: RunContext, input: JsonObject) -> Json:
    when = ctx.now()
    ident = ctx.uuid()
    roll = ctx.random()
    await ctx.tool("lookup_order", {"order_id": ident})
    return {"now": when.isoformat(), "uuid": ident, "random": roll, "later": ctx.uuid()}


def test_now_uuid_random_are_recorded_and_replayed_identically() -> None:
    driver = Driver(_agent(_uses_values), services=fixed_services(random_values=[0.125]))
    step = driver.advance()
    assert step.events[:3] == [
        ValueRecorded(call=0, kind="now", value=CLOCK_US),
        ValueRecorded(call=1, kind="uuid", value="00000000-0000-4000-8000-000000000000"),
        ValueRecorded(call=2, kind="random", value=0.125),
    ]
    driver.perform(step.effects)
    step = driver.advance()
    [later, completed] = step.events
    assert later == ValueRecorded(call=4, kind="uuid", value="00000000-0000-4000-8000-000000000001")
    assert completed == RunCompleted(
        output={
            "now": "2023-11-14T22:13:20+00:00",
            "uuid": "00000000-0000-4000-8000-000000000000",
            "random": 0.125,
            "later": "00000000-0000-4000-8000-000000000001",
        }
    )

    # Through the wire and back, then rebuilt with services that must not be asked.
    codec = Codec()
    wire = [
        codec.decode_event(
            codec.encode(
                EventEnvelope(
                    event_id=f"e{seq}",
                    run_id=RUN_ID,
                    seq=seq,
                    occurred_at_us=CLOCK_US,
                    agent="refund",
                    agent_version="2",
                    causation_id="c",
                    correlation_id=RUN_ID,
                    prev_hash="",
                    payload=event,
                )
            )
        ).payload
        for seq, event in enumerate(driver.history[:-1])
    ]
    step = rebuild(wire, _agent(_uses_values)).advance()
    assert step.events == [completed]


# -- (j) agent errors and foreign awaits ----------------------------------------------------------


def test_an_agent_exception_fails_the_run() -> None:
    async def raises(ctx: RunContext, input: JsonObject) -> Json:
        order = await ctx.tool("lookup_order", {"order_id": input["order_id"]})
        raise ValueError(f"cannot refund {order.value}")

    driver = Driver(_agent(raises))
    driver.perform(driver.advance().effects)

    step = driver.advance()

    assert step.finished
    assert step.effects == []
    [failed] = step.events
    assert isinstance(failed, RunFailed)
    assert failed.error_type == "ValueError"
    assert failed.error.startswith("cannot refund")


def test_output_that_is_not_json_fails_the_run() -> None:
    async def returns_a_set(ctx: RunContext, input: JsonObject) -> Json:
        return {1, 2}  # type: ignore[return-value]

    [failed] = Driver(_agent(returns_a_set)).advance().events

    assert isinstance(failed, RunFailed)
    assert failed.error_type == "OutputNotJson"


@pytest.mark.parametrize("seconds", [0, 1])
async def test_awaiting_asyncio_sleep_parks_the_run_with_a_clear_reason(seconds: float) -> None:
    async def sleeps(ctx: RunContext, input: JsonObject) -> Json:
        await ctx.tool("lookup_order", {"order_id": input["order_id"]})
        await asyncio.sleep(seconds)
        return None

    driver = Driver(_agent(sleeps))
    driver.perform(driver.advance().effects)

    step = driver.advance()

    assert step.finished
    assert step.effects == []
    [parked] = step.events
    assert isinstance(parked, RunParked)
    assert parked.reason == "AgentProtocolError"
    assert parked.call == 1
    assert "only run-context calls may be awaited" in parked.actual


def test_calling_a_tool_the_app_does_not_have_parks_the_run() -> None:
    async def calls_unknown(ctx: RunContext, input: JsonObject) -> Json:
        await ctx.tool("launch_rocket", {})
        return None

    [parked] = Driver(_agent(calls_unknown)).advance().events

    assert isinstance(parked, RunParked)
    assert parked.reason == "ConfigurationError"
    assert "launch_rocket" in parked.actual


# -- (k) golden histories -------------------------------------------------------------------------

_EXTERNAL = (
    ToolCallCompleted,
    ToolCallFailed,
    DecisionAccepted,
    DecisionRejected,
    DecisionHeld,
    VoteRecorded,
    InterruptExpired,
    InterruptEscalated,
)
"""What reaches a run from outside its code (results, decisions, timers); the rest it emits."""


def test_golden_approved_refund_replays_to_completion() -> None:
    history = load_history(HISTORIES / "refund_approved.json")
    assert isinstance(history[-1], RunCompleted)

    step = rebuild(history[:-1], run_id=REFUND_RUN_ID).advance()

    assert step.events == [history[-1]]
    assert step.effects == []


def test_golden_history_recorded_before_gate_events_still_replays() -> None:
    """Recorded before `GateEvaluated` existed: its one interrupt is the whole plan."""
    history = load_history(HISTORIES / "refund_approved_before_gates.json")
    assert not any(isinstance(event, GateEvaluated) for event in history)

    step = rebuild(history[:-1], run_id=REFUND_RUN_ID).advance()

    assert step.events == [history[-1]]
    assert step.effects == []
    assert isinstance(history[-1], RunCompleted)


def _payments_spec() -> AgentSpec:
    spec = payments_example.app.find_agent("payout", "1")
    assert spec is not None
    return spec


GOLDEN_RUNS = [
    pytest.param("refund_approved.json", APP, REFUND, REFUND_RUN_ID, id="refund"),
    pytest.param(
        "payments_approvals.json",
        payments_example.app,
        _payments_spec(),
        PAYMENTS_RUN_ID,
        id="payments",
    ),
]


@pytest.mark.parametrize(("name", "app", "spec", "run_id"), GOLDEN_RUNS)
def test_golden_history_is_recorded_the_same_way_today(
    name: str, app: App, spec: AgentSpec, run_id: str
) -> None:
    """Feed the recorded inputs (results, decisions, expiries) one batch at a time: today's
    code must append exactly the events that were recorded in between. If this fails on
    purpose, say so and regenerate with `python -m tests.unit.golden`."""
    history = load_history(HISTORIES / name)
    start = history[0]
    assert isinstance(start, RunStarted)
    replayer = Replayer(app, spec, run_id, start, fixed_services())
    position = 1
    while position < len(history):
        inputs = []
        while position < len(history) and isinstance(history[position], _EXTERNAL):
            inputs.append(history[position])
            position += 1
        replayer.feed(inputs)
        recorded = []
        while position < len(history) and not isinstance(history[position], _EXTERNAL):
            recorded.append(history[position])
            position += 1
        assert replayer.advance().events == recorded
    assert replayer.finished


def test_golden_payments_history_covers_the_approval_events() -> None:
    history = load_history(HISTORIES / "payments_approvals.json")
    kinds = {type(event).__name__ for event in history}

    assert {
        "GateEvaluated",
        "VoteRecorded",
        "DecisionRejected",
        "InterruptExpired",
        "InterruptEscalated",
    } <= kinds
    assert [e.round for e in history if isinstance(e, GateEvaluated) and e.call == 0] == [1, 2]


# -- (l) changes that do not alter the recorded calls ----------------------------------------------


def test_code_changes_that_keep_the_recorded_calls_replay_fine() -> None:
    async def refactored(ctx: RunContext, input: JsonObject) -> Json:
        order_id = str(input["order_id"])  # a new local, a renamed variable, new reasoning text
        looked_up = await ctx.tool("lookup_order", {"order_id": order_id})
        ctx.log.info("looked_up", ok=looked_up.ok)  # logging is not a recorded call
        amount = input.get("amount", 0)
        outcome = await ctx.tool(
            "refund",
            {"order_id": order_id, "amount": amount},
            reasoning="a rewritten explanation does not change what runs",
        )
        if outcome.status == "rejected":
            return {"status": "refund rejected", "reason": outcome.reason, "by": outcome.decided_by}
        return {"status": "refunded", "refund": outcome.value, "approved_by": outcome.decided_by}

    history = load_history(HISTORIES / "refund_approved.json")

    step = rebuild(history[:-1], _agent(refactored), run_id=REFUND_RUN_ID).advance()

    assert step.events == [history[-1]]
    assert step.effects == []


def test_a_policy_changed_later_never_changes_a_recorded_plan() -> None:
    """A run waiting at level 1 of 2 keeps its recorded 2 levels after the app's ladder is
    cut to one: the recorded `GateEvaluated` is the plan."""
    two_levels = App("ladder-test", ladders={"high": (Level(("bob",)), Level(("carol",)))})
    one_level = App("ladder-test")
    for app in (two_levels, one_level):
        app.tool(name="pay", policy=Always(name="pay"))(pay)
        app.agent("pay-one")(_pay_one)
    driver = Driver(two_levels.find_agent("pay-one") or _agent(_pay_one), app=two_levels)
    assert one_level.find_agent("pay-one") is not None
    [_, first] = driver.advance().events
    assert isinstance(first, InterruptRaised)
    assert (first.request.level, first.request.levels) == (1, 2)
    driver.decide(first.interrupt_id, "approve", decided_by="bob")

    spec = one_level.find_agent("pay-one")
    assert spec is not None
    replayer = Replayer(one_level, spec, RUN_ID, driver.started, fixed_services())
    replayer.feed(driver.history[1:])
    [second] = replayer.advance().events

    assert isinstance(second, InterruptRaised)
    assert (second.request.level, second.request.approvers) == (2, ("carol",))


async def _pay_one(ctx: RunContext, input: JsonObject) -> Json:
    result = await ctx.tool("pay", {"payee": "ann", "amount": 10})
    return result.status


def test_golden_history_of_an_older_agent_is_detected_as_non_deterministic() -> None:
    history = load_history(HISTORIES / "refund_nondeterministic.json")

    step = rebuild(history, run_id=REFUND_RUN_ID).advance()

    [parked] = step.events
    assert isinstance(parked, RunParked)
    assert replace(parked, detail="") == RunParked(
        reason="non-determinism",
        call=0,
        expected=_sig("tool", "lookup_order", {"order": "A-17"}),
        actual=_sig("tool", "lookup_order", LOOKUP_ARGS),
    )
    # The message names the step, both calls with the arguments that differ, the source line
    # of the new call and the likely fix.
    assert parked.detail.splitlines()[:6] == [
        "step 0 does not replay: the history has a different call there",
        '  recorded: tool lookup_order {"order":"A-17"}',
        '  now:      tool lookup_order {"order_id":"A-17"}',
        "  arguments that differ:",
        '    order: recorded "A-17", now (absent)',
        '    order_id: recorded (absent), now "A-17"',
    ]
    assert "examples/refund.py:" in parked.detail.split("  made at:  ")[1]
    assert "in refund_agent" in parked.detail
    assert "ctx.random()" in parked.detail
    assert step.effects == []


def test_golden_loader_round_trips_every_event() -> None:
    from tests.unit.golden import from_json, to_json

    history = load_history(HISTORIES / "refund_approved.json")

    assert [from_json(to_json(event)) for event in history] == history
    assert all(dataclasses.is_dataclass(event) for event in history)
