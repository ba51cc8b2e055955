"""The tamper suite on the embedded log: an insider with the database owner's rights.

Workers run on the PostgreSQL event log (anchoring with their key, which the database never
sees). The insider disables the append-only trigger of `cs_log_records`, doctors a runs
partition consistently (every rewritten run re-chained; `tests.tamper`), rebuilds the
projections from the doctored log as the documented rebuild would, and enables the trigger
again. `verify` names what was done, against the anchors. One trial of each doctoring here;
`make tamper` draws COUNTERSIGN_TAMPER_TRIALS random ones.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections.abc import AsyncIterator

import asyncpg  # noqa: TID251  (the insider works below our API, with raw SQL)
import pytest

from engine.log.port import Topics
from engine.log.postgres import PostgresLog
from projections import ProjectionStore, Projector
from projections.verify import AnchorCheck, VerifyReport, verify_report
from tests.helpers import eventually
from tests.tamper import CODEC, DOCTORS, WORKER_KEY, Row, clean_history

pytestmark = pytest.mark.postgres

TRIALS = int(os.environ.get("COUNTERSIGN_TAMPER_TRIALS", "0"))
SEED = int(os.environ.get("COUNTERSIGN_TAMPER_SEED", "1107"))
PARTITIONS = 2


class Insider:
    """Raw SQL on the log's schema, with the owner's rights."""

    def __init__(self, conn: asyncpg.Connection, topics: Topics) -> None:
        self.conn = conn
        self.topics = topics

    async def rows(self, topic: str, partition: int) -> list[Row]:
        found = await self.conn.fetch(
            'SELECT key, value FROM cs_log_records WHERE topic = $1 AND "partition" = $2'
            ' ORDER BY "offset"',
            topic,
            partition,
        )
        return [Row(r["key"], bytes(r["value"])) for r in found]

    async def write(self, topic: str, partition: int, rows: list[Row]) -> None:
        async with self.conn.transaction():
            await self.conn.execute("ALTER TABLE cs_log_records DISABLE TRIGGER USER")
            await self.conn.execute(
                'DELETE FROM cs_log_records WHERE topic = $1 AND "partition" = $2', topic, partition
            )
            await self.conn.executemany(
                'INSERT INTO cs_log_records (topic, "partition", "offset", key, value,'
                " timestamp_ms) VALUES ($1, $2, $3, $4, $5, 0)",
                [(topic, partition, n, row.key, row.value) for n, row in enumerate(rows)],
            )
            await self.conn.execute(
                "UPDATE cs_log_partitions SET next_offset = $3"
                ' WHERE topic = $1 AND "partition" = $2',
                topic,
                partition,
                len(rows),
            )
            await self.conn.execute("ALTER TABLE cs_log_records ENABLE TRIGGER USER")


@pytest.fixture
async def setup(pg_url: str) -> AsyncIterator[tuple[PostgresLog, Topics, Insider]]:
    schema = f"tamper_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(pg_url)
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.execute(f"SET search_path = {schema}")
    log = PostgresLog(pg_url, schema=schema, client_id="tamper")
    await log.start()
    topics = Topics("t")
    await log.ensure_topics(topics, PARTITIONS)
    try:
        await clean_history(log, topics, random.Random(SEED), runs=6)
        yield log, topics, Insider(conn, topics)
    finally:
        await log.close()
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


async def projected(log: PostgresLog, topics: Topics, pg_url: str) -> ProjectionStore:
    """A fresh copy of the projections, built from the log as it is now (a rebuild)."""
    store = await ProjectionStore.connect(pg_url, schema=f"p_{uuid.uuid4().hex[:10]}")
    await store.migrate()
    stop = asyncio.Event()
    task = asyncio.create_task(Projector(log, store, topics.runs, "g", CODEC).run(stop))

    async def caught_up() -> bool:
        positions = await store.positions("core", topics.runs)
        ends = [await log.end_offset(topics.runs, p) for p in range(PARTITIONS)]
        return all(positions.get(p, 0) >= end for p, end in enumerate(ends))

    try:
        await eventually(caught_up, timeout=30.0, message="projected")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    return store


async def check(log: PostgresLog, topics: Topics, store: ProjectionStore) -> VerifyReport:
    keys = {WORKER_KEY.kid: WORKER_KEY.public()}
    return await verify_report(
        log, topics.runs, store, CODEC, anchors=AnchorCheck(topic=topics.anchors, keys=keys)
    )


def found(report: VerifyReport) -> list[str]:
    return [b.what for v in report.runs for b in v.breaks] + [
        problem for p in report.partitions for problem in p.problems
    ]


async def test_the_log_is_append_only(setup: tuple[PostgresLog, Topics, Insider]) -> None:
    insider = setup[2]
    for statement in (
        "UPDATE cs_log_records SET value = 'x'",
        "DELETE FROM cs_log_records",
        "TRUNCATE cs_log_records",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await insider.conn.execute(statement)


async def test_an_insider_with_the_database_is_caught(
    setup: tuple[PostgresLog, Topics, Insider], pg_url: str
) -> None:
    log, topics, insider = setup
    clean = await projected(log, topics, pg_url)
    report = await check(log, topics, clean)
    assert report.ok, found(report)
    await clean.close()
    rng = random.Random(SEED)
    plan = sorted(DOCTORS) + [rng.choice(sorted(DOCTORS)) for _ in range(TRIALS)]
    caught = skipped = 0
    for name in plan:
        first = rng.randrange(PARTITIONS)
        for partition in (first, 1 - first):
            runs = await insider.rows(topics.runs, partition)
            anchors = await insider.rows(topics.anchors, partition)
            doctored = DOCTORS[name](rng, runs, anchors)
            if doctored is not None:
                break
        else:
            skipped += 1  # nothing of that kind to doctor in this history
            continue
        new_runs, new_anchors, label = doctored
        await insider.write(topics.runs, partition, new_runs)
        await insider.write(topics.anchors, partition, new_anchors)
        try:
            store = await projected(log, topics, pg_url)  # rebuilt from the doctored log
            report = await check(log, topics, store)
            await store.close()
        finally:
            await insider.write(topics.runs, partition, runs)
            await insider.write(topics.anchors, partition, anchors)
        assert not report.ok, name
        assert any(label in what for what in found(report)), (name, found(report))
        caught += 1
    assert caught == len(plan) - skipped
    assert skipped <= len(plan) // 4
