"""The worker's restore checkpoint, partition loss and unknown commit outcomes, on the
in-memory log (no server): the same code paths the Kafka fault suite drives for real."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from engine.agent.app import App
from engine.agent.context import RunContext
from engine.errors import TransientLogError
from engine.log.memory import MemoryLog
from engine.log.port import AssignmentListener, GroupMember, Outgoing, Position, Topics
from engine.runtime import committing, driving, rebalance, worker
from engine.runtime.restore import latest_checkpoint
from engine.runtime.worker import Worker, WorkerSettings
from events.json import Json, JsonObject
from events.run_events import (
    DecisionAccepted,
    RunCompleted,
    RunStarted,
    ToolCallCompleted,
    ToolCallScheduled,
)
from tests.approvals_harness import Clock, Harness, services
from tests.helpers import eventually

app = App("restore-test")
GATE: dict[str, asyncio.Event] = {}
ON_TOOL: list[Any] = []


@app.tool(idempotent=True)
async def lookup(n: int) -> Json:
    return {"n": n}


@app.tool()
async def book(n: int) -> Json:
    for hook in ON_TOOL:
        await hook()
    return {"booked": n}


@app.agent("job", version="1")
async def job(ctx: RunContext, input: JsonObject) -> Json:
    await ctx.tool("lookup", {"n": input["n"]})
    if input.get("ask"):
        answer = await ctx.interrupt("go on?", allowed=("respond",))
        return {"answer": answer.response}
    if input.get("book"):
        return {"booked": (await ctx.tool("book", {"n": input["n"]})).value}
    return {"done": input["n"]}


class _Recorder:
    """Stands in for the worker's module loggers: the tests read what it said. (structlog's
    `capture_logs` misses loggers cached by an earlier `configure_logging` in the session.)"""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def __getattr__(self, level: str) -> Any:
        def record(event: str, **kw: Any) -> None:
            self.lines.append({"event": event, "log_level": level, **kw})

        return record

    def bind(self, **kw: Any) -> _Recorder:
        return self


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    recorder = _Recorder()
    for module in (worker, rebalance, committing, driving):
        monkeypatch.setattr(module, "log", recorder)
    return recorder.lines


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    event_log = MemoryLog(default_partitions=1)
    topics = Topics("restore")
    await event_log.ensure_topics(topics, 1)
    h = Harness(event_log, topics, timeout=10.0)
    try:
        yield h
    finally:
        ON_TOOL.clear()
        await h.halt_all()


async def _worker(
    h: Harness, keep: int, event_log: Any = None, grace_s: float = 5.0, wait: bool = True
) -> tuple[Worker, Any]:
    settings = WorkerSettings(
        group=f"{h.topics.prefix}.workers",
        poll_timeout_s=0.02,
        keep_finished_runs=keep,
        revoke_grace_s=grace_s,
    )
    worker = Worker(
        app, event_log or h.log, h.topics, h.codec, services=services(Clock()), settings=settings
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    if wait:
        await eventually(lambda: worker.owned_partitions, message="the worker owns its partition")
    return worker, (stop, task)


async def _halt(handle: Any) -> None:
    stop, task = handle
    stop.set()
    await asyncio.wait_for(task, 10)


async def _finished(h: Harness, run_id: str) -> bool:
    return any(isinstance(p, RunCompleted) for p in await h.payloads(run_id))


async def _offset_of_start(h: Harness, run_id: str) -> int:
    async for record in h.log.read(h.topics.runs, 0, 0):
        envelope = h.codec.decode_event(record.value)
        if envelope.run_id == run_id and isinstance(envelope.payload, RunStarted):
            return record.offset
    raise AssertionError(f"no RunStarted for {run_id}")


async def test_a_restore_reads_from_the_checkpoint_and_brings_back_what_was_kept(
    harness: Harness,
    logs: list[dict[str, Any]],
) -> None:
    _, handle = await _worker(harness, keep=2)
    pub = harness.publisher
    done: list[str] = []
    waiting: list[str] = []
    for n in range(11):  # one batch each: 0-4 finish, 5 waits, 6-9 finish, 10 waits
        ask = n in (5, 10)
        run_id = await pub.start_run("job", {"n": n, "ask": ask}, requested_by="t")
        if ask:
            waiting.append(run_id)
            [asked] = await harness.open_interrupts(run_id, 1)
        else:
            done.append(run_id)
            await eventually(lambda r=run_id: _finished(harness, r), message=f"{run_id} done")
    await _halt(handle)

    checkpoint = await latest_checkpoint(harness.log, harness.topics, 0, harness.codec)
    assert checkpoint is not None
    assert checkpoint.restore_from == await _offset_of_start(harness, waiting[0])
    assert checkpoint.consumed == await harness.log.end_offset(harness.topics.commands, 0)

    logs.clear()
    _, handle = await _worker(harness, keep=2)
    [restored] = [e for e in logs if e["event"] == "partition_restored"]
    assert restored["restore_from"] == checkpoint.restore_from
    assert (restored["live_runs"], restored["finished_runs"]) == (2, 2)
    end = await harness.log.end_offset(harness.topics.runs, 0)
    assert restored["events"] == end - checkpoint.restore_from  # runs 0..4 are not read

    # The restored runs go on, and a StartRun sent again for a kept finished run is a no-op.
    await pub.submit_decision(waiting[-1], asked.interrupt_id, "respond", decided_by="p")
    await eventually(lambda: _finished(harness, waiting[-1]), message="the answered run ends")
    before = await harness.payloads(done[-1])
    await pub.start_run("job", {"n": 9}, requested_by="t", run_id=done[-1])
    await eventually(lambda: _finished(harness, waiting[-1]))
    await _halt(handle)
    assert await harness.payloads(done[-1]) == before


async def test_the_checkpoints_topic_holds_one_small_record_per_commit_that_changes_it(
    harness: Harness,
) -> None:
    _, handle = await _worker(harness, keep=0)
    for n in (1, 2):
        run_id = await harness.publisher.start_run("job", {"n": n}, requested_by="t")
        await eventually(lambda r=run_id: _finished(harness, r))
    await _halt(handle)

    records = [r async for r in harness.log.read(harness.topics.checkpoints, 0, 0)]
    assert len(records) == 3  # the crash-loop guard's marker, then one per run
    marker = harness.codec.decode_checkpoint(records[0].value)
    assert (marker.attempt_at, marker.attempts) == (0, 1)  # the first batch after a restore
    assert all(r.key == "0" and len(r.value) < 80 for r in records)
    # Written before its own records got offsets: it says where the step's records begin.
    last = harness.codec.decode_checkpoint(records[-1].value)
    assert last.restore_from == await _offset_of_start(harness, run_id)


async def test_a_revocation_lets_the_step_in_flight_commit_then_drops_the_runs(
    harness: Harness,
) -> None:
    worker, handle = await _worker(harness, keep=10)
    revoked: list[asyncio.Task[None]] = []

    async def revoke_meanwhile() -> None:  # as Kafka does, from the background
        revoked.append(asyncio.create_task(worker.on_revoked(frozenset({0}))))
        await asyncio.sleep(0.05)
        assert not revoked[0].done()  # it waits for this step

    ON_TOOL.append(revoke_meanwhile)
    run_id = await harness.publisher.start_run("job", {"n": 1, "book": True}, requested_by="t")
    await eventually(lambda: revoked and revoked[0].done(), message="revocation done")
    await _halt(handle)

    payloads = await harness.payloads(run_id)
    assert isinstance(payloads[-1], RunCompleted)  # the step committed before the release
    assert worker.owned_partitions == frozenset()


async def test_a_step_still_running_after_the_grace_appends_nothing_more(
    harness: Harness,
    logs: list[dict[str, Any]],
) -> None:
    worker, handle = await _worker(harness, keep=10, grace_s=0.1)

    async def revoke() -> None:  # the tool outlives the revocation's grace
        await worker.on_revoked(frozenset({0}))

    ON_TOOL.append(revoke)
    run_id = await harness.publisher.start_run("job", {"n": 1, "book": True}, requested_by="t")
    await eventually(
        lambda: any(e["event"] == "partition_lost_mid_step" for e in logs),
        message="the step is abandoned",
    )
    await _halt(handle)

    assert any(e["event"] == "step_outlived_revocation" for e in logs)
    payloads = await harness.payloads(run_id)
    assert isinstance(payloads[-1], ToolCallScheduled)  # committed before the tool ran
    assert payloads[-1].tool == "book"
    assert not any(isinstance(p, ToolCallCompleted) and p.call == 1 for p in payloads)


class _FailingCommits:
    """A log whose members report one chosen commit as failed: before writing anything, or
    after it went through (as a commit whose answer timed out on its way back)."""

    def __init__(self, inner: MemoryLog, fail_commit_no: int, went_through: bool) -> None:
        self._inner = inner
        self._fail = fail_commit_no
        self._went_through = went_through
        self.commits = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def member(self, group: str, topic: str, listener: AssignmentListener) -> GroupMember:
        inner = self._inner.member(group, topic, listener)
        outer = self

        class Member:
            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

            @property
            def assigned(self) -> frozenset[int]:
                return inner.assigned

            async def commit(
                self, partition: int, records: Sequence[Outgoing], consumed: int | None
            ) -> list[Position]:
                outer.commits += 1
                if outer.commits == outer._fail and not outer._went_through:
                    raise TransientLogError("commit failed (nothing of it written)")
                positions = await inner.commit(partition, records, consumed)
                if outer.commits == outer._fail:
                    raise TransientLogError("commit timed out (it went through)")
                return positions

        return Member()  # type: ignore[return-value]


@pytest.mark.parametrize("went_through", [True, False], ids=["went-through", "not-written"])
@pytest.mark.parametrize(
    "fail_commit_no",
    [1, 2, 3],  # the first is the crash-loop guard's marker before the first batch
    ids=["guard-marker", "start-step", "decision-step"],
)
async def test_a_failed_commit_is_retried_without_tearing_or_repeating_the_step(
    harness: Harness, logs: list[dict[str, Any]], fail_commit_no: int, went_through: bool
) -> None:
    flaky = _FailingCommits(harness.log, fail_commit_no, went_through)  # type: ignore[arg-type]
    _, handle = await _worker(harness, keep=10, event_log=flaky)
    run_id = await harness.publisher.start_run("job", {"n": 1, "ask": True}, requested_by="t")
    [asked] = await harness.open_interrupts(run_id, 1)
    decision = await harness.publisher.submit_decision(
        run_id, asked.interrupt_id, "respond", decided_by="p", response="yes"
    )
    await eventually(lambda: _finished(harness, run_id))
    await _halt(handle)

    assert any(e["event"] == "commit_failed" for e in logs)
    # A marker that went through has no commands position to compare: its batch is re-read.
    went_and_told = went_through and fail_commit_no > 1
    assert any(e["event"] == "commit_went_through" for e in logs) is went_and_told
    events = await harness.events(run_id)
    assert [e.seq for e in events] == list(range(len(events)))
    assert [type(e.payload).__name__ for e in events].count("RunStarted") == 1
    accepted = [e.payload for e in events if isinstance(e.payload, DecisionAccepted)]
    assert [p.decision_id for p in accepted] == [decision]
    outcomes = [
        n for n in await harness.notices(run_id) if getattr(n, "decision_id", "") == decision
    ]
    assert len(outcomes) == 1


class _AwayLog:
    """A log whose reads of the runs topic fail while `away` is set (a broker restart)."""

    def __init__(self, inner: MemoryLog, runs_topic: str) -> None:
        self._inner = inner
        self._runs = runs_topic
        self.away = True
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def read(self, topic: str, partition: int, start: int, *, follow: bool = False) -> Any:
        if topic == self._runs and self.away:
            self.refused += 1
            raise TransientLogError("the log is away")
        return self._inner.read(topic, partition, start, follow=follow)


async def test_a_restore_that_fails_is_retried_and_no_command_is_skipped(
    harness: Harness,
    logs: list[dict[str, Any]],
) -> None:
    away = _AwayLog(harness.log, harness.topics.runs)  # type: ignore[arg-type]
    run_id = await harness.publisher.start_run("job", {"n": 1}, requested_by="t")
    _, handle = await _worker(harness, keep=10, event_log=away, wait=False)
    await eventually(lambda: away.refused >= 2, message="restores refused while away")
    later = await harness.publisher.start_run("job", {"n": 2}, requested_by="t")
    away.away = False
    await eventually(lambda: _finished(harness, run_id), message="the first run ends")
    await eventually(lambda: _finished(harness, later), message="the second run ends")
    await _halt(handle)

    assert any(e["event"] == "restore_deferred" for e in logs)
    for rid in (run_id, later):
        events = await harness.events(rid)
        assert [e.seq for e in events] == list(range(len(events)))
        assert sum(isinstance(e.payload, RunStarted) for e in events) == 1
