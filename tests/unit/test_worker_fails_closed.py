"""No input stops a worker: whatever a command or a run causes that cannot be carried out ends
as a dead letter, a failed call, a failed or parked run, committed with the command's offset;
the worker goes on, and a real run decided afterwards completes (in-memory log)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from engine.agent.app import App
from engine.agent.context import RunContext
from engine.agent.policies import Always
from engine.core.executor import Replayer
from engine.core.limits import LIMIT_EXCEEDED, RunLimits
from engine.log.memory import MemoryLog
from engine.log.port import Outgoing, Topics
from events.commands import SubmitDecision
from events.json import Json, JsonObject
from events.notices import DecisionOutcome
from events.run_events import (
    DecisionRejected,
    RunCompleted,
    RunFailed,
    RunParked,
    ToolCallFailed,
)
from tests.approvals_harness import Clock, Harness
from tests.forge import forge
from tests.helpers import eventually

app = App("hostile")
RAN: list[str] = []


@app.tool(idempotent=True)
async def echo(text: str) -> Json:
    RAN.append(text)
    return {"echo": text}


@app.tool(idempotent=True)
async def huge() -> Json:
    return {"blob": "x" * 2_000_000}


@app.tool(policy=Always(risk="medium"))
async def pay(amount: float) -> Json:
    RAN.append(f"pay {amount}")
    return {"paid": amount}


@app.agent("echo")
async def echo_agent(ctx: RunContext, input: JsonObject) -> Json:
    return (await ctx.tool("echo", {"text": input["text"]})).value


@app.agent("huge")
async def huge_agent(ctx: RunContext, input: JsonObject) -> Json:
    result = await ctx.tool("huge", {})
    return {"status": result.status, "reason": result.reason}


@app.agent("pay")
async def pay_agent(ctx: RunContext, input: JsonObject) -> Json:
    return (await ctx.tool("pay", {"amount": input["amount"]})).value


@app.agent("loop")
async def loop_agent(ctx: RunContext, input: JsonObject) -> Json:
    n = 0
    while True:
        await ctx.tool("echo", {"text": f"{n}"})
        n += 1


def _ends(cls: type[Any]) -> Any:
    return lambda payloads: bool(payloads) and isinstance(payloads[-1], cls)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    event_log = MemoryLog(default_partitions=2)
    topics = Topics("hostile")
    await event_log.ensure_topics(topics, 2)
    h = Harness(event_log, topics, timeout=10.0)
    try:
        yield h
    finally:
        await h.halt_all()


async def _a_real_run_still_completes(h: Harness) -> None:
    run_id = await h.publisher.start_run("pay", {"amount": 12.5}, requested_by="alice")
    [raised] = await h.open_interrupts(run_id, 1)
    await h.publisher.submit_decision(run_id, raised.interrupt_id, "approve", decided_by="bob")
    await h.wait_for(run_id, _ends(RunCompleted), "the real run completes")


async def test_a_decision_whose_refusal_cannot_be_recorded_is_dead_lettered(h: Harness) -> None:
    await h.start_worker(app, Clock())
    run_id = await h.publisher.start_run("pay", {"amount": 1}, requested_by="alice")
    [raised] = await h.open_interrupts(run_id, 1)

    # Two 400 kB names echoed into a DecisionRejected (and its reason) would pass the record
    # limit; the codec refuses them at decode (over their caps), so our publisher cannot even
    # write them: forge the bytes another client could send.
    placeholder = SubmitDecision(
        decision_id="dec-hostile",
        run_id=run_id,
        interrupt_id=raised.interrupt_id,
        kind="KIND",
        decided_by="WHO",
        issued_at_us=1,
    )
    hostile = forge(h.codec, placeholder, kind="k" * 400_000, decided_by="d" * 400_000)
    await h.log.publish([Outgoing(h.topics.commands, run_id, hostile)])

    letters = await eventually(h.dead_letters, message="the hostile decision is dead-lettered")
    assert len(letters) == 1
    assert await h.open_interrupts(run_id, 1)  # the run still waits, untouched
    await _a_real_run_still_completes(h)


@pytest.fixture
def h(harness: Harness) -> Harness:
    return harness


async def test_an_agent_asking_to_record_what_the_log_cannot_carry_fails_its_run(
    h: Harness,
) -> None:
    await h.start_worker(app, Clock())
    run_id = await h.publisher.start_run("echo", {"text": "ok"}, requested_by="alice")
    await h.wait_for(run_id, _ends(RunCompleted), "a clean echo")

    # A lone surrogate is a Python str but no UTF-8: neither a call nor an output with one
    # can be recorded. The call fails in the agent (its digest); the output when written.
    surrogate = App("surrogate")
    surrogate.tool(idempotent=True)(echo)

    @surrogate.agent("call")
    async def call(ctx: RunContext, input: JsonObject) -> Json:
        return (await ctx.tool("echo", {"text": "\ud800"})).value

    @surrogate.agent("output")
    async def output(ctx: RunContext, input: JsonObject) -> Json:
        return {"text": "\ud800"}

    await h.halt_all()
    await h.start_worker(surrogate, Clock())
    for agent, error_type in (("call", "UnicodeEncodeError"), ("output", "Unrecordable")):
        run_id = await h.publisher.start_run(agent, {}, requested_by="alice")
        payloads = await h.wait_for(run_id, _ends(RunFailed), f"{agent} fails")
        failed = payloads[-1]
        assert isinstance(failed, RunFailed)
        assert failed.error_type == error_type
    assert "\ud800" not in RAN


async def test_a_tool_result_too_large_to_record_is_a_failed_call_the_agent_sees(
    h: Harness,
) -> None:
    await h.start_worker(app, Clock())
    run_id = await h.publisher.start_run("huge", {}, requested_by="alice")
    payloads = await h.wait_for(run_id, _ends(RunCompleted), "completes")
    [failed] = [p for p in payloads if isinstance(p, ToolCallFailed)]
    assert failed.error_type == "ResultNotRecordable"
    done = payloads[-1]
    assert isinstance(done, RunCompleted)
    assert done.output == {"status": "failed", "reason": f"ResultNotRecordable: {failed.error}"}


async def test_an_engine_fault_on_one_run_parks_it_and_the_worker_goes_on(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    advance = Replayer.advance

    def faulty(self: Replayer) -> Any:
        if self.context.run_id == "doomed":
            raise RuntimeError("a bug of ours")
        return advance(self)

    monkeypatch.setattr(Replayer, "advance", faulty)
    await h.start_worker(app, Clock())
    await h.publisher.start_run("echo", {"text": "x"}, requested_by="a", run_id="doomed")
    payloads = await h.wait_for("doomed", _ends(RunParked), "parked")
    parked = payloads[-1]
    assert isinstance(parked, RunParked)
    assert parked.reason == "engine-error"
    assert "a bug of ours" in parked.actual
    await _a_real_run_still_completes(h)


async def test_a_flood_of_refused_decisions_stops_growing_the_run_at_its_cap(
    h: Harness,
) -> None:
    await h.start_worker(app, Clock(), limits=RunLimits(max_refusals=3))
    run_id = await h.publisher.start_run("pay", {"amount": 1}, requested_by="alice")
    [raised] = await h.open_interrupts(run_id, 1)
    ids = [
        await h.publisher.submit_decision(
            run_id, raised.interrupt_id, "approve", decided_by="alice"
        )
        for _ in range(6)  # the requester may not approve: each is refused
    ]
    for decision_id in ids:
        outcome = await h.outcome(decision_id, run_id)
        assert isinstance(outcome, DecisionOutcome)
        assert outcome.status == "refused"
    payloads = await h.payloads(run_id)
    assert sum(isinstance(p, DecisionRejected) for p in payloads) == 3
    await h.publisher.submit_decision(run_id, raised.interrupt_id, "approve", decided_by="bob")
    await h.wait_for(run_id, _ends(RunCompleted), "bob's approval counts")


async def test_a_runaway_agent_fails_at_the_event_cap(h: Harness) -> None:
    await h.start_worker(app, Clock(), limits=RunLimits(max_events=40))
    run_id = await h.publisher.start_run("loop", {}, requested_by="alice")
    payloads = await h.wait_for(run_id, _ends(RunFailed), "it fails")
    failed = payloads[-1]
    assert isinstance(failed, RunFailed)
    assert failed.error_type == LIMIT_EXCEEDED
    assert len(payloads) <= 40
    await _a_real_run_still_completes(h)
