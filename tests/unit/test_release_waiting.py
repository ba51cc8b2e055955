"""A worker that releases waiting runs (`WorkerSettings.release_waiting`) holds no replayer
for a run that waits for a person, and the decision rebuilds it from the history: the run
goes on exactly as with the replayer kept. Rebuilding is replaying, so an agent that is not
deterministic is parked at its first decision, as under `check_determinism` (in-memory log)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from engine.log.memory import MemoryLog
from engine.log.port import Topics
from events.run_events import RunCompleted, RunEventPayload, RunParked
from examples import nondeterministic
from examples.refund import app as refund_app
from tests.approvals_harness import Clock, Harness


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    event_log = MemoryLog(default_partitions=1)
    topics = Topics("release")
    await event_log.ensure_topics(topics, 1)
    harness = Harness(event_log, topics, timeout=10.0)
    try:
        yield harness
    finally:
        await harness.halt_all()


def _ends(cls: type) -> Callable[[list[RunEventPayload]], bool]:
    return lambda payloads: bool(payloads) and isinstance(payloads[-1], cls)


async def _refund(h: Harness, release: bool) -> list[RunEventPayload]:
    running = await h.start_worker(refund_app, Clock(), release_waiting=release)
    run_id = await h.publisher.start_run(
        "refund", {"order_id": "o-1", "amount": 2400}, requested_by="bench"
    )
    [raised] = await h.open_interrupts(run_id, 1)
    [live] = [r for _, runs in running.worker._table.by_partition() for r in runs.values()]
    assert (live.replayer is None) == release  # released while it waits, or kept
    await h.publisher.submit_decision(run_id, raised.interrupt_id, "approve", decided_by="alice")
    payloads = await h.wait_for(run_id, _ends(RunCompleted), "the refund completes")
    await running.halt()
    return payloads


async def test_a_released_run_resumes_as_a_kept_one_does(h: Harness) -> None:
    kept = await _refund(h, release=False)
    released = await _refund(h, release=True)

    assert [type(p) for p in released] == [type(p) for p in kept]
    assert isinstance(released[-1], RunCompleted)
    assert isinstance(kept[-1], RunCompleted)
    assert _without_ids(released[-1].output) == _without_ids(kept[-1].output)
    assert released[-1].output["status"] == "refunded"  # type: ignore[index,call-overload]


def _without_ids(output: object) -> object:
    """The output with the refund's id left out: it is made from the run's id."""
    assert isinstance(output, dict)
    refund = output["refund"]
    assert isinstance(refund, dict)
    return {**output, "refund": {k: v for k, v in refund.items() if k != "refund_id"}}


async def test_releasing_replays_so_a_non_deterministic_agent_parks(h: Harness) -> None:
    await h.start_worker(nondeterministic.app, Clock(), release_waiting=True)
    run_id = await h.publisher.start_run("lottery", {}, requested_by="alice")
    [raised] = await h.open_interrupts(run_id, 1)
    await h.publisher.submit_decision(run_id, raised.interrupt_id, "approve", decided_by="bob")

    payloads = await h.wait_for(run_id, _ends(RunParked), "parked at the first decision")

    parked = payloads[-1]
    assert isinstance(parked, RunParked)
    assert parked.reason == "non-determinism"
