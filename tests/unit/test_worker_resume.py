"""Parked runs recover: once the code replays again (fixed, or the old version deployed again),
`ResumeRun` continues a parked run from where it stood; if it still diverges it is parked
again, with the new explanation. Decisions on a parked run are refused, never accepted for
nothing. The run's history stays one valid chain throughout (seq contiguous, hashes chained).
Resumes that cannot be carried out are dead-lettered with the reason."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from engine import App, RunContext
from engine.core.handling import resume_refusal
from engine.core.integrity import check_run
from engine.core.state import RunState, fold
from engine.log.memory import MemoryLog
from engine.log.port import Topics
from events.approval import ApprovalRequest
from events.commands import ResumeRun
from events.envelope import EventEnvelope
from events.json import Json, JsonObject
from events.run_events import (
    DecisionAccepted,
    InterruptRaised,
    RunCancelled,
    RunCompleted,
    RunEventPayload,
    RunParked,
    RunQuarantined,
    RunResumed,
    RunStarted,
    ToolCallCompleted,
)
from tests.approvals_harness import Clock, Harness
from tests.helpers import eventually

NOTE = {"text": "first draft"}
"""What the agent writes; changing it between workers is a change of the agent's code."""
NOTES: list[str] = []

app = App("resume-test")


@app.tool(idempotent=True)
async def log_note(text: str) -> Json:
    NOTES.append(text)
    return {"noted": text}


@app.agent("noter", version="1")
async def noter(ctx: RunContext, input: JsonObject) -> Json:
    await ctx.tool("log_note", {"text": NOTE["text"]})
    decision = await ctx.interrupt("Ship it?", allowed=("approve", "reject"))
    return {"shipped": decision.kind == "approve"}


without_noter = App("resume-test-without")


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    event_log = MemoryLog(default_partitions=1)
    topics = Topics("resume")
    await event_log.ensure_topics(topics, 1)
    harness = Harness(event_log, topics, timeout=10.0)
    NOTE["text"] = "first draft"
    try:
        yield harness
    finally:
        await harness.halt_all()
        NOTE["text"] = "first draft"


def _ends(cls: type) -> Callable[[list[RunEventPayload]], bool]:
    return lambda payloads: bool(payloads) and isinstance(payloads[-1], cls)


async def _resume(h: Harness, run_id: str, by: str = "oscar", command_id: str = "r-1") -> None:
    command = ResumeRun(
        command_id=command_id, run_id=run_id, resumed_by=by, issued_at_us=1, reason="fixed"
    )
    await h.publisher.publish(command)


async def _dead_letter_reason(h: Harness) -> str:
    async def reason() -> str | None:
        letters = await h.dead_letters()
        header = letters[-1].header("countersign.reason") if letters else None
        return header.decode() if header is not None else None

    found: str | None = await eventually(reason, timeout=10.0, message="a dead letter")
    assert found is not None
    return found


async def _parked_run(h: Harness) -> tuple[str, str]:
    """A run waiting for a decision, then parked by a worker whose code changed."""
    await h.start_worker(app, Clock())
    run_id = await h.publisher.start_run("noter", {}, requested_by="alice")
    [raised] = await h.open_interrupts(run_id, 1)
    await h.halt_all()
    NOTE["text"] = "second draft"  # the code changed under a waiting run
    await h.start_worker(app, Clock())
    await h.wait_for(run_id, _ends(RunParked), "the run is parked on restore")
    return run_id, raised.interrupt_id


async def test_a_parked_run_resumes_once_the_old_code_is_back(h: Harness) -> None:
    run_id, interrupt_id = await _parked_run(h)
    [parked] = [p for p in await h.payloads(run_id) if isinstance(p, RunParked)]
    assert '"text":"first draft"' in parked.detail
    assert '"text":"second draft"' in parked.detail

    # A decision on the parked run is refused, not accepted for nothing.
    refused = await h.publisher.submit_decision(run_id, interrupt_id, "approve", decided_by="bob")
    outcome = await h.outcome(refused, run_id)
    assert outcome.status == "refused"
    assert f"run {run_id} is parked" in outcome.reason
    assert f"countersign runs resume-parked {run_id}" in outcome.reason

    # Resumed while the code still differs: parked again, with the explanation.
    await _resume(h, run_id, command_id="r-1")
    payloads = await h.wait_for(run_id, _ends(RunParked), "parked again")
    assert [type(p) for p in payloads[-2:]] == [RunResumed, RunParked]

    # The old code deployed again: the run goes on from its open interrupt.
    NOTE["text"] = "first draft"
    await h.halt_all()
    await h.start_worker(app, Clock())
    await _resume(h, run_id, command_id="r-2")
    await h.wait_for(run_id, _ends(RunResumed), "resumed")
    [still_open] = await h.open_interrupts(run_id, 1)
    assert still_open.interrupt_id == interrupt_id
    await h.publisher.submit_decision(run_id, interrupt_id, "approve", decided_by="bob")
    payloads = await h.wait_for(run_id, _ends(RunCompleted), "the run completes")

    completed = payloads[-1]
    assert isinstance(completed, RunCompleted)
    assert completed.output == {"shipped": True}
    assert sum(isinstance(p, ToolCallCompleted) for p in payloads) == 1  # not run again
    assert [p.resumed_by for p in payloads if isinstance(p, RunResumed)] == ["oscar", "oscar"]
    assert [p.decided_by for p in payloads if isinstance(p, DecisionAccepted)] == ["bob"]
    # One valid chain: every record extends it, seq contiguous from 0.
    partition = 0
    records = [
        (r.offset, r.value)
        async for r in h.log.read(h.topics.runs, partition, 0)
        if r.key == run_id
    ]
    checked = check_run(lambda _, value: h.codec.decode_event(value), run_id, records)
    assert [e.seq for e, _, _ in checked.chain] == list(range(len(records)))
    assert not checked.strays


@pytest.mark.parametrize(
    ("by", "reason"),
    [("", "a resume must say who asks"), ("oscar", "is waiting, not parked")],
    ids=["nobody", "not-parked"],
)
async def test_a_resume_that_cannot_be_carried_out_is_dead_lettered(
    h: Harness, by: str, reason: str
) -> None:
    await h.start_worker(app, Clock())
    run_id = await h.publisher.start_run("noter", {}, requested_by="alice")
    await h.open_interrupts(run_id, 1)
    if not by:
        await h.halt_all()
        NOTE["text"] = "second draft"
        await h.start_worker(app, Clock())
        await h.wait_for(run_id, _ends(RunParked), "parked")

    await _resume(h, run_id, by=by)

    assert reason in await _dead_letter_reason(h)
    assert not any(isinstance(p, RunResumed) for p in await h.payloads(run_id))


async def test_a_worker_without_the_agent_version_refuses_to_resume(h: Harness) -> None:
    run_id, _ = await _parked_run(h)
    await h.halt_all()
    await h.start_worker(without_noter, Clock())

    await _resume(h, run_id)

    assert "has no agent 'noter' version '1'" in await _dead_letter_reason(h)


def envelope(seq: int, payload: RunEventPayload) -> EventEnvelope:
    return EventEnvelope(
        event_id=f"e{seq}",
        run_id="r",
        seq=seq,
        occurred_at_us=seq,
        agent="noter",
        agent_version="1",
        causation_id="",
        correlation_id="r",
        prev_hash="",
        payload=payload,
    )


PARKED = RunParked(reason="non-determinism", call=0, expected="a", actual="b")
QUARANTINED = RunQuarantined(reason="strays", strays=[])


def test_the_fold_takes_a_resumed_run_back_to_where_it_stood() -> None:
    raised = InterruptRaised(
        call=1, interrupt_id="i", request=ApprovalRequest(kind="question", title="Ship it?")
    )
    parked = RunParked(reason="non-determinism", call=0, expected="a", actual="b")
    resumed = RunResumed(resumed_by="oscar", reason="", command_id="c")
    history = [
        envelope(0, RunStarted(input={}, requested_by="alice", command_id="c0")),
        envelope(1, raised),
        envelope(2, parked),
    ]

    state = fold(history)
    assert state is not None
    assert (state.status, state.moving) == ("parked", False)
    state = fold([*history, envelope(3, resumed)])
    assert state is not None
    assert (state.status, state.moving) == ("waiting", True)
    assert list(state.open_interrupts) == ["i"]
    state = fold([history[0], envelope(1, parked), envelope(2, resumed)])
    assert state is not None
    assert state.status == "running"


def _state(*payloads: RunEventPayload) -> RunState | None:
    history = [envelope(0, RunStarted(input={}, requested_by="alice", command_id="c0"))]
    history += [envelope(seq, p) for seq, p in enumerate(payloads, start=1)]
    return fold(history)


@pytest.mark.parametrize(
    ("payloads", "by", "says"),
    [
        ((), "oscar", "is running, not parked"),
        ((PARKED,), "", "must say who asks"),
        ((PARKED, QUARANTINED), "oscar", "is quarantined"),
        ((PARKED, RunCancelled(cancelled_by="o", reason="")), "oscar", "is cancelled"),
    ],
    ids=["running", "nobody", "quarantined", "cancelled"],
)
def test_why_a_resume_is_refused(payloads: tuple[RunEventPayload, ...], by: str, says: str) -> None:
    command = ResumeRun(command_id="r", run_id="r", resumed_by=by, issued_at_us=0)

    assert says in resume_refusal(_state(*payloads), command, app)
    assert "unknown, or finished" in resume_refusal(None, command, app)
    parked = _state(PARKED)
    someone = ResumeRun(command_id="r", run_id="r", resumed_by="oscar", issued_at_us=0)
    assert resume_refusal(parked, someone, app) == ""
    assert resume_refusal(parked, someone, without_noter).startswith("this worker has no agent")
