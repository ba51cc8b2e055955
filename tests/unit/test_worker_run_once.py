"""A run id starts once, ever: a StartRun for a run that finished long ago (its state forgotten
by the dedup window) is a no-op when it is the same command sent again, and a dead letter
when it is another one; across restores too. Decisions for such a run are refused as for a
finished run, not as for an unknown one (in-memory log)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from engine.log.memory import MemoryLog
from engine.log.port import Outgoing, Topics
from events.codec import Codec
from events.commands import StartRun
from events.run_events import RunCompleted, RunStarted
from tests.approvals_harness import Clock, Harness
from tests.helpers import eventually
from tests.unit.test_worker_fails_closed import app


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    event_log = MemoryLog(default_partitions=1)
    topics = Topics("once")
    await event_log.ensure_topics(topics, 1)
    harness = Harness(event_log, topics, timeout=10.0)
    try:
        yield harness
    finally:
        await harness.halt_all()


def _start(run_id: str, command_id: str) -> StartRun:
    return StartRun(
        command_id=command_id,
        run_id=run_id,
        agent="echo",
        input={"text": run_id},
        requested_by="alice",
        issued_at_us=1,
    )


async def _send(h: Harness, command: StartRun) -> None:
    await h.log.publish([Outgoing(h.topics.commands, command.run_id, Codec().encode(command))])


def _done(payloads: list[object]) -> bool:
    return bool(payloads) and isinstance(payloads[-1], RunCompleted)


async def test_a_forgotten_run_never_starts_again(h: Harness) -> None:
    await h.start_worker(app, Clock(), keep_finished_runs=1)
    first = _start("old-run", str(uuid.uuid4()))
    await _send(h, first)
    await h.wait_for("old-run", _done, "the first run completes")
    for n in range(3):  # the window keeps one finished run: old-run is forgotten
        await _send(h, _start(f"later-{n}", str(uuid.uuid4())))
        await h.wait_for(f"later-{n}", _done, "a later run completes")

    await _send(h, first)  # the same command again: a no-op
    await _send(h, _start("old-run", "another-command"))  # another start: a dead letter
    letters = await eventually(h.dead_letters, message="the second start is dead-lettered")
    assert [letter.header("countersign.reason") for letter in letters] == [
        b"run old-run already exists"
    ]
    payloads = await h.payloads("old-run")
    assert sum(isinstance(p, RunStarted) for p in payloads) == 1

    # A worker that restores the partition knows it too.
    await h.halt_all()
    await h.start_worker(app, Clock(), keep_finished_runs=1)
    await _send(h, _start("old-run", "a-third-command"))
    await eventually(lambda: _count(h, 2), message="the third start is dead-lettered")
    decision = await h.publisher.submit_decision("old-run", "any", "approve", decided_by="bob")
    outcome = await h.outcome(decision, "old-run")
    assert outcome.status == "refused"
    assert "finished long ago" in outcome.reason
    assert sum(isinstance(p, RunStarted) for p in await h.payloads("old-run")) == 1


async def _count(h: Harness, letters: int) -> bool:
    return len(await h.dead_letters()) == letters
