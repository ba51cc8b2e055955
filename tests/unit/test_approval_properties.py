"""Property-based: random interleavings of decisions (valid or not), duplicate decision ids,
early decisions, edits and expiries over a run with several open interrupts, k-of-n and levels.

Whatever happens: every interrupt ends with exactly one outcome; a decision id is judged once;
the folded state equals a fold of the log from scratch; and a replay of the history rebuilds
the run without emitting or running anything again."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.agent.app import App
from engine.agent.authorization import Level
from engine.agent.context import RunContext
from engine.agent.policies import Always, When
from engine.core.executor import Replayer, interrupt_id_for
from engine.core.state import fold
from events.json import Json, JsonObject
from events.run_events import (
    DecisionAccepted,
    DecisionHeld,
    DecisionRejected,
    InterruptExpired,
    InterruptRaised,
    RunCompleted,
    VoteRecorded,
)
from tests.unit.approvals_sim import Clock, Sim, services

HOUR = 3600.0
APP = App(
    "properties-test",
    directory={"bob": ["ops"], "carol": ["ops"], "dan": ["ops"], "vic": ["vp"]},
    ladders={"critical": (Level(("role:ops",), quorum=2), Level(("role:vp",)))},
)


@APP.tool(
    policy=Always(
        name="move",
        risk="high",
        approvers=("role:ops",),
        deadline_s=HOUR,
        on_timeout="escalate",
        escalate_to=("role:vp",),
    )
)
async def move(n: int, amount: int) -> Json:
    return {"n": n, "amount": amount}


APP.guard(
    "move", When(lambda a: a["amount"] > 1000, name="big-move", risk="critical", deadline_s=HOUR)
)  # type: ignore[operator]


@APP.agent("moves")
async def moves(ctx: RunContext, input: JsonObject) -> Json:
    amounts = input["amounts"]
    assert isinstance(amounts, list)
    results = await ctx.all(
        *(ctx.tool("move", {"n": i, "amount": a}) for i, a in enumerate(amounts))
    )
    answer = await ctx.interrupt(
        "All done?", allowed=("approve", "reject", "respond"), deadline_s=HOUR
    )
    return {"results": [r.status for r in results], "answer": answer.kind}


PEOPLE = ("alice", "bob", "carol", "dan", "vic", "mallory")
PURPOSES = ("approval", "approval-2", "approval-3", "question")

decide = st.tuples(
    st.just("decide"),
    st.integers(0, 2),  # which call
    st.sampled_from(PURPOSES),
    st.sampled_from(PEOPLE),
    st.sampled_from(["approve", "approve", "reject", "edit", "respond"]),
    st.integers(0, 11),  # decision id from a small pool: duplicates happen
    st.sampled_from([50, 500, 5000]),  # an edit's new amount
)
answer = st.tuples(
    st.just("answer"),  # a decision on one of the interrupts open right now
    st.integers(0, 5),
    st.sampled_from(("bob", "carol", "dan", "vic", "alice")),
    st.sampled_from(["approve", "approve", "approve", "reject", "edit", "respond"]),
    st.integers(0, 11),
    st.sampled_from([50, 500, 5000]),
)
tick = st.tuples(st.just("tick"), st.sampled_from([60.0, 600.0, 1800.0, HOUR]))
actions = st.lists(st.one_of(answer, answer, answer, answer, decide, tick), max_size=40)


def _interrupt_id(call: int, purpose: str) -> str:
    return interrupt_id_for("run-1", 3 if purpose == "question" else call, purpose)


def _apply(sim: Sim, action: tuple[Any, ...]) -> None:
    if action[0] == "tick":
        sim.tick(action[1])
        return
    if action[0] == "answer":
        _, index, who, kind, pool, amount = action
        opened = sim.open()
        if not opened:
            return
        target = opened[index % len(opened)]
        call, interrupt_id = target.call, target.interrupt_id
    else:
        _, call, purpose, who, kind, pool, amount = action
        interrupt_id = _interrupt_id(call, purpose)
    fields: dict[str, Any] = {}
    if kind == "edit":
        fields["edited_args"] = {"n": call, "amount": amount}
    if kind == "respond":
        fields["response"] = {"note": "ok"}
    sim.decide(interrupt_id, kind, who, decision_id=f"d{pool}-{kind}-{who}", **fields)


def _check_invariants(sim: Sim) -> None:
    assert fold(sim.envelopes) == sim.run
    closing = Counter(
        e.interrupt_id for e in sim.events if isinstance(e, DecisionAccepted | InterruptExpired)
    )
    assert all(count == 1 for count in closing.values()), closing
    raised = {e.interrupt_id for e in sim.of_type(InterruptRaised)}
    assert set(closing) <= raised
    judged = Counter(
        e.decision_id
        for e in sim.events
        if isinstance(e, DecisionAccepted | DecisionRejected | VoteRecorded)
    )
    assert all(count == 1 for count in judged.values()), judged
    held = Counter(e.decision_id for e in sim.of_type(DecisionHeld))
    assert all(count == 1 for count in held.values()), held


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(amounts=st.lists(st.sampled_from([100, 5000]), min_size=1, max_size=3), script=actions)
def test_every_interrupt_ends_with_exactly_one_outcome_and_replay_agrees(
    amounts: list[int], script: list[tuple[Any, ...]]
) -> None:
    listed: list[Json] = [*amounts]
    sim = Sim(APP, "moves", {"amounts": listed})
    for action in script:
        _apply(sim, action)
        _check_invariants(sim)
    for _ in range(20):  # let time run out on whatever is still open
        if sim.run.terminal:
            break
        sim.tick(2 * HOUR)
        _check_invariants(sim)

    assert sim.run.status == "completed"
    raised = {e.interrupt_id for e in sim.of_type(InterruptRaised)}
    outcomes = Counter(
        e.interrupt_id for e in sim.events if isinstance(e, DecisionAccepted | InterruptExpired)
    )
    assert set(outcomes) == raised
    assert set(outcomes.values()) == {1}
    assert not sim.run.held, "a held decision outlived its run"

    [completed] = sim.of_type(RunCompleted)
    assert _rebuild_without_terminal(sim) == ([completed], [])


def _rebuild_without_terminal(sim: Sim) -> tuple[list[Any], list[Any]]:
    """Another worker rebuilding the run from its log (up to the end): it must reproduce the
    outcome and ask for nothing to be run again."""
    history = sim.events[1:]
    end = max(i for i, e in enumerate(history) if isinstance(e, RunCompleted))
    replayer = Replayer(sim.app, sim.spec, sim.run_id, sim.started, services(Clock(0)))
    replayer.feed(history[:end])
    advanced = replayer.advance()
    return advanced.events, advanced.effects
