"""PostgreSQL stops mid-stream: the projector waits, retries with backoff, catches up, and
its tables then equal a rebuild from scratch exactly.

This test starts its own embedded server (never the session's shared one) and stops it.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from countersign import local_pg
from engine.log.memory import MemoryLog
from projections import Backoff, ProjectionStore, Projector
from tests.helpers import eventually
from tests.integration.projections_history import CODEC, Call, publish
from tests.projection_tables import TABLES, table_rows

pytestmark = pytest.mark.postgres

TOPIC = "o.runs"


@pytest.fixture
async def own_server() -> AsyncIterator[tuple[str, Path]]:
    root = Path(tempfile.mkdtemp(prefix="countersign-outage-"))  # see conftest: not pytest's tmp
    data = root / "data"
    url = await asyncio.to_thread(local_pg.start_embedded, data, stop_at_exit=True)
    try:
        yield url, data
    finally:
        await asyncio.to_thread(local_pg.stop_embedded, data)
        shutil.rmtree(root, ignore_errors=True)


async def caught_up(log: MemoryLog, store: ProjectionStore) -> bool:
    positions = await store.positions("core", TOPIC)
    ends = [await log.end_offset(TOPIC, p) for p in range(await log.partition_count(TOPIC))]
    return all(positions.get(p, 0) == end for p, end in enumerate(ends))


async def test_an_outage_is_waited_out_and_the_result_equals_a_rebuild(
    own_server: tuple[str, Path],
) -> None:
    url, data = own_server
    log = MemoryLog(default_partitions=3)
    outcomes = ["approved", "edited", "rejected", "expired", "escalated", "open", "auto"]
    calls = [
        Call(
            run_id=f"r{n:03d}",
            outcome=outcomes[n % 7],  # type: ignore[arg-type]
            edited_args={"amount": 1.0},
        )
        for n in range(210)
    ]
    await publish(log, TOPIC, calls[:70])
    store = await ProjectionStore.connect(url, schema="live")
    await store.migrate()
    stop = asyncio.Event()
    projector = Projector(
        log, store, TOPIC, "g", CODEC, max_records=40, backoff=Backoff(first=0.05, max=0.4)
    )
    with capture_logs() as logs:
        task = asyncio.create_task(projector.run(stop))
        await eventually(lambda: caught_up(log, store), message="first part projected")

        await asyncio.to_thread(local_pg.stop_embedded, data)  # the database goes away
        await publish(log, TOPIC, calls[70:140])  # ... while events keep coming

        def retried() -> bool:
            return sum(e["event"] == "projection_store_unavailable" for e in logs) >= 3

        await eventually(retried, timeout=20, message="the projector retried")
        assert await asyncio.to_thread(local_pg.start_embedded, data, stop_at_exit=True) == url
        await publish(log, TOPIC, calls[140:])
        await eventually(lambda: caught_up(log, store), timeout=30, message="caught up")
        stop.set()
        await asyncio.wait_for(task, 10)
    delays = [e["retry_in_s"] for e in logs if e["event"] == "projection_store_unavailable"]
    assert delays[:3] == [0.05, 0.1, 0.2]  # backoff doubles
    assert max(delays) <= 0.4

    fresh = await ProjectionStore.connect(url, schema="fresh")
    await fresh.migrate()
    again = asyncio.Event()
    rebuild = asyncio.create_task(Projector(log, fresh, TOPIC, "rebuild", CODEC).run(again))
    await eventually(lambda: caught_up(log, fresh), message="rebuilt from scratch")
    again.set()
    await asyncio.wait_for(rebuild, 10)
    await fresh.close()
    await store.close()

    after_outage = await table_rows(url, "live")
    from_scratch = await table_rows(url, "fresh")
    assert len(after_outage["cs_runs"]) == 210
    assert after_outage["cs_projection_errors"] == []
    for table in TABLES:
        assert after_outage[table] == from_scratch[table], table
