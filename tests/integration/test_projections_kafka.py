"""The projector on a real Kafka broker: a crash after a committed batch it never noticed
loses and doubles nothing; `verify` reads the chain back from Kafka."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence

import pytest

from engine.log.kafka import KafkaLog
from engine.log.port import Topics
from projections import Applied, BatchItem, ProjectionStore, Projector, Queries, verify
from tests.helpers import eventually
from tests.integration.projections_history import CODEC, Call, publish

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


@pytest.fixture
async def kafka(kafka_bootstrap: str, fresh_prefix: str) -> AsyncIterator[tuple[KafkaLog, str]]:
    log = KafkaLog(kafka_bootstrap, client_id=fresh_prefix, heartbeat_interval_ms=250)
    await log.start()
    topics = Topics(fresh_prefix)
    await log.ensure_topics(topics, 3)
    try:
        yield log, topics.runs
    finally:
        await log.close()


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[ProjectionStore]:
    store = await ProjectionStore.connect(pg_url, schema=f"t_{uuid.uuid4().hex[:12]}")
    await store.migrate()
    yield store
    await store.close()


class DiesAfterCommit:
    """Applies `good` batches, then commits one more and hangs before returning: the
    projector is killed with work done that it has not heard of."""

    def __init__(self, store: ProjectionStore, good: int) -> None:
        self.store = store
        self.good = good
        self.hung = asyncio.Event()

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
        applied = await self.store.apply(projection, topic, items, built=built)
        self.good -= 1
        if self.good < 0:
            self.hung.set()
            await asyncio.Event().wait()
        return applied


async def test_a_crash_after_a_commit_loses_and_doubles_nothing_on_kafka(
    kafka: tuple[KafkaLog, str], store: ProjectionStore
) -> None:
    log, topic = kafka
    outcomes = ["approved", "edited", "rejected", "open", "auto"]
    calls = [
        Call(
            run_id=f"k{n:02d}",
            outcome=outcomes[n % 5],  # type: ignore[arg-type]
            edited_args={"amount": 1.0},
        )
        for n in range(50)
    ]
    events = await publish(log, topic, calls)
    dying = DiesAfterCommit(store, good=2)
    first = asyncio.create_task(
        Projector(log, dying, topic, "p", CODEC, max_records=40).run(asyncio.Event())  # type: ignore[arg-type]
    )
    await asyncio.wait_for(dying.hung.wait(), 60)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first

    stop = asyncio.Event()
    second = Projector(log, store, topic, "p", CODEC, max_records=40)
    task = asyncio.create_task(second.run(stop))

    async def caught_up() -> bool:
        return sum((await second.lag()).values()) == 0

    await eventually(caught_up, timeout=60, message="the second projector caught up")
    stop.set()
    await asyncio.wait_for(task, 30)

    q = Queries(store)
    runs = await q.list_runs(limit=1000)
    assert len(runs) == 50
    assert Counter(r.status for r in runs) == {"completed": 40, "waiting": 10}
    assert sum([len(await q.events(c.run_id)) for c in calls]) == events
    audit = await q.audit(limit=10_000)
    assert len(audit) == len({(a.run_id, a.seq, a.action) for a in audit})  # none twice
    assert Counter(a.action for a in audit)["gate_evaluated"] == 50
    assert await q.errors() == []
    verdicts = await verify(log, topic, store, CODEC)
    assert [v.run_id for v in verdicts if not v.ok] == []
    assert len(verdicts) == 50
