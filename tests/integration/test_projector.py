"""The projector against a real PostgreSQL, fed by the in-memory event log.

Each test gets its own PostgreSQL schema, so tests sharing the session's database never see
each other's rows. The Kafka end-to-end run lives with the Kafka adapter's tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Literal

import pytest

from engine.log.memory import MemoryLog
from engine.log.port import Outgoing
from events.approval import ApprovalRequest
from events.codec import Codec
from events.envelope import GENESIS_HASH, EventEnvelope, hash_encoded
from events.run_events import (
    DecisionAccepted,
    DecisionRejected,
    InterruptEscalated,
    InterruptExpired,
    InterruptRaised,
    RunCancelled,
    RunCompleted,
    RunEventPayload,
    RunParked,
    RunStarted,
    ToolCallCompleted,
    ToolCallScheduled,
)
from projections import (
    Applied,
    BatchItem,
    LoggedEvent,
    ProjectionStore,
    Projector,
    Queries,
    StoreUnavailable,
)
from tests.helpers import eventually

pytestmark = pytest.mark.postgres

TOPIC = "t.runs"
GROUP = "projections"
CODEC = Codec()
T0 = 1_750_000_000_000_000
AUDITABLE = (
    InterruptRaised,
    DecisionAccepted,
    DecisionRejected,
    InterruptExpired,
    InterruptEscalated,
    RunParked,
    RunCancelled,
)

Ending = Literal["approved", "edited", "waiting", "expired", "cancelled"]
ENDINGS: tuple[Ending, ...] = ("approved", "edited", "waiting", "expired", "cancelled")


# -- building histories ----------------------------------------------------------------------------


class RunStream:
    """Encodes one run's events with contiguous seqs and the hash chain, as a worker would."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.seq = 0
        self.prev_hash = GENESIS_HASH

    def encode(self, payload: RunEventPayload, *, occurred_at_us: int | None = None) -> bytes:
        envelope = EventEnvelope(
            event_id=f"{self.run_id}/{self.seq}",
            run_id=self.run_id,
            seq=self.seq,
            occurred_at_us=T0 + self.seq * 1000 if occurred_at_us is None else occurred_at_us,
            agent="refund",
            agent_version="1",
            causation_id="",
            correlation_id=self.run_id,
            prev_hash=self.prev_hash,
            payload=payload,
        )
        data = CODEC.encode(envelope)
        self.seq += 1
        self.prev_hash = hash_encoded(data)
        return data


def refund_history(run_id: str, ending: Ending) -> list[RunEventPayload]:
    """The refund agent's events up to `ending`."""
    interrupt_id = f"{run_id}:approval"
    args = {"order_id": "A-17", "amount": 2400.0}
    request = ApprovalRequest(
        kind="tool",
        title="refund(order_id=A-17, amount=2400.0)",
        tool="refund",
        args=args,
        risk="high",
        amount=2400.0,
        approvers=("role:support-lead",),
        allowed=("approve", "edit", "reject"),
        policy="refund-limit@1",
    )
    events: list[RunEventPayload] = [
        RunStarted(
            input={"order_id": "A-17", "amount": 2400}, requested_by="u:ann", command_id="c"
        ),
        ToolCallScheduled(
            call=0,
            tool="lookup_order",
            args={"order_id": "A-17"},
            args_digest="d0",
            idempotency_key=f"{run_id}:0",
            idempotent=True,
        ),
        ToolCallCompleted(call=0, result={"paid": 2400.0}),
        InterruptRaised(call=1, interrupt_id=interrupt_id, request=request),
    ]
    if ending == "waiting":
        return events
    if ending == "cancelled":
        return [*events, RunCancelled(cancelled_by="u:ops", reason="customer withdrew")]
    executed = args
    if ending == "approved":
        events.append(
            DecisionAccepted(
                interrupt_id=interrupt_id, decision_id="d1", kind="approve", decided_by="u:lead"
            )
        )
    elif ending == "edited":
        executed = {"order_id": "A-17", "amount": 2000.0}
        events += [
            DecisionRejected(
                interrupt_id=interrupt_id,
                decision_id="d0",
                kind="approve",
                decided_by="u:ann",
                reason="the requester may not approve",
            ),
            DecisionAccepted(
                interrupt_id=interrupt_id,
                decision_id="d1",
                kind="edit",
                decided_by="u:lead",
                edited_args=executed,
                reason="partial refund",
            ),
        ]
    else:
        events += [
            InterruptEscalated(
                interrupt_id=interrupt_id, level=1, approvers=("role:cfo",), reason="late"
            ),
            InterruptExpired(interrupt_id=interrupt_id, action="reject"),
        ]
    if ending != "expired":
        events += [
            ToolCallScheduled(
                call=1,
                tool="refund",
                args=executed,
                args_digest="d1",
                idempotency_key=f"{run_id}:1",
                idempotent=False,
            ),
            ToolCallCompleted(call=1, result={"refund_id": f"rf-{run_id}"}),
        ]
    return [*events, RunCompleted(output={"status": ending})]


async def publish(log: MemoryLog, run_id: str, payloads: Sequence[RunEventPayload]) -> None:
    stream = RunStream(run_id)
    await log.publish([Outgoing(TOPIC, run_id, stream.encode(p)) for p in payloads])


async def publish_runs(log: MemoryLog, count: int) -> dict[str, list[RunEventPayload]]:
    """`count` runs cycling through every ending, interleaved in the log."""
    histories = {f"run-{i}": refund_history(f"run-{i}", ENDINGS[i % 5]) for i in range(count)}
    streams = {run_id: RunStream(run_id) for run_id in histories}
    longest = max(len(h) for h in histories.values())
    for position in range(longest):  # one event of each run in turn, like concurrent runs
        await log.publish(
            [
                Outgoing(TOPIC, run_id, streams[run_id].encode(history[position]))
                for run_id, history in histories.items()
                if position < len(history)
            ]
        )
    return histories


def auditable(histories: dict[str, list[RunEventPayload]]) -> int:
    return sum(isinstance(p, AUDITABLE) for h in histories.values() for p in h)


# -- fixtures and waiting --------------------------------------------------------------------------


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[ProjectionStore]:
    store = await ProjectionStore.connect(pg_url, schema=f"t_{uuid.uuid4().hex[:12]}")
    await store.migrate()
    await store.migrate()  # idempotent
    yield store
    await store.close()


@pytest.fixture
def log() -> MemoryLog:
    return MemoryLog(default_partitions=4)


async def end_offsets(log: MemoryLog) -> dict[int, int]:
    return {p: await log.end_offset(TOPIC, p) for p in range(await log.partition_count(TOPIC))}


async def caught_up(store: ProjectionStore, log: MemoryLog, name: str = "core") -> bool:
    ends = await end_offsets(log)
    stored = await store.positions(name, TOPIC)
    return all(stored.get(p, 0) == end for p, end in ends.items())


async def until_caught_up(store: ProjectionStore, log: MemoryLog, what: str = "") -> None:
    # Correctness, not speed: on a loaded machine folding a hundred runs again takes a while.
    await eventually(lambda: caught_up(store, log), timeout=90, message=what)


class Running:
    """A projector task that can be stopped cleanly or crashed (cancelled)."""

    def __init__(self, projector: Projector) -> None:
        self.projector = projector
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(projector.run(self.stop))

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 10)

    async def crash(self) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


def projector(log: MemoryLog, store: object, max_records: int = 1000) -> Projector:
    return Projector(log, store, TOPIC, GROUP, CODEC, max_records=max_records)  # type: ignore[arg-type]


# -- the read models -------------------------------------------------------------------------------


async def test_runs_audit_interrupts_and_timelines_are_projected(
    store: ProjectionStore, log: MemoryLog
) -> None:
    histories = await publish_runs(log, 5)  # one run per ending
    running = Running(projector(log, store, max_records=7))  # many small batches

    await until_caught_up(store, log, "projector caught up")
    await running.close()

    q = Queries(store)
    runs = {r.run_id: r for r in await q.list_runs()}
    assert {r: (row.status, row.open_interrupts) for r, row in runs.items()} == {
        "run-0": ("completed", 0),
        "run-1": ("completed", 0),
        "run-2": ("waiting", 1),
        "run-3": ("completed", 0),
        "run-4": ("cancelled", 0),
    }
    completed = runs["run-1"]
    assert (completed.requested_by, completed.agent, completed.output) == (
        "u:ann",
        "refund",
        {"status": "edited"},
    )
    assert completed.last_seq == len(histories["run-1"]) - 1
    assert completed.finished_at is not None
    assert [r.run_id for r in await q.list_runs(status="waiting")] == ["run-2"]
    assert await q.get_run("nope") is None

    assert [i.status for i in await q.interrupts("run-2")] == ["open"]
    assert [i.status for i in await q.interrupts("run-4")] == ["withdrawn"]
    (expired,) = await q.interrupts("run-3")
    assert (expired.status, expired.level, expired.approvers) == ("expired", 1, ("role:cfo",))

    audit = await q.audit(limit=1000)
    assert len(audit) == auditable(histories)
    assert Counter(a.action for a in audit) == {
        "interrupt_raised": 5,
        "decision_accepted": 2,
        "decision_refused": 1,
        "interrupt_escalated": 1,
        "interrupt_expired": 1,
        "run_cancelled": 1,
    }
    refused, edited = [a for a in await q.audit(run_id="run-1") if a.action.startswith("decision")]
    assert (refused.action, refused.actor, refused.reason) == (
        "decision_refused",
        "u:ann",
        "the requester may not approve",
    )
    assert (edited.kind, edited.actor, edited.tool, edited.amount) == (
        "edit",
        "u:lead",
        "refund",
        2400.0,
    )
    assert edited.diff == {
        "changed": {"amount": {"from": 2400.0, "to": 2000.0}},
        "added": {},
        "removed": {},
    }
    assert {a.run_id for a in await q.audit(approver="u:lead")} == {"run-0", "run-1"}
    assert len(await q.audit(tool="refund", limit=1000)) == len(audit) - 1  # not the cancel
    latest = audit[-1].at
    assert await q.audit(since=latest, limit=1000) == [a for a in audit if a.at >= latest]
    assert edited.to_json()["diff"] == edited.diff

    timeline = await q.run_timeline("run-1")
    assert [e.seq for e in timeline] == list(range(len(histories["run-1"])))
    assert [e.type for e in timeline] == [type(p).__name__ for p in histories["run-1"]]
    assert timeline[5].summary == "edit by u:lead accepted: partial refund"
    assert await q.run_timeline("nope") == []


async def test_the_events_index_keeps_bytes_hash_chain_and_log_position(
    store: ProjectionStore, log: MemoryLog
) -> None:
    await publish_runs(log, 3)
    running = Running(projector(log, store))
    await until_caught_up(store, log)
    await running.close()

    events = await Queries(store).events("run-0")

    assert [e.seq for e in events] == list(range(len(refund_history("run-0", "approved"))))
    assert events[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    for event in events:
        assert event.hash == hashlib.sha256(event.raw).hexdigest()
        assert CODEC.decode_event(event.raw).seq == event.seq
    partition = events[0].partition
    stored = [r async for r in log.read(TOPIC, partition, 0)]
    assert all(stored[e.offset].value == e.raw for e in events)
    assert events[3].payload["request"]["tool"] == "refund"  # type: ignore[index, call-overload]


# -- exactly once ----------------------------------------------------------------------------------


class HangingStore:
    """Applies `good` batches, then hangs forever on the next one: before writing it, or
    after it committed (so the projector dies with work done that it has not noticed)."""

    def __init__(self, store: ProjectionStore, good: int, *, commit_first: bool) -> None:
        self.store = store
        self.good = good
        self.commit_first = commit_first
        self.hung = asyncio.Event()
        self.applied = 0

    async def positions(self, projection: str, topic: str) -> dict[int, int]:
        return await self.store.positions(projection, topic)

    async def apply(
        self,
        projection: str,
        topic: str,
        items: Sequence[BatchItem],
        *,
        built: asyncio.Event | None = None,
    ) -> Applied:
        if self.applied >= self.good:
            if self.commit_first:
                await self.store.apply(projection, topic, items, built=built)
            self.hung.set()
            await asyncio.Event().wait()
        self.applied += 1
        return await self.store.apply(projection, topic, items, built=built)


@pytest.mark.parametrize("commit_first", [False, True], ids=["before-commit", "after-commit"])
async def test_a_crash_mid_stream_loses_and_doubles_nothing(
    store: ProjectionStore, log: MemoryLog, commit_first: bool
) -> None:
    histories = await publish_runs(log, 60)
    hanging = HangingStore(store, good=3, commit_first=commit_first)
    first = Running(projector(log, hanging, max_records=40))
    await asyncio.wait_for(hanging.hung.wait(), 10)

    await first.crash()

    assert not await caught_up(store, log)  # it really stopped mid-way
    second = Running(projector(log, store, max_records=40))
    await until_caught_up(store, log, "second projector caught up")
    await second.close()
    q = Queries(store)
    assert len(await q.audit(limit=10_000)) == auditable(histories)
    for run_id, history in histories.items():
        assert len(await q.run_timeline(run_id)) == len(history)
    statuses = Counter(r.status for r in await q.list_runs(limit=1000))
    assert statuses == {"completed": 36, "waiting": 12, "cancelled": 12}
    assert sum(r.open_interrupts for r in await q.list_runs(limit=1000)) == 12
    assert await q.errors() == []


async def test_crashes_at_arbitrary_points_lose_and_double_nothing(
    store: ProjectionStore, log: MemoryLog
) -> None:
    histories = await publish_runs(log, 100)
    rng = random.Random(7)
    for _ in range(5):  # killed wherever it happens to be: polling, folding, mid-transaction
        crashing = Running(projector(log, store, max_records=30))
        await asyncio.sleep(rng.uniform(0.0, 0.05))
        await crashing.crash()

    last = Running(projector(log, store, max_records=30))
    await until_caught_up(store, log, "caught up after crashes")
    await last.close()

    q = Queries(store)
    assert len(await q.audit(limit=10_000)) == auditable(histories)
    for run_id, history in histories.items():
        assert len(await q.run_timeline(run_id)) == len(history)
    assert sum(r.open_interrupts for r in await q.list_runs(limit=1000)) == 20
    assert await q.errors() == []


async def test_applying_a_batch_again_changes_nothing(
    store: ProjectionStore, log: MemoryLog
) -> None:
    await publish(log, "run-x", refund_history("run-x", "edited"))
    records = [r for p in range(4) async for r in log.read(TOPIC, p, 0)]
    items = [
        LoggedEvent(
            envelope=CODEC.decode_event(r.value),
            partition=r.partition,
            offset=r.offset,
            hash=hash_encoded(r.value),
            raw=r.value,
        )
        for r in records
    ]

    first = await store.apply("core", TOPIC, items)
    again = await store.apply("core", TOPIC, items)
    overlapping = await store.apply("core", TOPIC, items[-3:])

    assert (first.events, first.skipped) == (len(items), 0)
    assert (again.events, again.skipped) == (0, len(items))
    assert (overlapping.events, overlapping.skipped) == (0, 3)
    q = Queries(store)
    assert len(await q.audit(limit=100)) == 3
    run = await q.get_run("run-x")
    assert run is not None
    assert (run.status, run.last_seq) == ("completed", len(items) - 1)


async def test_two_projectors_in_one_group_share_the_partitions(
    store: ProjectionStore, log: MemoryLog
) -> None:
    histories = await publish_runs(log, 40)
    one = Running(projector(log, store, max_records=25))
    two = Running(projector(log, store, max_records=25))

    await until_caught_up(store, log, "group caught up")
    await one.close()
    await two.close()

    assert len(await Queries(store).audit(limit=10_000)) == auditable(histories)


# -- bad input never stops the projector -----------------------------------------------------------


async def test_an_undecodable_record_is_recorded_and_skipped(
    store: ProjectionStore, log: MemoryLog
) -> None:
    history = refund_history("run-g", "approved")
    stream = RunStream("run-g")
    await log.publish([Outgoing(TOPIC, "run-g", stream.encode(p)) for p in history[:3]])
    (garbage,) = await log.publish([Outgoing(TOPIC, "run-g", b"\x00junk")])
    await log.publish([Outgoing(TOPIC, "run-g", stream.encode(p)) for p in history[3:]])
    running = Running(projector(log, store))

    await until_caught_up(store, log)
    await running.close()

    q = Queries(store)
    (error,) = await q.errors()
    assert (error.projection, error.topic, error.partition, error.offset) == (
        "core",
        TOPIC,
        garbage.partition,
        garbage.offset,
    )
    assert error.raw == b"\x00junk"
    assert error.reason.startswith("undecodable:")
    run = await q.get_run("run-g")
    assert run is not None
    assert (run.status, run.last_seq) == ("completed", len(history) - 1)


async def test_values_postgresql_refuses_are_cleaned_or_recorded_never_stop_it(
    store: ProjectionStore, log: MemoryLog
) -> None:
    stream = RunStream("run-p")
    events = [
        stream.encode(
            RunStarted(input={"note": "nul \x00 here"}, requested_by="u", command_id="c")
        ),
        stream.encode(ToolCallCompleted(call=0, result={"key\x00": ["\x00"]})),
        stream.encode(ToolCallCompleted(call=1, result=None), occurred_at_us=2**62),  # year 146k
        stream.encode(RunCompleted(output={"ok": True})),
    ]
    await log.publish([Outgoing(TOPIC, "run-p", data) for data in events])
    running = Running(projector(log, store))

    await until_caught_up(store, log)
    await running.close()

    q = Queries(store)
    (error,) = await q.errors()
    assert (error.offset, error.raw) == (2, events[2])
    assert error.reason.startswith("unstorable:")
    run = await q.get_run("run-p")
    assert run is not None
    assert (run.status, run.input) == ("completed", {"note": "nul \ufffd here"})
    assert [e.seq for e in await q.run_timeline("run-p")] == [0, 1, 3]
    assert (await q.events("run-p"))[1].payload["result"] == {"key\ufffd": ["\ufffd"]}


async def test_a_duplicate_of_a_projected_event_is_recorded_not_applied(
    store: ProjectionStore, log: MemoryLog
) -> None:
    stream = RunStream("run-d")
    history = refund_history("run-d", "waiting")
    encoded = [stream.encode(p) for p in history]
    await log.publish([Outgoing(TOPIC, "run-d", data) for data in encoded])
    await log.publish([Outgoing(TOPIC, "run-d", encoded[3])])  # InterruptRaised again
    running = Running(projector(log, store))

    await until_caught_up(store, log)
    await running.close()

    q = Queries(store)
    (error,) = await q.errors()
    assert (error.offset, error.raw) == (len(history), encoded[3])
    assert error.reason.startswith("duplicate:")
    run = await q.get_run("run-d")
    assert run is not None
    assert (run.status, run.open_interrupts) == ("waiting", 1)
    assert len(await q.audit(run_id="run-d")) == 1


# -- PostgreSQL trouble and lag --------------------------------------------------------------------


class FlakyStore:
    """Refuses the first `failures` applies as if PostgreSQL were away."""

    def __init__(self, store: ProjectionStore, failures: int) -> None:
        self.store = store
        self.failures = failures
        self.calls = 0

    async def positions(self, projection: str, topic: str) -> dict[int, int]:
        return await self.store.positions(projection, topic)

    async def apply(
        self,
        projection: str,
        topic: str,
        items: Sequence[BatchItem],
        *,
        built: asyncio.Event | None = None,
    ) -> Applied:
        self.calls += 1
        if self.calls <= self.failures:
            raise StoreUnavailable("connection refused (simulated)")
        return await self.store.apply(projection, topic, items, built=built)


async def test_an_unavailable_store_is_retried_without_losing_the_batch(
    store: ProjectionStore, log: MemoryLog
) -> None:
    histories = await publish_runs(log, 5)
    flaky = FlakyStore(store, failures=3)
    running = Running(projector(log, flaky))

    await until_caught_up(store, log)
    await running.close()

    assert flaky.calls > 3
    assert len(await Queries(store).audit(limit=1000)) == auditable(histories)


async def test_lag_is_what_the_projection_has_not_applied_yet(
    store: ProjectionStore, log: MemoryLog
) -> None:
    await publish_runs(log, 10)
    idle = projector(log, store)

    assert await idle.lag() == await end_offsets(log)

    running = Running(idle)
    await until_caught_up(store, log)
    await running.close()
    assert await idle.lag() == dict.fromkeys(range(4), 0)
