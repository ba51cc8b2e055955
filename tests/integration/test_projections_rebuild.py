"""Rebuild without downtime: a fresh copy is built beside the live one while events flow and
queries are served, then the pointer and the views switch, and the running projector follows.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg  # noqa: TID251  (the views are read as other systems read them: raw SQL)
import pytest

from engine.log.memory import MemoryLog
from projections import LiveStore, Projector, Queries, connect_live, rebuild
from projections.store import ProjectionStore
from tests.helpers import eventually
from tests.integration.projections_history import CODEC, Call, publish

pytestmark = pytest.mark.postgres

TOPIC = "rb.runs"


@pytest.fixture
def home() -> str:
    return f"h_{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def live(pg_url: str, home: str) -> AsyncIterator[LiveStore]:
    store = await LiveStore.connect(pg_url, home=home, check_every_s=0.05)
    yield store
    await store.close()


async def count(url: str, schema: str, sql: str) -> int:
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def caught_up(log: MemoryLog, store: ProjectionStore | LiveStore) -> bool:
    positions = await store.positions("core", TOPIC)
    for partition in range(await log.partition_count(TOPIC)):
        if positions.get(partition, 0) != await log.end_offset(TOPIC, partition):
            return False
    return True


async def test_a_rebuild_switches_while_events_flow_and_the_projector_follows(
    pg_url: str, home: str, live: LiveStore
) -> None:
    log = MemoryLog(default_partitions=3)
    await publish(log, TOPIC, [Call(run_id=f"a{n}", outcome="approved") for n in range(60)])
    stop = asyncio.Event()
    projector = asyncio.create_task(Projector(log, live, TOPIC, "g", CODEC).run(stop))
    await eventually(lambda: caught_up(log, live), message="live projector caught up")
    assert live.schema == home

    async def keep_publishing() -> None:
        for n in range(20):
            await publish(log, TOPIC, [Call(run_id=f"b{n}", outcome="edited",
                                             edited_args={"amount": 1.0})])  # fmt: skip
            await asyncio.sleep(0.02)

    async def keep_querying() -> int:
        served = 0
        while not rebuilt.done():
            store = await connect_live(pg_url, home=home)
            try:
                served += len(await Queries(store).list_runs(limit=1000)) > 0
            finally:
                await store.close()
        return served

    flowing = asyncio.create_task(keep_publishing())
    rebuilt = asyncio.create_task(
        rebuild(log, pg_url, TOPIC, CODEC, group="g", home=home, max_lag=0, grace_s=0.5)
    )
    served = await keep_querying()
    done = await rebuilt
    await flowing

    assert served > 0  # queries were answered all along, from the old copy
    assert (done.previous, done.schema) == (home, f"{done.schema}")
    await eventually(lambda: live.schema == done.schema, message="projector followed")
    await publish(log, TOPIC, [Call(run_id=f"c{n}", outcome="rejected") for n in range(10)])
    await eventually(lambda: caught_up(log, live), message="caught up in the new copy")
    stop.set()
    await asyncio.wait_for(projector, 10)

    runs = await count(pg_url, done.schema, "SELECT count(*) FROM cs_runs")
    audit = await count(pg_url, done.schema, "SELECT count(*) FROM cs_audit")
    assert runs == 90
    assert audit == 60 * 3 + 20 * 3 + 10 * 3  # gate, raise and decision per run
    assert await count(pg_url, home, "SELECT count(*) FROM cs_v_audit") == audit  # views follow
    assert await count(pg_url, home, "SELECT sum(requests) FROM cs_v_stats"
                       " WHERE dimension = 'tool'") == 90  # fmt: skip
    reader = await connect_live(pg_url, home=home)
    try:
        assert reader.schema == done.schema
        assert len(await Queries(reader).list_runs(limit=1000)) == 90
    finally:
        await reader.close()


async def test_a_second_rebuild_can_drop_the_copy_it_replaces(pg_url: str, home: str) -> None:
    log = MemoryLog(default_partitions=2)
    await publish(log, TOPIC, [Call(run_id=f"a{n}", outcome="approved") for n in range(5)])

    first = await rebuild(log, pg_url, TOPIC, CODEC, group="g", home=home, max_lag=0, grace_s=0)
    second = await rebuild(
        log, pg_url, TOPIC, CODEC, group="g", home=home, max_lag=0, grace_s=0, drop_previous=True
    )

    assert (second.previous, second.dropped_previous) == (first.schema, True)
    assert (first.dropped_previous, first.events) == (False, 5 * 7)
    assert (
        await count(
            pg_url, home, f"SELECT count(*) FROM pg_namespace WHERE nspname = '{first.schema}'"
        )
        == 0
    )
    assert await count(pg_url, home, "SELECT count(*) FROM cs_v_decisions") == 5
    home_store = await ProjectionStore.connect(pg_url, schema=home)
    try:
        assert await home_store.live_schema() == second.schema
        assert await home_store.switch_live("core", home) == second.schema  # roll back
        assert await count(pg_url, home, "SELECT count(*) FROM cs_v_decisions") == 0
        with pytest.raises(ValueError, match="holds no projection copy"):
            await home_store.switch_live("core", "nothing_here")
    finally:
        await home_store.close()
