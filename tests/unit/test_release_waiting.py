"""A worker that releases waiting runs (`WorkerSettings.release_waiting`) holds no replayer
for a run that waits for a person, and the decision rebuilds it from the history: the run
goes on exactly as with the replayer kept. Rebuilding is replaying, so an agent that is not
deterministic is parked at its first decision, as under `check_determinism`. A released run's
history is packed into its events' bytes while it waits (`engine.core.packed`), after a
restore too, and unpacked when it moves on (in-memory log)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import pytest

from engine.core.live_run import LiveRun
from engine.log.memory import MemoryLog
from engine.log.port import Topics
from engine.privacy.keys import MemorySubjectKeys
from events.run_events import (
    DecisionHeld,
    RunCompleted,
    RunEventPayload,
    RunParked,
)
from examples import crm, nondeterministic
from examples.refund import app as refund_app
from tests.approvals_harness import Clock, Harness, Running
from tests.helpers import eventually


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


def _live(running: Running, run_id: str) -> LiveRun:
    [live] = [r for _, runs in running.worker._table.by_partition() for r in runs.values()]
    assert live.run_id == run_id
    return live


async def _refund(h: Harness, release: bool) -> list[RunEventPayload]:
    running = await h.start_worker(refund_app, Clock(), release_waiting=release)
    run_id = await h.publisher.start_run(
        "refund", {"order_id": "o-1", "amount": 2400}, requested_by="bench"
    )
    [raised] = await h.open_interrupts(run_id, 1)
    live = _live(running, run_id)
    assert (live.replayer is None) == release  # released while it waits, or kept
    assert live.packed == release  # its history held as its events' bytes, or decoded
    await h.publisher.submit_decision(run_id, raised.interrupt_id, "approve", decided_by="alice")
    payloads = await h.wait_for(run_id, _ends(RunCompleted), "the refund completes")
    await running.halt()
    return payloads


async def test_a_released_run_resumes_as_a_kept_one_does(h: Harness) -> None:
    kept = await _refund(h, release=False)
    released = await _refund(h, release=True)

    assert _same_but_ids(released) == _same_but_ids(kept)
    assert isinstance(released[-1], RunCompleted)
    assert released[-1].output["status"] == "refunded"  # type: ignore[index,call-overload]


def _same_but_ids(payloads: list[RunEventPayload]) -> list[str]:
    """The payloads with every uuid (the run's, its commands', and those made from them)
    and every digest (they cover the run's id) written alike: two runs of the same input
    then read the same."""
    return [_UUID.sub("<id>", repr(payload)) for payload in payloads]


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{64}")


async def test_a_restored_waiting_run_is_packed_and_resumes(h: Harness) -> None:
    first = await h.start_worker(refund_app, Clock(), release_waiting=True)
    run_id = await h.publisher.start_run(
        "refund", {"order_id": "o-2", "amount": 2400}, requested_by="bench"
    )
    [raised] = await h.open_interrupts(run_id, 1)
    await first.halt()

    second = await h.start_worker(refund_app, Clock(), release_waiting=True)
    await eventually(
        lambda: second.worker._table.live_count() == 1 and _live(second, run_id).packed,
        message="the restored waiting run is packed",
    )
    await h.publisher.submit_decision(run_id, raised.interrupt_id, "approve", decided_by="alice")
    payloads = await h.wait_for(run_id, _ends(RunCompleted), "the refund completes")
    completed = payloads[-1]
    assert isinstance(completed, RunCompleted)
    assert completed.output["status"] == "refunded"  # type: ignore[index,call-overload]


@pytest.mark.parametrize("release", [False, True])
async def test_an_event_that_does_not_move_the_run_leaves_it_packed(
    h: Harness, release: bool
) -> None:
    running = await h.start_worker(refund_app, Clock(), release_waiting=release)
    run_id = await h.publisher.start_run(
        "refund", {"order_id": "o-3", "amount": 2400}, requested_by="bench"
    )
    [raised] = await h.open_interrupts(run_id, 1)
    await h.publisher.submit_decision(run_id, "not-raised-yet", "approve", decided_by="alice")
    await h.wait_for(run_id, _ends(DecisionHeld), "the early decision is held")

    live = _live(running, run_id)
    assert live.packed == release  # unpacked to record it, packed again at the step's end
    assert isinstance(live.recorded[-1].payload, DecisionHeld)
    await h.publisher.submit_decision(run_id, raised.interrupt_id, "approve", decided_by="alice")
    await h.wait_for(run_id, _completed, "the refund completes")  # then the held one is refused


def _completed(payloads: list[RunEventPayload]) -> bool:
    return any(isinstance(payload, RunCompleted) for payload in payloads)


async def test_a_run_with_sealed_values_is_released_not_packed_and_resumes(h: Harness) -> None:
    keys = MemorySubjectKeys()
    running = await h.start_worker(crm.app, Clock(), release_waiting=True, subject_keys=keys)
    run_id = await h.publisher.start_run("voucher", {"customer_id": "cust-7"}, requested_by="bob")
    await h.open_interrupts(run_id, 1)

    live = _live(running, run_id)
    assert live.replayer is None
    assert not live.packed  # the log's bytes hold its values sealed, the run holds them in clear
    assert "Ada Lovelace" in repr(live.history)
    await running.halt()
    await h.start_worker(crm.app, Clock(), release_waiting=True, subject_keys=keys)  # restores
    [raised] = await h.open_interrupts(run_id, 1)
    await h.publisher.submit_decision(run_id, raised.interrupt_id, "approve", decided_by="alice")

    payloads = await h.wait_for(run_id, _ends(RunCompleted), "the voucher is sent")
    completed = payloads[-1]
    assert isinstance(completed, RunCompleted)
    assert completed.output == {"voucher": "ok", "reason": ""}


async def test_releasing_replays_so_a_non_deterministic_agent_parks(h: Harness) -> None:
    await h.start_worker(nondeterministic.app, Clock(), release_waiting=True)
    run_id = await h.publisher.start_run("lottery", {}, requested_by="alice")
    [raised] = await h.open_interrupts(run_id, 1)
    await h.publisher.submit_decision(run_id, raised.interrupt_id, "approve", decided_by="bob")

    payloads = await h.wait_for(run_id, _ends(RunParked), "parked at the first decision")

    parked = payloads[-1]
    assert isinstance(parked, RunParked)
    assert parked.reason == "non-determinism"
