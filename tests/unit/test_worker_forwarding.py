"""Any client, any partitioner: a command that lands on another partition than its run's (a
client hashing keys its own way, a key-less record, any key at all) is forwarded to the run's
partition in the same commit as its offset, and handled there exactly once (in-memory log)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from engine.log.memory import MemoryLog
from engine.log.port import Outgoing, Topics, partition_for
from engine.log.routing import ROUTE_HEADER
from engine.runtime.step import FORWARDED_FROM
from events.codec import Codec
from events.commands import StartRun, SubmitDecision
from events.run_events import RunCompleted, RunStarted, ToolCallCompleted
from tests.approvals_harness import Clock, Harness
from tests.helpers import eventually
from tests.unit.test_worker_fails_closed import RAN, app

PARTITIONS = 4


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    event_log = MemoryLog(default_partitions=PARTITIONS)
    topics = Topics("forward")
    await event_log.ensure_topics(topics, PARTITIONS)
    harness = Harness(event_log, topics, timeout=10.0)
    try:
        yield harness
    finally:
        await harness.halt_all()


def _elsewhere(run_id: str) -> int:
    return (partition_for(run_id, PARTITIONS) + 1) % PARTITIONS


async def _publish(
    h: Harness, command: StartRun | SubmitDecision, partition: int, key: str
) -> None:
    value = Codec().encode(command)
    await h.log.publish([Outgoing(h.topics.commands, key, value, partition)])


def _start(run_id: str, agent: str, **input: object) -> StartRun:
    return StartRun(
        command_id=str(uuid.uuid4()),
        run_id=run_id,
        agent=agent,
        input=dict(input),  # type: ignore[arg-type]
        requested_by="alice",
        issued_at_us=1,
    )


async def test_a_run_started_and_decided_on_wrong_partitions_runs_once(h: Harness) -> None:
    await h.start_worker(app, Clock())
    run_id = "run-elsewhere"
    before = list(RAN)
    await _publish(h, _start(run_id, "pay", amount=5), _elsewhere(run_id), key="")  # key-less
    [raised] = await h.open_interrupts(run_id, 1)
    decision = SubmitDecision(
        decision_id="d-1",
        run_id=run_id,
        interrupt_id=raised.interrupt_id,
        kind="approve",
        decided_by="bob",
        issued_at_us=2,
    )
    await _publish(h, decision, _elsewhere(run_id), key="any key at all")
    await _publish(h, decision, partition_for(run_id, PARTITIONS), key=run_id)  # and again

    payloads = await h.wait_for(
        run_id, lambda p: bool(p) and isinstance(p[-1], RunCompleted), "completes"
    )
    assert sum(isinstance(p, RunStarted) for p in payloads) == 1
    assert sum(isinstance(p, ToolCallCompleted) for p in payloads) == 1
    assert RAN[len(before) :] == ["pay 5"]
    outcomes = [n for n in await h.notices(run_id) if getattr(n, "decision_id", "") == "d-1"]
    assert [o.status for o in outcomes] == ["accepted", "accepted"]  # once applied, twice told


async def test_the_forwarded_copy_carries_where_it_came_from(h: Harness) -> None:
    await h.start_worker(app, Clock())
    run_id = "run-tagged"
    source = _elsewhere(run_id)
    await _publish(h, _start(run_id, "echo", text="hi"), source, key="x")
    await h.wait_for(run_id, lambda p: bool(p) and isinstance(p[-1], RunCompleted), "completes")
    home = partition_for(run_id, PARTITIONS)
    [copy] = [r async for r in h.log.read(h.topics.commands, home, 0)]
    assert copy.header(FORWARDED_FROM) == f"{h.topics.commands}/{source}/0".encode()


async def test_a_route_header_can_only_restart_the_walk_never_skip_it(h: Harness) -> None:
    """A forged or stale route header on a command that lands where its run is not: the walk
    restarts and the command is handled once, where the run lives; one claiming a partition
    map newer than any recorded is refused."""
    await h.start_worker(app, Clock())
    run_id = "run-forged-route"
    value = Codec().encode(_start(run_id, "echo", text="hi"))
    settled = ((ROUTE_HEADER, b"settled:0:0"),)  # "handle it here": not where the run is
    await h.log.publish([Outgoing(h.topics.commands, run_id, value, _elsewhere(run_id), settled)])
    await h.wait_for(run_id, lambda p: bool(p) and isinstance(p[-1], RunCompleted), "completes")
    assert sum(isinstance(p, RunStarted) for p in await h.payloads(run_id)) == 1

    other = "run-newer-era"
    newer = ((ROUTE_HEADER, b"visit:7:0"),)
    value = Codec().encode(_start(other, "echo", text="hi"))
    await h.log.publish([Outgoing(h.topics.commands, other, value, _elsewhere(other), newer)])
    [letter] = await eventually(h.dead_letters, message="the forged era is dead-lettered")
    reason = letter.header("countersign.reason") or b""
    assert b"routed under partition map era 7" in reason
    assert await h.payloads(other) == []
