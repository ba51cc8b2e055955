"""Determinism caught while developing: a worker that checks determinism (as `countersign dev`
does) replays a run from its history at every resume, so a non-deterministic agent is parked
at its first decision, with an explanation and a warning in the log; without the check the
same run completes (the mistake would show only after a restart)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from structlog.testing import capture_logs

from engine.core.executor import Replayer
from engine.log.memory import MemoryLog
from engine.log.port import Topics
from events.run_events import (
    DecisionAccepted,
    InterruptRaised,
    RunCompleted,
    RunEventPayload,
    RunParked,
    RunStarted,
)
from examples import nondeterministic
from tests.approvals_harness import Clock, Harness, services


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    event_log = MemoryLog(default_partitions=1)
    topics = Topics("determinism")
    await event_log.ensure_topics(topics, 1)
    harness = Harness(event_log, topics, timeout=10.0)
    try:
        yield harness
    finally:
        await harness.halt_all()


def _ends(cls: type) -> Callable[[list[RunEventPayload]], bool]:
    return lambda payloads: bool(payloads) and isinstance(payloads[-1], cls)


async def _decide_first(h: Harness, *, check: bool) -> str:
    await h.start_worker(nondeterministic.app, Clock(), check_determinism=check)
    run_id = await h.publisher.start_run("lottery", {}, requested_by="alice")
    [raised] = await h.open_interrupts(run_id, 1)
    await h.publisher.submit_decision(run_id, raised.interrupt_id, "approve", decided_by="bob")
    return run_id


async def test_a_non_deterministic_agent_is_parked_at_its_first_decision(h: Harness) -> None:
    with capture_logs() as logs:
        run_id = await _decide_first(h, check=True)
        payloads = await h.wait_for(run_id, _ends(RunParked), "parked at the first decision")

    parked = payloads[-1]
    assert isinstance(parked, RunParked)
    assert isinstance(payloads[-2], DecisionAccepted)  # the decision waits in the history
    assert (parked.reason, parked.call) == ("non-determinism", 0)
    lines = parked.detail.splitlines()
    assert lines[0] == "step 0 does not replay: the history has a different call there"
    assert lines[1].startswith('  recorded: question "Keep the draw ')
    assert lines[2].startswith('  now:      question "Keep the draw ')
    assert lines[4].startswith('    (value): recorded "Keep the draw ')
    assert "examples/nondeterministic.py:" in parked.detail
    assert "in lottery" in parked.detail
    assert "ctx.random()" in parked.detail
    warnings = [e for e in logs if e["event"] == "run_parked"]
    assert [(w["log_level"], w["run_id"]) for w in warnings] == [("warning", run_id)]
    assert warnings[0]["detail"] == parked.detail


async def test_without_the_check_the_same_mistake_goes_unseen(h: Harness) -> None:
    run_id = await _decide_first(h, check=False)

    payloads = await h.wait_for(run_id, _ends(RunCompleted), "completes from memory")

    assert not any(isinstance(p, RunParked) for p in payloads)


def test_only_something_new_makes_a_resume_that_the_check_replays() -> None:
    spec = nondeterministic.app.find_agent("lottery")
    assert spec is not None
    started = RunStarted(input={}, requested_by="alice", command_id="c")
    replayer = Replayer(nondeterministic.app, spec, "run-1", started, services(Clock()))

    step = replayer.advance()
    replayer.feed(step.events)  # what it appended itself: nothing new
    assert not replayer.news
    [raised] = step.events
    assert isinstance(raised, InterruptRaised)

    replayer.feed(
        [
            DecisionAccepted(
                interrupt_id=raised.interrupt_id, decision_id="d", kind="approve", decided_by="b"
            )
        ]
    )
    assert replayer.news
    replayer.advance()
    assert not replayer.news
