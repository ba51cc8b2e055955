"""Re-running a recorded history against changed code (engine.core.rerun, engine.core.explain):
the run as recorded replays identically, and six deliberate changes to the agent are each
reported at the right seq, with the right cause, both sides and the agent line."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from engine.agent.app import App
from engine.agent.context import RunContext
from engine.agent.policies import When
from engine.core.rerun import Pause, Rerun, RerunOptions, rerun
from events.envelope import EventEnvelope
from events.json import Json, JsonObject
from events.run_events import (
    InterruptRaised,
    RunCompleted,
    ToolCallScheduled,
)
from tests.unit.approvals_sim import Sim

AgentFn = Callable[[RunContext, JsonObject], Coroutine[Any, Any, Json]]
INPUT: JsonObject = {"order_id": "A-17", "amount": 2400}


def make_app(agent: AgentFn, version: str = "1") -> App:
    """The same tools every time; only the agent's code changes."""
    app = App("rerun-test")

    @app.tool(idempotent=True)
    async def lookup(order_id: str) -> Json:
        return {"order_id": order_id, "customer": "c-42"}

    @app.tool(idempotent=True)
    async def check(order_id: str) -> Json:
        return {"ok": True}

    @app.tool(idempotent=True)
    async def check_fraud(order_id: str) -> Json:
        return {"fraud": False}

    @app.tool(policy=When(lambda a: float(a["amount"]) > 500, name="limit"))  # type: ignore[arg-type]
    async def refund(order_id: str, amount: float) -> Json:
        return {"refund_id": "rf-1", "amount": amount}

    @app.tool()
    async def notify(to: str, text: str) -> Json:
        return {"sent": True}

    app.agent("refund", version=version)(agent)
    return app


# -- the agent as recorded, and six changes of it ------------------------------------------------


async def recorded(ctx: RunContext, input: JsonObject) -> Json:
    order = await ctx.tool("lookup", {"order_id": input["order_id"]})
    why = await ctx.interrupt("Why the refund?", allowed=("respond",))
    await ctx.tool("check", {"order_id": input["order_id"]})
    paid = await ctx.tool("refund", {"order_id": input["order_id"], "amount": input["amount"]})
    await ctx.tool("notify", {"to": order.value["customer"], "text": str(why.response)})  # type: ignore[index, call-overload]
    return {"refund": paid.value}


async def tool_added(ctx: RunContext, input: JsonObject) -> Json:
    order = await ctx.tool("lookup", {"order_id": input["order_id"]})
    why = await ctx.interrupt("Why the refund?", allowed=("respond",))
    await ctx.tool("check_fraud", {"order_id": input["order_id"]})  # ADDED
    await ctx.tool("check", {"order_id": input["order_id"]})
    paid = await ctx.tool("refund", {"order_id": input["order_id"], "amount": input["amount"]})
    await ctx.tool("notify", {"to": order.value["customer"], "text": str(why.response)})  # type: ignore[index, call-overload]
    return {"refund": paid.value}


async def tool_removed(ctx: RunContext, input: JsonObject) -> Json:
    order = await ctx.tool("lookup", {"order_id": input["order_id"]})
    why = await ctx.interrupt("Why the refund?", allowed=("respond",))
    args = {"order_id": input["order_id"], "amount": input["amount"]}
    paid = await ctx.tool("refund", args)  # GOES ON
    await ctx.tool("notify", {"to": order.value["customer"], "text": str(why.response)})  # type: ignore[index, call-overload]
    return {"refund": paid.value}


async def reordered(ctx: RunContext, input: JsonObject) -> Json:
    await ctx.tool("check", {"order_id": input["order_id"]})  # NOW FIRST
    order = await ctx.tool("lookup", {"order_id": input["order_id"]})
    why = await ctx.interrupt("Why the refund?", allowed=("respond",))
    paid = await ctx.tool("refund", {"order_id": input["order_id"], "amount": input["amount"]})
    await ctx.tool("notify", {"to": order.value["customer"], "text": str(why.response)})  # type: ignore[index, call-overload]
    return {"refund": paid.value}


async def arguments_changed(ctx: RunContext, input: JsonObject) -> Json:
    order = await ctx.tool("lookup", {"order_id": input["order_id"]})
    why = await ctx.interrupt("Why the refund?", allowed=("respond",))
    await ctx.tool("check", {"order_id": input["order_id"]})
    amount = float(input["amount"]) * 0.9  # type: ignore[arg-type]
    paid = await ctx.tool("refund", {"order_id": input["order_id"], "amount": amount})  # ARGS
    await ctx.tool("notify", {"to": order.value["customer"], "text": str(why.response)})  # type: ignore[index, call-overload]
    return {"refund": paid.value}


async def interrupt_moved(ctx: RunContext, input: JsonObject) -> Json:
    order = await ctx.tool("lookup", {"order_id": input["order_id"]})
    await ctx.tool("check", {"order_id": input["order_id"]})  # NOW BEFORE THE QUESTION
    why = await ctx.interrupt("Why the refund?", allowed=("respond",))
    paid = await ctx.tool("refund", {"order_id": input["order_id"], "amount": input["amount"]})
    await ctx.tool("notify", {"to": order.value["customer"], "text": str(why.response)})  # type: ignore[index, call-overload]
    return {"refund": paid.value}


APP = make_app(recorded)
"""The recorded agent, for `--app tests.unit.test_rerun:APP`."""


def record() -> list[EventEnvelope]:
    """The recorded agent's run, through to the end: a question answered, a refund approved."""
    sim = Sim(make_app(recorded), "refund", INPUT, requested_by="bob")
    question = sim.only_open()
    sim.decide(question.interrupt_id, "respond", "carol", response="damaged in transit")
    sim.decide(sim.only_open().interrupt_id, "approve", "alice")
    assert isinstance(sim.events[-1], RunCompleted)
    return sim.envelopes


def record_paused() -> list[EventEnvelope]:
    """The recorded agent's run, paused at the refund's approval."""
    sim = Sim(make_app(recorded), "refund", INPUT, requested_by="bob")
    sim.decide(sim.only_open().interrupt_id, "respond", "carol", response="damaged in transit")
    assert sim.run.status == "waiting"
    return sim.envelopes


def first_seq(history: list[EventEnvelope], call: int) -> int:
    return next(e.seq for e in history if getattr(e.payload, "call", None) == call)


def line_of(fn: AgentFn, marker: str) -> int:
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, text in enumerate(lines) if marker in text)


# -- identical ------------------------------------------------------------------------------------


@pytest.mark.parametrize("history", [record(), record_paused()], ids=["completed", "paused"])
def test_the_recorded_code_replays_identically(history: list[EventEnvelope]) -> None:
    report = rerun(make_app(recorded), history, RerunOptions(steps=True))

    assert (report.outcome, report.seq, report.reason) == ("identical", None, "")
    assert report.next == ()  # nothing new: done, or waiting where it waited
    assert report.effects == ()
    firsts = [step for step in report.steps if step.made is not None]
    assert [step.made.describe() for step in firsts][:3] == [  # type: ignore[union-attr]
        'tool lookup {"order_id":"A-17"}',
        'question "Why the refund?"',
        'tool check {"order_id":"A-17"}',
    ]
    assert not any(step.differs for step in report.steps)
    assert firsts[0].made.site is not None  # type: ignore[union-attr]
    assert firsts[0].made.site.function == "recorded"  # type: ignore[union-attr]


# -- the six deliberate changes -------------------------------------------------------------------


def test_a_tool_added() -> None:
    history = record()
    report = rerun(make_app(tool_added), history)

    assert (report.outcome, report.cause) == ("diverges", "added")
    assert report.seq == first_seq(history, 2)  # where the run called check
    assert report.reason == (
        'a call was added: tool check_fraud {"order_id":"A-17"}, before the recorded '
        'tool check {"order_id":"A-17"}'
    )
    assert report.divergence is not None
    assert report.divergence.new is not None
    assert report.divergence.new.site is not None
    assert report.divergence.new.site.line == line_of(tool_added, "# ADDED")


def test_a_tool_removed() -> None:
    history = record()
    report = rerun(make_app(tool_removed), history)

    assert (report.outcome, report.cause, report.seq) == (
        "diverges",
        "removed",
        first_seq(history, 2),
    )
    assert report.reason.startswith(
        'the tool check {"order_id":"A-17"} was removed; it goes on with'
    )
    assert report.divergence is not None
    assert report.divergence.new is not None
    assert report.divergence.new.site.line == line_of(tool_removed, "# GOES ON")  # type: ignore[union-attr]


def test_calls_reordered() -> None:
    history = record()
    report = rerun(make_app(reordered), history)

    assert (report.outcome, report.cause, report.seq) == (
        "diverges",
        "reordered",
        first_seq(history, 0),
    )
    assert report.reason == (
        'reordered: the tool check {"order_id":"A-17"} (recorded as step 2) now comes before the '
        'tool lookup {"order_id":"A-17"}'
    )
    assert report.divergence.new.site.line == line_of(reordered, "# NOW FIRST")  # type: ignore[union-attr]


async def asks_first(ctx: RunContext, input: JsonObject) -> Json:
    why = await ctx.interrupt("Why the refund?", allowed=("respond",))
    order = await ctx.tool("lookup", {"order_id": input["order_id"]})
    await ctx.tool("check", {"order_id": input["order_id"]})
    paid = await ctx.tool("refund", {"order_id": input["order_id"], "amount": input["amount"]})
    await ctx.tool("notify", {"to": order.value["customer"], "text": str(why.response)})  # type: ignore[index, call-overload]
    return {"refund": paid.value}


def test_an_interrupt_moved_earlier() -> None:
    history = record()
    report = rerun(make_app(asks_first), history)

    assert (report.cause, report.seq) == ("interrupt-moved", first_seq(history, 0))
    assert report.reason == (
        'the question "Why the refund?" moved earlier: recorded as step 1, the code now asks '
        'it at step 0, before the tool lookup {"order_id":"A-17"}'
    )


def test_arguments_changed() -> None:
    history = record()
    report = rerun(make_app(arguments_changed), history)

    assert (report.outcome, report.cause, report.seq) == (
        "diverges",
        "arguments",
        first_seq(history, 3),
    )
    assert report.divergence is not None
    assert [c.describe() for c in report.divergence.changes] == ["amount: 2400 → 2160.0"]
    assert report.divergence.recorded is not None
    assert report.divergence.recorded.args == {"order_id": "A-17", "amount": 2400}
    assert report.divergence.new.site.line == line_of(arguments_changed, "# ARGS")  # type: ignore[union-attr]


def test_an_interrupt_moved_later() -> None:
    history = record()
    report = rerun(make_app(interrupt_moved), history)

    assert (report.outcome, report.cause, report.seq) == (
        "diverges",
        "interrupt-moved",
        first_seq(history, 1),
    )
    assert report.reason == (
        'the question "Why the refund?" moved later: recorded as step 1, the code now asks it '
        'at step 2, after the tool check {"order_id":"A-17"}'
    )


def test_the_version_bumped() -> None:
    history = record_paused()
    report = rerun(make_app(recorded, version="2"), history)

    assert (report.outcome, report.cause, report.seq) == ("pinned", "version", 0)
    assert report.reason == (
        "the run started with refund v1; the app has no refund v1 (it has v2): a worker with "
        "this app leaves the run where it is"
    )
    against_v2 = rerun(make_app(recorded, version="2"), history, RerunOptions(version="2"))
    assert (against_v2.outcome, against_v2.replayed_with) == ("identical", "2")


# -- endings, errors, stopping ---------------------------------------------------------------------


async def returns_other(ctx: RunContext, input: JsonObject) -> Json:
    result = await recorded(ctx, input)
    return {"refund": result, "note": "new"}


async def raises(ctx: RunContext, input: JsonObject) -> Json:
    order = await ctx.tool("lookup", {"order_id": input["order_id"]})
    return order.value["missing"]  # type: ignore[index, call-overload]  # RAISES


async def goes_on(ctx: RunContext, input: JsonObject) -> Json:
    result = await recorded(ctx, input)
    await ctx.tool("notify", {"to": "ops", "text": "done"})
    return result


def test_another_output_is_a_divergence_at_the_end() -> None:
    history = record()
    report = rerun(make_app(returns_other), history)

    assert (report.outcome, report.cause, report.seq) == ("diverges", "ending", len(history) - 1)
    assert 'note: (absent) → "new"' in report.reason


def test_agent_code_that_raises_is_reported_with_its_line() -> None:
    history = record()
    report = rerun(make_app(raises), history)

    assert report.outcome == "diverges"
    assert report.reason.startswith("the agent now raises KeyError: 'missing' at ")
    assert report.error_site is not None
    assert report.error_site.line == line_of(raises, "# RAISES")


def test_a_completed_run_whose_code_now_goes_on() -> None:
    history = record()
    report = rerun(make_app(goes_on), history)

    assert (report.outcome, report.cause, report.seq) == ("diverges", "added", len(history) - 1)
    assert report.reason.endswith('the code now goes on: tool notify {"text":"done","to":"ops"}')


def test_until_stops_there_and_shows_where_the_agent_waits() -> None:
    history = record()
    raised = next(e.seq for e in history if isinstance(e.payload, InterruptRaised))

    report = rerun(make_app(recorded), history, RerunOptions(until=raised, frames=True))

    assert (report.outcome, report.events) == ("identical", raised + 1)
    assert report.state is not None
    assert report.state.status == "waiting"
    [frame] = report.waiting_in
    assert frame.site.function == "recorded"
    names = dict(frame.locals)
    assert names["input"] == repr(INPUT)
    assert "order" in names
    assert "why" not in names


def test_a_history_cut_before_a_result_shows_what_the_code_does_next() -> None:
    history = record()
    scheduled = next(e.seq for e in history if isinstance(e.payload, ToolCallScheduled))

    report = rerun(make_app(recorded), history, RerunOptions(until=scheduled))

    assert report.outcome == "identical"
    assert [(e.call, e.tool) for e in report.effects] == [(0, "lookup")]  # not run, only told


def test_pause_hands_over_the_agent_frame_at_the_chosen_call() -> None:
    seen: list[Pause] = []

    def pause(p: Pause) -> None:
        seen.append(p)
        assert p.frame.f_code is recorded.__code__
        assert p.frame.f_locals["order"].value == {"order_id": "A-17", "customer": "c-42"}

    rerun(make_app(recorded), record(), RerunOptions(pause_at=frozenset({1}), pause=pause))

    assert [(p.call, p.why) for p in seen] == [(1, "result")]


def test_pause_at_a_divergence_without_asking() -> None:
    seen: list[Pause] = []
    report = rerun(make_app(arguments_changed), record(), RerunOptions(pause=seen.append))

    assert report.outcome == "diverges"
    assert [(p.call, p.why, p.frame.f_code.co_name) for p in seen] == [
        (3, "diverges", "arguments_changed")
    ]


def test_explaining_can_be_switched_off() -> None:
    report = rerun(make_app(tool_added), record(), RerunOptions(explain=0))
    assert (report.cause, report.reason) == (
        "other",
        "another tool: check_fraud where the run recorded check",
    )


def _reports(report: Rerun) -> object:
    return report.to_json()


def test_a_report_is_json() -> None:
    import json

    report = rerun(make_app(arguments_changed), record(), RerunOptions(steps=True))
    text = json.dumps(_reports(report))
    assert '"outcome": "diverges"' in text
