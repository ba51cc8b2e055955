"""Rows read back from the database are input too: someone with write access plants a hostile
live pointer, a status no code writes, JSON of the wrong shape. Each is refused by name
(`CorruptRow`), and nothing planted is ever executed as SQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg  # noqa: TID251  (planting rows needs raw SQL, below our API)
import pytest

from engine.log.memory import MemoryLog
from engine.log.port import Outgoing
from projections import (
    CorruptRow,
    Insights,
    LiveStore,
    Projector,
    Queries,
    connect_live,
)
from projections.store import ProjectionStore
from tests.helpers import eventually
from tests.integration.projections_history import CODEC, Call, publish

pytestmark = pytest.mark.postgres

TOPIC = "hr.runs"
HOSTILE_SCHEMAS = [
    'x"; CREATE TABLE pwned (id int); --',
    "Public",
    "a" * 64,
    "x.y",
    "",
]


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[ProjectionStore]:
    store = await ProjectionStore.connect(pg_url, schema=f"h_{uuid.uuid4().hex[:12]}")
    await store.migrate()
    yield store
    await store.close()


async def sql(url: str, schema: str, statement: str, *args: object) -> object:
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    try:
        return await conn.fetchval(statement, *args)
    finally:
        await conn.close()


async def project(store: ProjectionStore, calls: list[Call]) -> None:
    log = MemoryLog(default_partitions=2)
    await publish(log, TOPIC, calls)
    await project_log(log, store)


async def project_log(log: MemoryLog, store: ProjectionStore) -> None:
    projector = Projector(log, store, TOPIC, "g", CODEC)
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))

    async def caught_up() -> bool:
        return sum((await projector.lag()).values()) == 0

    await eventually(caught_up, message="projected")
    stop.set()
    await asyncio.wait_for(task, 10)


@pytest.mark.parametrize("planted", HOSTILE_SCHEMAS)
async def test_a_hostile_live_pointer_is_refused_never_executed(
    pg_url: str, store: ProjectionStore, planted: str
) -> None:
    await sql(
        pg_url,
        store.schema,
        "INSERT INTO cs_projection_live (projection, schema_name) VALUES ('core', $1)",
        planted,
    )

    for attempt in (
        store.migrate(),
        store.live_schema(),
        connect_live(pg_url, home=store.schema),
        LiveStore.connect(pg_url, home=store.schema),
    ):
        with pytest.raises(CorruptRow, match="cs_projection_live") as refused:
            await attempt
        assert "DELETE FROM cs_projection_live" in str(refused.value)  # says what to do

    pwned = "SELECT count(*) FROM pg_tables WHERE tablename = 'pwned'"
    assert await sql(pg_url, store.schema, pwned) == 0
    await sql(pg_url, store.schema, "DELETE FROM cs_projection_live")
    assert await store.live_schema() == store.schema  # the home schema, once the row is gone


async def test_an_interrupt_with_a_status_no_code_writes_is_refused_by_name(
    pg_url: str, store: ProjectionStore
) -> None:
    await project(store, [Call(run_id="r1", outcome="open")])
    await sql(pg_url, store.schema, "UPDATE cs_interrupts SET status = 'approved; yes'")

    with pytest.raises(CorruptRow, match=r"cs_interrupts\.status holds 'approved; yes'"):
        await Queries(store).interrupts("r1")
    with pytest.raises(CorruptRow):
        await Insights(store).inbox(closed=True)


async def test_json_of_the_wrong_shape_is_refused_by_name(
    pg_url: str, store: ProjectionStore
) -> None:
    await project(store, [Call(run_id="r1", outcome="open")])
    await sql(pg_url, store.schema, """UPDATE cs_interrupts SET approvers = '{"a": 1}'""")

    with pytest.raises(CorruptRow, match=r"cs_interrupts\.approvers .* not a JSON array"):
        await Insights(store).inbox()


async def test_a_planted_audit_action_is_refused_by_name(
    pg_url: str, store: ProjectionStore
) -> None:
    await project(store, [Call(run_id="r1", outcome="approved")])
    await sql(  # the audit is append-only, so an insider appends
        pg_url,
        store.schema,
        "INSERT INTO cs_audit (run_id, seq, at, action, actor) VALUES ('r1', 99, now(), $1, 'x')",
        "approved_by_ceo",
    )

    with pytest.raises(CorruptRow, match=r"cs_audit\.action holds 'approved_by_ceo'"):
        await Queries(store).audit(run_id="r1")


async def test_a_corrupt_stored_row_stops_projecting_its_run_with_the_reason(
    pg_url: str, store: ProjectionStore
) -> None:
    call = Call(run_id="r1", outcome="approved")
    log = MemoryLog(default_partitions=2)
    encoded = call.encoded()
    await log.publish(
        [Outgoing(TOPIC, call.run_id, data) for data in encoded[:3]]
    )  # up to the interrupt
    await project_log(log, store)
    await sql(pg_url, store.schema, "UPDATE cs_interrupts SET status = 'lost'")
    await log.publish([Outgoing(TOPIC, call.run_id, data) for data in encoded[3:]])

    stop = asyncio.Event()
    with pytest.raises(CorruptRow, match=r"cs_interrupts\.status holds 'lost'"):
        await asyncio.wait_for(Projector(log, store, TOPIC, "g", CODEC).run(stop), 10)
    run = await Queries(store).get_run("r1")
    assert run is not None
    assert run.status == "waiting"  # nothing was folded onto the corrupt row
