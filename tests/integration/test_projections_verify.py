"""`verify` against tampered rows on a real PostgreSQL: every change is found, at its seq.

The tampering goes below our API, as an attacker with the table owner's rights would: the
append-only triggers are disabled for the change, then enabled again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg  # noqa: TID251  (tampering with the rows needs raw SQL, below our API)
import pytest

from engine.log.memory import MemoryLog
from engine.log.port import Outgoing
from events.run_events import RunCompleted, ToolCallCompleted
from projections import ProjectionStore, Projector, verify
from tests.helpers import eventually
from tests.integration.projections_history import CODEC, T0, Call, Stream, publish

pytestmark = pytest.mark.postgres

TOPIC = "v.runs"
VICTIM = "run-victim"


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[ProjectionStore]:
    store = await ProjectionStore.connect(pg_url, schema=f"t_{uuid.uuid4().hex[:12]}")
    await store.migrate()
    yield store
    await store.close()


@pytest.fixture
async def log(store: ProjectionStore) -> MemoryLog:
    log = MemoryLog(default_partitions=2)
    calls = [Call(run_id=VICTIM, outcome="edited", edited_args={"order": "A-1", "amount": 9.0})]
    calls += [Call(run_id=f"run-{n}", outcome="approved") for n in range(5)]
    await publish(log, TOPIC, calls)
    await project(log, store)
    return log


async def project(log: MemoryLog, store: ProjectionStore) -> None:
    projector = Projector(log, store, TOPIC, "g", CODEC)
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))

    async def caught_up() -> bool:
        return sum((await projector.lag()).values()) == 0

    await eventually(caught_up)
    stop.set()
    await asyncio.wait_for(task, 10)


async def tamper(pg_url: str, schema: str, *statements: str) -> None:
    conn = await asyncpg.connect(pg_url, server_settings={"search_path": schema})
    try:
        async with conn.transaction():
            await conn.execute("ALTER TABLE cs_events DISABLE TRIGGER USER")
            await conn.execute("ALTER TABLE cs_audit DISABLE TRIGGER USER")
            for statement in statements:
                await conn.execute(statement)
            await conn.execute("ALTER TABLE cs_events ENABLE TRIGGER USER")
            await conn.execute("ALTER TABLE cs_audit ENABLE TRIGGER USER")
    finally:
        await conn.close()


async def test_untouched_histories_verify(log: MemoryLog, store: ProjectionStore) -> None:
    verdicts = await verify(log, TOPIC, store, CODEC)

    assert len(verdicts) == 6
    assert all(v.ok for v in verdicts), [str(v.first_break) for v in verdicts]
    (one,) = await verify(log, TOPIC, store, CODEC, [VICTIM])
    assert (one.log_events, one.projected_events, one.pending) == (7, 7, 0)


EVENT = f"cs_events WHERE run_id = '{VICTIM}'"


def update(seq: int, assignments: str) -> str:
    return f"UPDATE cs_events SET {assignments} WHERE run_id = '{VICTIM}' AND seq = {seq}"


TAMPERING = {
    "payload": (
        [update(3, "payload = jsonb_set(payload, '{kind}', '\"approve\"')")],
        "projection",
        3,
        "the payload column differs from the event's bytes",
    ),
    "raw-byte": (
        [update(4, "raw = set_byte(raw, length(raw) - 1, get_byte(raw, length(raw) - 1) # 1)")],
        "projection",
        4,
        "is not the hash of the stored bytes",
    ),
    "raw-and-hash": (
        [update(6, "raw = set_byte(raw, length(raw) - 1, 32),"
                   " hash = encode(sha256(set_byte(raw, length(raw) - 1, 32)), 'hex')")],
        "projection",
        6,
        "the stored bytes do not decode",
    ),
    "deleted-row": ([f"DELETE FROM {EVENT} AND seq = 2"], "projection", 2, "seq 2 is missing"),
    "reordered": (
        [update(4, "seq = -1"), update(5, "seq = 4"), update(-1, "seq = 5")],
        "projection",
        4,
        "column seq is 4 but the event's bytes say 5",
    ),
    "truncated-tail": (
        [f"DELETE FROM {EVENT} AND seq >= 5"],
        "comparison",
        5,
        "in the log but missing from the projection",
    ),
    "audit-changed": (
        [f"UPDATE cs_audit SET actor = 'u:eve' WHERE run_id = '{VICTIM}'"
         " AND action = 'decision_accepted'"],
        "audit",
        3,
        "decision_accepted row differs from the event in actor",
    ),
    "audit-deleted": (
        [f"DELETE FROM cs_audit WHERE run_id = '{VICTIM}' AND action = 'gate_evaluated'"],
        "audit",
        1,
        "gate_evaluated row is missing",
    ),
}  # fmt: skip


@pytest.mark.parametrize("kind", TAMPERING)
async def test_every_tampering_is_found_at_its_seq(
    log: MemoryLog, store: ProjectionStore, pg_url: str, kind: str
) -> None:
    statements, where, seq, what = TAMPERING[kind]
    await tamper(pg_url, store.schema, *statements)

    (verdict,) = await verify(log, TOPIC, store, CODEC, [VICTIM])
    everything = await verify(log, TOPIC, store, CODEC)

    first = verdict.first_break
    assert first is not None, kind
    assert (first.where, first.seq) == (where, seq), str(first)
    assert what in first.what
    assert [v.run_id for v in everything if not v.ok] == [VICTIM]


async def test_events_not_projected_yet_are_lag_not_a_break(
    log: MemoryLog, store: ProjectionStore
) -> None:
    stream = Stream("run-late")
    first = [stream.encode(ToolCallCompleted(call=n, result=n), T0 + n) for n in range(3)]
    await log.publish([Outgoing(TOPIC, "run-late", data) for data in first])
    await project(log, store)
    later = stream.encode(RunCompleted(output=None), T0 + 9)
    await log.publish([Outgoing(TOPIC, "run-late", later)])

    (verdict,) = await verify(log, TOPIC, store, CODEC, ["run-late"])

    assert verdict.ok, str(verdict.first_break)
    assert (verdict.log_events, verdict.projected_events, verdict.pending) == (4, 3, 1)


async def test_a_forged_event_in_the_log_breaks_the_log_chain(
    log: MemoryLog, store: ProjectionStore
) -> None:
    forged = Stream("run-forged")
    good = [forged.encode(ToolCallCompleted(call=n, result=n), T0 + n) for n in range(3)]
    forged.prev_hash = "0" * 64  # the next event names a hash nobody had
    bad = forged.encode(RunCompleted(output="forged"), T0 + 5)
    await log.publish([Outgoing(TOPIC, "run-forged", d) for d in [*good, bad]])

    (verdict,) = await verify(log, TOPIC, store, CODEC, ["run-forged"])

    first = verdict.first_break
    assert first is not None
    assert (first.where, first.seq) == ("log", 3)
    assert "prev_hash 000000000000…" in first.what
