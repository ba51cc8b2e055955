"""The crash-loop guard: a command that stops the worker handling it (not an exception the
intake can catch: the process dies) is dead-lettered unhandled after `crash_limit` workers
stopped on it, and the partition moves on; a batch is handled one command at a time after a
stop, so the marker names the command itself (pure plan + in-memory log, where a tool raising a
BaseException stands for a process that dies mid-step)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from engine.agent.app import App
from engine.agent.context import RunContext
from engine.core.crash_guard import BatchPlan, plan_batch
from engine.log.memory import MemoryLog
from engine.log.port import Topics
from engine.runtime.worker import Worker, WorkerSettings
from events.checkpoints import Checkpoint
from events.json import Json, JsonObject
from events.run_events import RunCompleted
from tests.approvals_harness import Clock, Harness
from tests.helpers import eventually

app = App("crashing")
RAN: list[str] = []


class ProcessDies(BaseException):
    """Not an Exception: no boundary of the worker catches it, as none catches a process
    that dies (SystemExit would stop the test runner itself)."""


@app.tool(idempotent=True)
async def work(text: str) -> Json:
    if text == "die":
        raise ProcessDies("the process dies here")
    RAN.append(text)
    return text


@app.agent("work")
async def work_agent(ctx: RunContext, input: JsonObject) -> Json:
    return (await ctx.tool("work", {"text": input["text"]})).value


def test_the_plan_marks_the_first_batch_then_handles_a_stopped_one_carefully() -> None:
    assert plan_batch(None, 0, fresh=True, limit=3) == BatchPlan(1)
    assert plan_batch(None, 9, fresh=False, limit=3) is None
    marked = Checkpoint(restore_from=0, consumed=5, attempt_at=5, attempts=1)
    assert plan_batch(marked, 5, fresh=True, limit=3) == BatchPlan(2, careful=True)
    stopped_thrice = Checkpoint(restore_from=0, consumed=5, attempt_at=5, attempts=3)
    assert plan_batch(stopped_thrice, 5, fresh=True, limit=3) == BatchPlan(
        3, careful=True, poisoned=True
    )
    assert plan_batch(marked, 6, fresh=True, limit=3) == BatchPlan(1)  # not where it stopped


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    event_log = MemoryLog(default_partitions=1)
    topics = Topics("crash")
    await event_log.ensure_topics(topics, 1)
    harness = Harness(event_log, topics, timeout=10.0)
    try:
        yield harness
    finally:
        await harness.halt_all()


async def _a_worker_dies(h: Harness) -> None:
    worker = Worker(app, h.log, h.topics, h.codec, settings=WorkerSettings(group="crash.workers"))
    task = asyncio.create_task(worker.run(asyncio.Event()))
    await eventually(task.done, message="the worker stops on the deadly command")
    assert isinstance(task.exception(), ProcessDies)


async def test_a_command_that_stops_three_workers_is_dead_lettered_unhandled(h: Harness) -> None:
    before = await h.publisher.start_run("work", {"text": "before"}, requested_by="a")
    deadly = await h.publisher.start_run("work", {"text": "die"}, requested_by="a")
    after = await h.publisher.start_run("work", {"text": "after"}, requested_by="a")

    for _ in range(3):  # the batch, then the deadly command alone, twice
        await _a_worker_dies(h)

    await h.start_worker(app, Clock(), group="crash.workers")
    for run_id in (before, after):
        await h.wait_for(run_id, lambda p: bool(p) and isinstance(p[-1], RunCompleted), run_id)
    [letter] = await eventually(h.dead_letters, message="the deadly command is dead-lettered")
    assert b"stopped a worker 3 times" in (letter.header("countersign.reason") or b"")
    assert await h.payloads(deadly) == []
    for run_id in (before, after):  # idempotent tools may have run again after a stop
        completed = [p for p in await h.payloads(run_id) if isinstance(p, RunCompleted)]
        assert len(completed) == 1
