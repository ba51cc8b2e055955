"""The projection store's contract: the PostgreSQL store and its in-memory twin pass these.

What a store promises the projector, the query API and verification: a batch is applied once
(skipped below the stored positions), runs go on from their stored state, unusable records
and duplicates are kept as errors, values the database cannot hold are cleaned or refuse the
whole batch, reads filter and order as documented, and positions are bound to one log.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Protocol

import pytest

from events.approval import ApprovalRequest
from events.envelope import EventEnvelope
from events.json import JsonObject
from events.run_events import (
    DecisionAccepted,
    InterruptRaised,
    RunCompleted,
    RunEventPayload,
    RunParked,
    RunResumed,
    RunStarted,
    ToolCallCompleted,
)
from projections import (
    BatchItem,
    LogBound,
    LoggedEvent,
    MemoryStore,
    ProjectionStore,
    ProjectionWriter,
    ReadModel,
    UnstorableBatch,
    Unusable,
)
from projections.applying import RAW_LIMIT
from projections.fold import timestamp
from projections.rows import StoredPosition
from projections.verify import VerifySource

TOPIC = "c.runs"
T0 = 1_763_700_000_000_000  # µs
SECOND = 1_000_000


class Store(ProjectionWriter, LogBound, ReadModel, VerifySource, Protocol):
    async def fetch_positions(self, projection: str, topic: str) -> list[StoredPosition]: ...


Make = Callable[[], Awaitable[Store]]


def _memory(request: pytest.FixtureRequest) -> Make:
    async def make() -> Store:
        return MemoryStore()

    return make


def _postgres(request: pytest.FixtureRequest) -> Make:
    url: str = request.getfixturevalue("pg_url")

    async def make() -> Store:
        store = await ProjectionStore.connect(url, schema=f"t_{uuid.uuid4().hex[:12]}")
        await store.migrate()
        return store

    return make


STORES = [
    pytest.param(_memory, id="memory"),
    pytest.param(_postgres, id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=STORES)
def make(request: pytest.FixtureRequest) -> Make:
    factory: Callable[[pytest.FixtureRequest], Make] = request.param
    return factory(request)


@pytest.fixture
async def store(make: Make) -> AsyncIterator[Store]:
    store = await make()
    yield store
    await store.close()  # type: ignore[attr-defined]


# -- building batches -------------------------------------------------------------------------


class Run:
    """One run's events as the projector hands them over (raw bytes stand in for records)."""

    def __init__(self, run_id: str, partition: int = 0) -> None:
        self.run_id = run_id
        self.partition = partition
        self.seq = 0
        self.last_hash = ""  # each event carries the hash of the one before: a chain

    def event(
        self, payload: RunEventPayload, offset: int, *, at_us: int | None = None
    ) -> LoggedEvent:
        raw = f"{self.run_id}/{self.seq}/{offset}".encode()
        envelope = EventEnvelope(
            event_id=f"{self.run_id}/{self.seq}",
            run_id=self.run_id,
            seq=self.seq,
            occurred_at_us=T0 + self.seq * SECOND if at_us is None else at_us,
            agent="refunds",
            agent_version="1",
            causation_id="",
            correlation_id=self.run_id,
            prev_hash=self.last_hash,
            payload=payload,
        )
        self.seq += 1
        self.last_hash = hashlib.sha256(raw).hexdigest()
        return LoggedEvent(
            envelope=envelope,
            partition=self.partition,
            offset=offset,
            hash=self.last_hash,
            raw=raw,
        )


def started(requested_by: str = "bob", input: JsonObject | None = None) -> RunStarted:
    return RunStarted(input=input or {"order": "A-1"}, requested_by=requested_by, command_id="c")


def raised(run_id: str, approvers: tuple[str, ...] = ("role:lead",)) -> InterruptRaised:
    request = ApprovalRequest(
        kind="tool", title="refund", tool="refund", args={"amount": 20.0}, approvers=approvers
    )
    return InterruptRaised(call=0, interrupt_id=f"{run_id}:i", request=request)


def approved(run_id: str, by: str = "alice") -> DecisionAccepted:
    return DecisionAccepted(
        interrupt_id=f"{run_id}:i", decision_id=f"{run_id}:d", kind="approve", decided_by=by
    )


def waiting_run(run_id: str, partition: int = 0, first_offset: int = 0) -> list[LoggedEvent]:
    run = Run(run_id, partition)
    return [run.event(started(), first_offset), run.event(raised(run_id), first_offset + 1)]


async def apply(store: Store, items: list[BatchItem], projection: str = "core") -> None:
    await store.apply(projection, TOPIC, items)


# -- applying ---------------------------------------------------------------------------------


async def test_a_new_store_holds_nothing(store: Store) -> None:
    assert await store.positions("core", TOPIC) == {}
    assert await store.log_binding("core", TOPIC) is None
    assert await store.fetch_run("r1") is None
    assert await store.fetch_runs(None, 10) == []
    assert await store.fetch_events("r1") == []
    assert await store.fetch_errors(None, 10) == []
    assert await store.fetch_positions("core", TOPIC) == []
    assert await store.fetch_run_ids() == []
    assert (await store.apply("core", TOPIC, [])).events == 0


async def test_a_record_that_does_not_chain_is_kept_out_of_the_run(store: Store) -> None:
    """As the worker's restore does: the first record in log order that chains is the run's
    history; one appended behind it that does not (forged, or junk that decodes) is an error,
    across batches too, and the run's own next event still projects."""
    run = Run("r9", partition=1)
    first = [run.event(started(), 0), run.event(raised("r9"), 1)]
    await store.apply("core", TOPIC, first)
    forged = dataclasses.replace(
        run.event(approved("r9"), 2),
        envelope=dataclasses.replace(run.event(approved("r9"), 99).envelope, seq=2, prev_hash="x"),
    )
    run.seq, run.last_hash = 2, first[-1].hash  # type: ignore[union-attr]
    real = run.event(RunCompleted(output=None), 3)

    applied = await store.apply("core", TOPIC, [forged, real])

    assert (applied.events, applied.unusable) == (1, 1)
    assert [e.seq for e in await store.fetch_events("r9")] == [0, 1, 2]
    assert (await store.fetch_events("r9"))[-1].type == "RunCompleted"
    [error] = await store.fetch_errors("core", 10)
    assert error.offset == 2
    assert "unchained" in error.reason


async def test_a_batch_is_projected_and_moves_the_positions(store: Store) -> None:
    run = Run("r1", partition=2)
    items: list[BatchItem] = [
        run.event(started(), 10),
        run.event(raised("r1"), 11),
        run.event(approved("r1"), 13),
        run.event(RunCompleted(output={"ok": True}), 14),
    ]

    applied = await store.apply("core", TOPIC, items)

    assert (applied.events, applied.duplicates, applied.unusable, applied.skipped) == (4, 0, 0, 0)
    assert dict(applied.positions) == {2: 15}
    assert await store.positions("core", TOPIC) == {2: 15}
    assert await store.positions("other", TOPIC) == {}  # per projection
    row = await store.fetch_run("r1")
    assert row is not None
    assert (row.status, row.last_seq, row.open_interrupts, row.output) == (
        "completed",
        3,
        0,
        {"ok": True},
    )
    (interrupt,) = await store.fetch_interrupts("r1")
    assert (interrupt.status, interrupt.decided_by, interrupt.approvers) == (
        "approved",
        "alice",
        ("role:lead",),
    )
    events = await store.fetch_events("r1")
    assert [(e.seq, e.offset, e.partition) for e in events] == [
        (0, 10, 2),
        (1, 11, 2),
        (2, 13, 2),
        (3, 14, 2),
    ]
    assert [e.raw for e in events] == [i.raw for i in items]  # type: ignore[union-attr]
    assert events[1].payload["request"]["approvers"] == ["role:lead"]  # type: ignore[index, call-overload]
    assert [e.seq for e in await store.fetch_events("r1", from_seq=2)] == [2, 3]
    audit = await store.fetch_audit(run_id="r1", actor=None, tool=None, since=None, limit=10)
    assert [a.action for a in audit] == ["interrupt_raised", "decision_accepted"]
    assert audit[0].id is not None
    assert audit[1].id is not None
    assert audit[0].id < audit[1].id


async def test_applying_a_batch_again_or_an_overlapping_one_changes_nothing(store: Store) -> None:
    items: list[BatchItem] = [*waiting_run("r1"), *waiting_run("r2", first_offset=2)]
    await apply(store, items)
    audit_before = await store.fetch_audit(run_id=None, actor=None, tool=None, since=None, limit=10)

    again = await store.apply("core", TOPIC, items)
    overlapping = await store.apply("core", TOPIC, items[-1:])

    assert (again.events, again.skipped) == (0, 4)
    assert (overlapping.events, overlapping.skipped) == (0, 1)
    assert (
        await store.fetch_audit(run_id=None, actor=None, tool=None, since=None, limit=10)
        == audit_before
    )
    assert await store.fetch_errors(None, 10) == []
    assert await store.positions("core", TOPIC) == {0: 4}


async def test_a_run_goes_on_from_its_stored_state_in_later_batches(store: Store) -> None:
    run = Run("r1", partition=1)
    await apply(store, [run.event(started(), 0), run.event(raised("r1"), 1)])
    waiting = await store.fetch_run("r1")
    assert waiting is not None
    assert (waiting.status, waiting.open_interrupts) == ("waiting", 1)

    await apply(store, [run.event(approved("r1"), 2)])
    await apply(store, [run.event(ToolCallCompleted(call=0, result=None), 3)])
    await apply(store, [run.event(RunCompleted(output="done"), 4)])

    done = await store.fetch_run("r1")
    assert done is not None
    assert (done.status, done.open_interrupts, done.last_seq) == ("completed", 0, 4)
    assert done.started_at == waiting.started_at  # kept from the stored row
    assert done.requested_by == "bob"
    ((interrupt),) = await store.fetch_interrupts("r1")
    assert interrupt.status == "approved"


async def test_a_resumed_run_opens_again_what_its_parking_withdrew(store: Store) -> None:
    run = Run("r1")
    parked = RunParked(reason="non-determinism", call=1, expected="a", actual="b", detail="x")
    resumed = RunResumed(resumed_by="oscar", reason="fixed", command_id="c-2")
    await apply(store, [run.event(started(), 0), run.event(raised("r1"), 1)])
    await apply(store, [run.event(parked, 2)])
    stopped = await store.fetch_run("r1")
    assert stopped is not None
    assert (stopped.status, stopped.open_interrupts) == ("parked", 0)
    assert [i.status for i in await store.fetch_interrupts("r1")] == ["withdrawn"]

    await apply(store, [run.event(resumed, 3)])  # a later batch: read from the store

    going = await store.fetch_run("r1")
    assert going is not None
    assert (going.status, going.open_interrupts) == ("waiting", 1)
    assert (going.finished_at, going.error) == (None, None)
    [interrupt] = await store.fetch_interrupts("r1")
    assert (interrupt.status, interrupt.closed_at) == ("open", None)
    audit = await store.fetch_audit(
        run_id="r1", actor="oscar", tool=None, since=None, limit=10, action="run_resumed"
    )
    assert [(a.action, a.reason) for a in audit] == [("run_resumed", "fixed")]
    await apply(store, [run.event(approved("r1"), 4)])
    [decided] = await store.fetch_interrupts("r1")
    assert decided.status == "approved"


async def test_an_unusable_record_is_kept_as_an_error_and_moves_the_position(store: Store) -> None:
    junk = Unusable(partition=3, offset=7, reason="undecodable: not an event", raw=b"\x00junk")

    applied = await store.apply("core", TOPIC, [junk])

    assert (applied.unusable, dict(applied.positions)) == (1, {3: 8})
    (error,) = await store.fetch_errors("core", 10)
    assert (error.projection, error.topic, error.partition, error.offset) == ("core", TOPIC, 3, 7)
    assert (error.reason, error.raw) == ("undecodable: not an event", b"\x00junk")
    assert error.recorded_at is not None
    assert await store.fetch_error_offsets("core", TOPIC) == {(3, 7): "undecodable: not an event"}
    assert await store.fetch_errors("other", 10) == []


async def test_a_duplicate_of_a_projected_event_is_an_error_and_the_first_is_kept(
    store: Store,
) -> None:
    first = waiting_run("r1")
    await apply(store, list(first))
    again = Run("r1")
    again.seq = 1
    copy_later = again.event(raised("r1"), 5)  # the same run and seq from another record
    again.seq = 1
    copy_within = again.event(raised("r1"), 6)

    applied = await store.apply("core", TOPIC, [copy_later, copy_within])

    assert (applied.events, applied.duplicates) == (0, 2)
    errors = await store.fetch_errors(None, 10)
    assert [(e.offset, e.raw) for e in errors] == [(5, copy_later.raw), (6, copy_within.raw)]
    assert all(e.reason.startswith("duplicate: run r1 seq 1") for e in errors)
    assert [e.offset for e in await store.fetch_events("r1")] == [0, 1]
    assert (
        len(await store.fetch_audit(run_id="r1", actor=None, tool=None, since=None, limit=10)) == 1
    )


async def test_two_records_of_one_event_in_one_batch_keep_the_first(store: Store) -> None:
    run = Run("r1")
    original = run.event(started(), 0)
    run.seq = 0
    repeat = run.event(started(requested_by="mallory"), 1)

    applied = await store.apply("core", TOPIC, [original, repeat])

    assert (applied.events, applied.duplicates) == (1, 1)
    row = await store.fetch_run("r1")
    assert row is not None
    assert row.requested_by == "bob"
    assert [e.offset for e in await store.fetch_errors(None, 10)] == [1]


async def test_text_and_json_the_database_cannot_hold_are_cleaned(store: Store) -> None:
    run = Run("r1")
    await apply(
        store,
        [
            run.event(started(requested_by="b\x00b", input={"note": "nul \x00", "k\x00": 1}), 0),
            run.event(ToolCallCompleted(call=0, result={"x": float("nan"), "y": float("inf")}), 1),
        ],
    )

    row = await store.fetch_run("r1")
    assert row is not None
    assert row.requested_by == "b\ufffdb"
    assert row.input == {"note": "nul \ufffd", "k\ufffd": 1}
    events = await store.fetch_events("r1")
    assert events[1].payload["result"] == {"x": None, "y": None}
    assert events[0].raw == b"r1/0/0"  # the exact bytes stay


@pytest.mark.parametrize("where", ["time", "identifier", "nesting"])
async def test_an_event_the_store_cannot_hold_refuses_the_whole_batch(
    store: Store, where: str
) -> None:
    good = waiting_run("ok", partition=1)
    bad_run = Run("bad\x00id" if where == "identifier" else "bad")
    deep: JsonObject = {}
    if where == "nesting":  # deeper than any JSON encoder recurses
        for _ in range(100_000):
            deep = {"d": deep}
    payload = ToolCallCompleted(call=0, result=deep) if where == "nesting" else started()
    bad = bad_run.event(payload, 0, at_us=2**62 if where == "time" else None)  # year 146,000

    with pytest.raises(UnstorableBatch):
        await store.apply("core", TOPIC, [*good, bad])

    assert await store.positions("core", TOPIC) == {}  # nothing moved, nothing created
    assert await store.fetch_run("ok") is None  # nothing of the batch is kept
    assert await store.fetch_events("ok") == []
    await apply(store, list(good))  # the same good events alone go in
    assert await store.fetch_run("ok") is not None


async def test_a_huge_unusable_record_keeps_its_first_mebibyte_and_says_so(store: Store) -> None:
    huge = bytes(range(256)) * (RAW_LIMIT // 256 * 3)
    item = Unusable(partition=0, offset=0, reason="undecodable: too large", raw=huge)

    await apply(store, [item])

    (error,) = await store.fetch_errors(None, 10)
    assert error.raw == huge[:RAW_LIMIT]
    assert error.reason.startswith("undecodable: too large [record of ")
    assert str(len(huge)) in error.reason
    assert hashlib.sha256(huge).hexdigest() in error.reason


# -- reading ----------------------------------------------------------------------------------


async def test_runs_are_listed_latest_first_by_status_within_the_limit(store: Store) -> None:
    batch: list[BatchItem] = []
    for n, run_id in enumerate(["r1", "r2", "r3", "r4"]):
        run = Run(run_id, partition=n)
        batch.append(run.event(started(), 0, at_us=T0 + n * SECOND))
        if run_id in ("r2", "r4"):
            batch.append(run.event(raised(run_id), 1, at_us=T0 + n * SECOND + 1))

    await apply(store, batch)

    assert [r.run_id for r in await store.fetch_runs(None, 10)] == ["r4", "r3", "r2", "r1"]
    assert [r.run_id for r in await store.fetch_runs("waiting", 10)] == ["r4", "r2"]
    assert [r.run_id for r in await store.fetch_runs(None, 2)] == ["r4", "r3"]
    assert await store.fetch_runs("completed", 10) == []


async def test_audit_entries_are_filtered_and_ordered(store: Store) -> None:
    one, two = Run("r1"), Run("r2", partition=1)
    await apply(
        store,
        [
            one.event(started(), 0, at_us=T0),
            one.event(raised("r1"), 1, at_us=T0 + 1 * SECOND),
            two.event(started(), 0, at_us=T0),
            two.event(raised("r2"), 1, at_us=T0 + 2 * SECOND),
            one.event(approved("r1", by="alice"), 2, at_us=T0 + 3 * SECOND),
            two.event(approved("r2", by="carol"), 2, at_us=T0 + 4 * SECOND),
        ],
    )

    def read(**filters: object) -> Awaitable[list[object]]:
        wanted = {"run_id": None, "actor": None, "tool": None, "since": None, "limit": 10}
        return store.fetch_audit(**{**wanted, **filters})  # type: ignore[arg-type]

    everything = await store.fetch_audit(run_id=None, actor=None, tool=None, since=None, limit=10)
    assert [(a.run_id, a.action) for a in everything] == [
        ("r1", "interrupt_raised"),
        ("r2", "interrupt_raised"),
        ("r1", "decision_accepted"),
        ("r2", "decision_accepted"),
    ]
    assert [a.run_id for a in await read(actor="carol")] == ["r2"]  # type: ignore[attr-defined]
    assert len(await read(run_id="r1")) == 2
    assert len(await read(tool="refund")) == 4
    assert len(await read(action="decision_accepted")) == 2
    assert len(await read(since=timestamp(T0 + 2 * SECOND))) == 3
    assert len(await read(since=timestamp(T0 + 2 * SECOND) + timedelta(microseconds=1))) == 2
    assert len(await read(limit=1)) == 1
    assert await read(run_id="r1", actor="carol") == []


async def test_errors_are_listed_in_order_per_projection(store: Store) -> None:
    for offset in range(3):
        junk = Unusable(partition=0, offset=offset, reason=f"bad {offset}", raw=b"x")
        await store.apply("core", TOPIC, [junk])
    await store.apply("other", TOPIC, [Unusable(partition=0, offset=0, reason="o", raw=b"y")])

    assert [e.reason for e in await store.fetch_errors("core", 10)] == ["bad 0", "bad 1", "bad 2"]
    assert [e.reason for e in await store.fetch_errors("core", 2)] == ["bad 0", "bad 1"]
    assert [e.projection for e in await store.fetch_errors(None, 10)] == ["core"] * 3 + ["other"]


async def test_positions_say_when_the_latest_event_happened(store: Store) -> None:
    one, two = Run("r1", partition=0), Run("r2", partition=1)
    await apply(
        store,
        [
            one.event(started(), 0, at_us=T0 + 5 * SECOND),
            one.event(raised("r1"), 1, at_us=T0 + 2 * SECOND),  # older: clocks differ
            two.event(started(), 0, at_us=T0 + 9 * SECOND),
        ],
    )
    await apply(store, [Unusable(partition=1, offset=1, reason="junk", raw=b"j")])

    positions = await store.fetch_positions("core", TOPIC)

    assert [(p.partition, p.next_offset) for p in positions] == [(0, 2), (1, 2)]
    assert positions[0].last_event_at == timestamp(T0 + 5 * SECOND)
    assert positions[1].last_event_at == timestamp(T0 + 9 * SECOND)  # junk has no time
    assert all(p.updated_at is not None for p in positions)


async def test_positions_are_bound_to_the_first_log_that_claims_them(store: Store) -> None:
    assert await store.bind_log("core", TOPIC, "log-a") == "log-a"

    assert await store.bind_log("core", TOPIC, "log-b") == "log-a"  # a second claim loses
    assert await store.log_binding("core", TOPIC) == "log-a"
    assert await store.log_binding("core", "another.runs") is None
    assert await store.log_binding("other", TOPIC) is None
    assert await store.bind_log("other", TOPIC, "log-b") == "log-b"


async def test_verification_reads_every_run_by_seq(store: Store) -> None:
    run = Run("r1")
    await apply(
        store,
        [
            *waiting_run("r2", partition=1),
            run.event(started(), 0),
            run.event(raised("r1"), 1),
            run.event(approved("r1"), 2),
        ],
    )

    events = await store.fetch_events_of(["r1", "r2", "nope"])
    audit = await store.fetch_audit_of(["r1", "nope"])

    assert {k: [e.seq for e in v] for k, v in events.items()} == {
        "r1": [0, 1, 2],
        "r2": [0, 1],
        "nope": [],
    }
    assert {k: [(a.seq, a.action) for a in v] for k, v in audit.items()} == {
        "r1": [(1, "interrupt_raised"), (2, "decision_accepted")],
        "nope": [],
    }
    assert await store.fetch_run_ids() == ["r1", "r2"]
