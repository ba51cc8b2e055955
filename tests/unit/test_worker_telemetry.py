"""A worker on the in-memory log reports its commands, commits, runs and readiness, and
carries a command's trace context onto the events and notices it causes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from consumers.publisher import CommandPublisher
from engine.core.trace_context import trace_context
from engine.log.memory import MemoryLog
from engine.log.port import Outgoing, Record, Topics
from engine.runtime.worker import Worker
from engine.telemetry import Outcome, ProjectorGauges, Telemetry, WorkerGauges
from events.codec import Codec
from events.commands import StartRun
from events.notices import ApprovalRequested
from examples.refund import app
from tests.helpers import eventually

TOPICS = Topics("unit")
CODEC = Codec()
PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@dataclass
class Recorded:
    """The `Metrics` port, keeping what it is told."""

    outcomes: list[Outcome] = field(default_factory=list)
    continued: list[float] = field(default_factory=list)
    commits: list[float] = field(default_factory=list)
    restores: list[tuple[float, int]] = field(default_factory=list)
    gauges: list[WorkerGauges] = field(default_factory=list)
    dead: int = 0

    def command(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def decision_continued(self, seconds: float) -> None:
        self.continued.append(seconds)

    def committed(self, seconds: float) -> None:
        self.commits.append(seconds)

    def dead_lettered(self, count: int) -> None:
        self.dead += count

    def step_abandoned(self) -> None:
        pass

    def log_unavailable(self) -> None:
        pass

    def restored(self, seconds: float, events: int) -> None:
        self.restores.append((seconds, events))

    def projected(self, events: int, errors: int, seconds: float) -> None:
        pass

    def worker_gauges(self, gauges: WorkerGauges) -> None:
        self.gauges.append(gauges)

    def projector_gauges(self, gauges: ProjectorGauges) -> None:
        pass


@pytest.fixture
async def running() -> AsyncIterator[tuple[MemoryLog, Worker, Recorded]]:
    log = MemoryLog()
    await log.ensure_topics(TOPICS, 2)
    recorded = Recorded()
    worker = Worker(app, log, TOPICS, CODEC, telemetry=Telemetry(recorded))
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield log, worker, recorded
    finally:
        stop.set()
        await task


async def _records(log: MemoryLog, topic: str, run_id: str) -> list[Record]:
    found = []
    for partition in range(2):
        async for record in log.read(topic, partition, 0):
            if record.key == run_id:
                found.append(record)
    return found


async def _asked(log: MemoryLog, run_id: str) -> ApprovalRequested:
    async def find() -> ApprovalRequested | None:
        for record in await _records(log, TOPICS.approvals, run_id):
            notice = CODEC.decode_notice(record.value)
            if isinstance(notice, ApprovalRequested):
                return notice
        return None

    return await eventually(find, timeout=5)


async def _start_with_trace(log: MemoryLog, run_id: str) -> None:
    start = StartRun(
        command_id=str(uuid.uuid4()),
        run_id=run_id,
        agent="refund",
        input={"order_id": "A-9", "amount": 900},
        requested_by="bob",
        issued_at_us=0,
    )
    value = CODEC.encode(start)
    headers = (CODEC.schema_header(value), ("traceparent", PARENT.encode()))
    await log.publish([Outgoing(TOPICS.commands, run_id, value, headers=headers)])


async def test_a_commands_trace_context_reaches_every_event_and_notice_it_causes(
    running: tuple[MemoryLog, Worker, Recorded],
) -> None:
    log, _, _ = running
    run_id = str(uuid.uuid4())
    await _start_with_trace(log, run_id)
    await _asked(log, run_id)
    caused = [
        *await _records(log, TOPICS.runs, run_id),
        *await _records(log, TOPICS.approvals, run_id),
    ]
    assert len(caused) >= 3
    contexts = [trace_context(r.headers) for r in caused]
    assert all(c is not None and c.traceparent == PARENT for c in contexts), contexts


async def test_a_command_without_a_trace_starts_one_that_its_decision_does_not_join(
    running: tuple[MemoryLog, Worker, Recorded],
) -> None:
    log, _, _ = running
    publisher = CommandPublisher(log, TOPICS, CODEC)
    run_id = await publisher.start_run(
        "refund", {"order_id": "A-2", "amount": 900}, requested_by="b"
    )
    asked = await _asked(log, run_id)
    started = {trace_context(r.headers) for r in await _records(log, TOPICS.runs, run_id)}
    assert len(started) == 1
    assert None not in started
    await publisher.submit_decision(run_id, asked.interrupt_id, "approve", decided_by="alice")

    async def two_traces() -> set[str] | None:
        records = await _records(log, TOPICS.runs, run_id)
        traces = {c.trace_id for r in records if (c := trace_context(r.headers)) is not None}
        return traces if len(traces) == 2 else None

    await eventually(two_traces, timeout=5)  # the decision's effects: a trace of its own


async def test_outcomes_commits_latency_runs_and_readiness_are_reported(
    running: tuple[MemoryLog, Worker, Recorded],
) -> None:
    log, worker, recorded = running
    publisher = CommandPublisher(log, TOPICS, CODEC)

    async def ready() -> bool:
        return (await worker.watch.ready()).ok

    await eventually(ready, timeout=5)
    assert worker.watch.live().ok
    assert len(recorded.restores) == 2  # both partitions restored (empty)
    run_id = await publisher.start_run(
        "refund", {"order_id": "A-3", "amount": 900}, requested_by="b"
    )
    asked = await _asked(log, run_id)
    await worker.watch.sample()
    assert recorded.gauges[-1].runs.waiting == 1
    assert recorded.gauges[-1].runs.live == 1
    assert not recorded.gauges[-1].stood_down
    await publisher.submit_decision(run_id, "not-raised-yet", "approve", decided_by="alice")
    await publisher.submit_decision(run_id, asked.interrupt_id, "approve", decided_by="alice")
    await publisher.submit_decision(run_id, asked.interrupt_id, "reject", decided_by="carol")

    async def counted() -> bool:
        return {"accepted", "refused", "held"} <= set(recorded.outcomes)

    await eventually(counted, timeout=5)
    assert recorded.outcomes.count("applied") == 1  # the start
    assert len(recorded.continued) == 1
    assert recorded.continued[0] >= 0
    assert recorded.commits
    assert all(s >= 0 for s in recorded.commits)
    await worker.watch.sample()
    runs = recorded.gauges[-1].runs
    assert (runs.live, runs.waiting) == (0, 0)
    assert all(lag.records <= 1 for lag in recorded.gauges[-1].lag)  # a marker at most


async def test_a_stopped_worker_is_not_ready() -> None:
    log = MemoryLog()
    await log.ensure_topics(TOPICS, 1)
    worker = Worker(app, log, TOPICS, CODEC)
    assert not (await worker.watch.ready()).ok  # not in its group yet
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))

    async def ready() -> bool:
        return (await worker.watch.ready()).ok

    await eventually(ready, timeout=5)
    stop.set()
    await task
    verdict = await worker.watch.ready()
    assert not verdict.ok
    assert "not in its group" in verdict.reasons[0]


async def test_a_dead_letter_is_counted_and_keeps_the_trace_of_the_command(
    running: tuple[MemoryLog, Worker, Recorded],
) -> None:
    log, _, recorded = running
    junk = Outgoing(
        TOPICS.commands, "k", b"\x00not avro", headers=(("traceparent", PARENT.encode()),)
    )
    await log.publish([junk])

    async def dead() -> list[Record]:
        found = []
        for partition in range(2):
            found.extend([r async for r in log.read(TOPICS.dlq, partition, 0)])
        return found

    (letter,) = await eventually(dead, timeout=5)
    context = trace_context(letter.headers)
    assert context is not None
    assert context.traceparent == PARENT
    assert letter.value == junk.value

    async def counted() -> bool:
        return recorded.dead == 1 and "dead_lettered" in recorded.outcomes

    await eventually(counted, timeout=5)
