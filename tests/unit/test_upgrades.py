"""Upgrades that never strand a run (in-memory log and projection store).

- The upgrade: a log written by today's release (runs finished, a run paused at its approval,
  a decision held for an interrupt not raised yet, a call in doubt after a worker stopped
  mid-call) is taken over by the next release (`tests/release2.py`: fields added to two
  events, `RunCompleted` renamed through an upcaster, an optional field on `SubmitDecision`).
  Its workers restore every run; decisions in today's format (another system not upgraded
  yet) and in the new one resume paused runs; the projection kept across the upgrade equals
  one rebuilt by the new release from offset 0, and `verify` passes.
- A rolling upgrade: a worker of today's release joins a group where the next release has
  been writing; it stands down (a newer release wrote what it cannot read: not corruption)
  and the newer worker carries every run on.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.agent.app import App
from engine.agent.context import RunContext
from engine.agent.policies import Always
from engine.core.executor import interrupt_id_for
from engine.core.gating import question_purpose
from engine.log.memory import MemoryLog
from engine.log.port import Topics, partition_for
from engine.runtime.worker import Worker, WorkerSettings
from events.codec import Codec
from events.json import Json, JsonObject
from events.run_events import DecisionHeld, InterruptRaised, RunCompleted
from projections.memory import MemoryStore
from projections.runner import Projector
from projections.verify import verify
from tests import release2
from tests.approvals_harness import Clock, Harness, services
from tests.helpers import eventually

PARTITIONS = 2
app = App("upgrade", directory={"alice": ["lead"]})
EFFECTS: list[str] = []
ARMED = {"send": False}


class ProcessDies(BaseException):
    """A worker stopping mid-call (no boundary catches it)."""


@app.tool(idempotent=True)
async def look(n: int) -> Json:
    return {"n": n}


@app.tool(policy=Always(risk="medium", approvers=("role:lead",)))
async def pay(amount: float) -> Json:
    EFFECTS.append(f"pay {amount}")
    return {"paid": amount}


@app.tool()
async def send(to: str) -> Json:
    if ARMED["send"]:
        ARMED["send"] = False
        raise ProcessDies("the worker stops while sending")
    EFFECTS.append(f"send {to}")
    return {"sent": to}


@app.agent("pay")
async def pay_agent(ctx: RunContext, input: JsonObject) -> Json:
    await ctx.tool("look", {"n": 1})
    if input.get("amount") is None:
        return {"looked": True}
    return (await ctx.tool("pay", {"amount": input["amount"]})).value


@app.agent("two-questions")
async def two_questions(ctx: RunContext, input: JsonObject) -> Json:
    first = await ctx.interrupt("first?", allowed=("respond",))
    second = await ctx.interrupt("second?", allowed=("respond",))
    return [first.response, second.response]


@app.agent("send")
async def send_agent(ctx: RunContext, input: JsonObject) -> Json:
    return (await ctx.tool("send", {"to": input["to"]})).value


def _done(payloads: list[object]) -> bool:
    return bool(payloads) and isinstance(payloads[-1], RunCompleted)


async def _projector(
    log: MemoryLog, store: MemoryStore, topics: Topics, codec: Codec
) -> tuple[asyncio.Task[None], asyncio.Event]:
    stop = asyncio.Event()
    projector = Projector(log, store, topics.runs, "upgrade.projector", codec, poll_timeout_s=0.05)
    return asyncio.create_task(projector.run(stop)), stop


async def _caught_up(log: MemoryLog, store: MemoryStore, topics: Topics) -> bool:
    positions = await store.positions("core", topics.runs)
    for partition in range(PARTITIONS):
        end = await log.end_offset(topics.runs, partition)
        if end and positions.get(partition, 0) < end:
            return False
    return True


@pytest.fixture
def clock() -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def log() -> MemoryLog:
    return MemoryLog(default_partitions=PARTITIONS)


async def test_the_next_release_takes_over_a_log_written_by_this_one(
    log: MemoryLog, tmp_path: Path, clock: datetime
) -> None:
    topics = Topics("upgrade")
    await log.ensure_topics(topics, PARTITIONS)
    today = Harness(log, topics, timeout=10.0)
    store = MemoryStore(clock=lambda: clock)
    projecting, stop_projecting = await _projector(log, store, topics, today.codec)

    # -- written by today's release --
    await today.start_worker(app, Clock())
    finished = await today.publisher.start_run("pay", {}, requested_by="bob")
    await today.wait_for(finished, _done, "a run finishes")
    paused = [
        await today.publisher.start_run("pay", {"amount": a}, requested_by="bob") for a in (5, 6)
    ]
    for run_id in paused:
        await today.open_interrupts(run_id, 1)
    asking = await today.publisher.start_run("two-questions", {}, requested_by="bob")
    await today.open_interrupts(asking, 1)
    second = interrupt_id_for(asking, 1, question_purpose(0))
    await today.publisher.submit_decision(
        asking, second, "respond", decided_by="carol", response="2nd"
    )
    await today.wait_for(asking, lambda p: any(isinstance(e, DecisionHeld) for e in p), "held")
    await today.halt_all()
    ARMED["send"] = True  # the next worker stops in the middle of the call
    doubtful = await today.publisher.start_run("send", {"to": "x@y"}, requested_by="bob")
    settings = WorkerSettings(group="upgrade.workers")
    dying = Worker(app, log, topics, today.codec, services=services(Clock()), settings=settings)
    died = asyncio.create_task(dying.run(asyncio.Event()))
    await eventually(died.done, message="the worker stops mid-call")
    assert isinstance(died.exception(), ProcessDies)
    await eventually(lambda: _caught_up(log, store, topics), message="projected so far")
    stop_projecting.set()
    await projecting

    # -- the next release takes over --
    codec = release2.release2_codec(tmp_path)
    upgraded = Harness(log, topics, timeout=10.0, codec=codec)
    projecting, stop_projecting = await _projector(log, store, topics, codec)
    await upgraded.start_worker(app, Clock())
    [in_doubt] = await upgraded.open_interrupts(doubtful, 1)
    assert in_doubt.request.kind == "in_doubt"
    await upgraded.publisher.submit_decision(
        doubtful, in_doubt.interrupt_id, "respond", decided_by="alice", response={"sent": "x@y"}
    )
    await upgraded.wait_for(doubtful, _done, "the call in doubt is settled")

    old_format, new_format = paused
    [raised] = await upgraded.open_interrupts(old_format, 1)
    await today.publisher.submit_decision(
        old_format, raised.interrupt_id, "approve", decided_by="alice"
    )
    [raised] = await upgraded.open_interrupts(new_format, 1)
    decision = release2.SubmitDecision(
        decision_id=str(uuid.uuid4()),
        run_id=new_format,
        interrupt_id=raised.interrupt_id,
        kind="approve",
        decided_by="alice",
        issued_at_us=1,
        channel="slack",
    )
    await upgraded.publisher.publish(decision)
    await upgraded.publisher.submit_decision(
        asking, _first(asking), "respond", decided_by="dan", response="1st"
    )
    for run_id in (*paused, asking):
        await upgraded.wait_for(run_id, _done, f"{run_id} resumes under the next release")
    assert EFFECTS.count("pay 5") == 1
    assert EFFECTS.count("pay 6") == 1
    assert "send x@y" not in EFFECTS  # answered "it ran": not run again
    last = (await upgraded.payloads(asking))[-1]
    assert isinstance(last, release2.RunFinished)  # today's RunCompleted, read as the new type
    assert last.output == ["1st", "2nd"]

    await eventually(lambda: _caught_up(log, store, topics), message="projected to the end")
    stop_projecting.set()
    await projecting
    await upgraded.halt_all()

    rebuilt = MemoryStore(clock=lambda: clock)
    projecting, stop_projecting = await _projector(log, rebuilt, topics, codec)
    await eventually(lambda: _caught_up(log, rebuilt, topics), message="rebuilt")
    stop_projecting.set()
    await projecting
    assert await rebuilt.fetch_runs(None, 100) == await store.fetch_runs(None, 100)
    for run_id in await rebuilt.fetch_run_ids():  # the same rows (ids count in apply order)
        [again] = (await rebuilt.fetch_audit_of([run_id])).values()
        [kept] = (await store.fetch_audit_of([run_id])).values()
        assert [replace(row, id=0) for row in again] == [replace(row, id=0) for row in kept]
    verdicts = await verify(log, topics.runs, rebuilt, codec)
    assert verdicts
    assert all(v.ok for v in verdicts), [v for v in verdicts if not v.ok]


def _first(run_id: str) -> str:
    return interrupt_id_for(run_id, 0, question_purpose(0))


async def test_a_worker_of_the_older_release_stands_down_in_a_rolling_upgrade(
    log: MemoryLog, tmp_path: Path
) -> None:
    topics = Topics("rolling")
    await log.ensure_topics(topics, PARTITIONS)
    newer = Harness(log, topics, timeout=10.0, codec=release2.release2_codec(tmp_path))
    older = Harness(log, topics, timeout=10.0)
    group = "rolling.workers"
    await newer.start_worker(app, Clock(), group=group)
    # Runs on every partition, so whichever the older worker is handed holds newer records
    # (run ids are random: six runs may all hash to one partition).
    runs: list[str] = []
    while len(runs) < 6 or {partition_for(r, PARTITIONS) for r in runs} != set(range(PARTITIONS)):
        runs.append(
            await newer.publisher.start_run("pay", {"amount": len(runs)}, requested_by="bob")
        )
        assert len(runs) < 64, "no run id hashed to some partition"
    for run_id in runs:
        await newer.open_interrupts(run_id, 1)

    old = await older.start_worker(app, Clock(), group=group)  # a rebalance hands it some
    await eventually(old.task.done, message="the older worker stands down")
    assert old.worker.stood_down is not None
    assert old.worker.stood_down.release == newer.codec.release
    await eventually(
        lambda: newer.running[-1].worker.owned_partitions == frozenset(range(PARTITIONS)),
        message="the newer worker owns every partition again",
    )
    for run_id in runs:
        [raised] = await newer.open_interrupts(run_id, 1)
        await newer.publisher.submit_decision(
            run_id, raised.interrupt_id, "approve", decided_by="alice"
        )
    for run_id in runs:
        payloads = await newer.wait_for(run_id, _done, f"{run_id} completes")
        assert sum(isinstance(p, InterruptRaised) for p in payloads) == 1
    await newer.halt_all()
    await older.halt_all()
