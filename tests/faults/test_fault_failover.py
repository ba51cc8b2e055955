"""Broker failover on a three-node cluster (RF 3, min ISR 2) under a stream of starts and
decisions from an independent client, with three worker processes and a projector:

- leader: SIGKILL the leader of the busiest partition;
- controller: SIGKILL the active controller (the KRaft quorum leader);
- wiped: SIGKILL a broker, wipe its data, restart it: it catches up from the replicas;
- paused: SIGSTOP the leader of the busiest partition past the broker session, then SIGCONT.

For each: no accepted decision lost, no event appended twice, no non-idempotent tool re-run
silently, every run completes (an in-doubt call is settled by the operator, counted), and the
projector ends equal to a rebuild from the log. Figures: seconds until every partition the
victim led took writes again, in-doubt count, resume latencies. Short form here; `make chaos`
repeats the fault every 200 runs of a long load.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.log.kafka import KafkaLog
from engine.log.port import Topics, partition_for
from events.codec import Codec
from examples.chaos import app
from projections import ProjectionStore, Projector
from tests.cluster import Cluster
from tests.faults.harness import (
    PARTITIONS,
    Chaos,
    Operator,
    Workers,
    figures_of,
    read_effects,
    read_runs,
    report,
    verify,
    worker_env,
)
from tests.helpers import eventually
from tests.projection_tables import TABLES, table_rows

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.postgres]

PAUSE_S = 9.0
"""Past the local cluster's broker session (6 s): the paused broker is fenced."""


@pytest.fixture
async def client(kafka_cluster: Cluster, fresh_prefix: str) -> AsyncIterator[KafkaLog]:
    # Requests time out as the workers' do: a paused broker answers nothing.
    event_log = KafkaLog(
        kafka_cluster.bootstrap, client_id="failover-operator", request_timeout_ms=10_000
    )
    await event_log.start()
    try:
        await event_log.ensure_topics(Topics(fresh_prefix), PARTITIONS)  # RF 3, min ISR 2
        yield event_log
    finally:
        await event_log.close()


@pytest.fixture
def workers(
    kafka_cluster: Cluster, fresh_prefix: str, effects: Path, tmp_path: Path
) -> Iterator[Workers]:
    pool = Workers(worker_env(kafka_cluster.bootstrap, fresh_prefix, effects), tmp_path)
    try:
        yield pool
    finally:
        pool.end_all()


class LiveProjector:
    """The projector, in this process, on its own connection to the cluster."""

    def __init__(self, bootstrap: str, url: str, topics: Topics, schema: str) -> None:
        self.log = KafkaLog(bootstrap, client_id=f"{schema}-projector", heartbeat_interval_ms=250)
        self.url, self.topics, self.schema = url, topics, schema
        self.stop = asyncio.Event()

    async def start(self) -> None:
        await self.log.start()
        self.store = await ProjectionStore.connect(self.url, schema=self.schema)
        await self.store.migrate()
        projector = Projector(self.log, self.store, self.topics.runs, self.schema, Codec())
        self.task = asyncio.create_task(projector.run(self.stop))

    async def caught_up(self, ends: dict[int, int]) -> bool:
        """Past the last record of each partition (`ends`: its offset + 1; transaction
        markers follow records, so the log's end offset is further on)."""
        positions = await self.store.positions("core", self.topics.runs)
        return all(positions.get(partition, 0) >= end for partition, end in ends.items())

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 30)
        await self.store.close()
        await self.log.close()


async def equals_a_rebuild(live: LiveProjector, ends: dict[int, int]) -> list[str]:
    """The tables that differ between the live projector and a rebuild from offset 0."""
    await eventually(lambda: live.caught_up(ends), timeout=60, message="the projector caught up")
    rebuilt = LiveProjector(live.log.bootstrap, live.url, live.topics, f"{live.schema}_rb")
    await rebuilt.start()
    try:
        await eventually(lambda: rebuilt.caught_up(ends), timeout=60, message="rebuilt")
    finally:
        await rebuilt.close()
    ours = await table_rows(live.url, live.schema)
    theirs = await table_rows(live.url, rebuilt.schema)
    return [table for table in TABLES if ours[table] != theirs[table]]


async def busiest_leader(cluster: Cluster, operator: Operator, topics: Topics) -> int:
    counts = Counter(partition_for(run_id, PARTITIONS) for run_id in operator.runs)
    busiest = counts.most_common(1)[0][0]
    return (await cluster.leaders(topics.runs))[busiest]


async def led_by(cluster: Cluster, topics: Topics, node_id: int) -> set[int]:
    """The partitions a step needs (commands, runs, checkpoints) that `node_id` leads."""
    led: set[int] = set()
    for topic in (topics.commands, topics.runs, topics.checkpoints):
        led |= {p for p, leader in (await cluster.leaders(topic)).items() if leader == node_id}
    return led or set(range(PARTITIONS))


async def probe(operator: Operator, partitions: set[int], since: float) -> float:
    """Start a run on each partition (as soon as the log takes it) and wait until each is
    seen started: the seconds from `since` until every partition took writes again."""
    runs = [
        run_id
        for partition in sorted(partitions)
        for run_id in await operator.start_runs(1, partition=partition)
    ]

    def started() -> bool:
        return all(operator.histories.get(run_id) for run_id in runs)

    await operator.until(started, 120, "every partition the victim led took writes again")
    return round(time.monotonic() - since, 2)


async def inject(
    fault: str, cluster: Cluster, operator: Operator, topics: Topics
) -> dict[str, Any]:
    """Do the fault; return once every partition the victim led took writes again."""
    if fault == "controller":
        victim = cluster.active_controller()
    else:
        victim = await busiest_leader(cluster, operator, topics)
    affected = await led_by(cluster, topics, victim)
    began = time.monotonic()
    figures: dict[str, Any] = {"victim": victim, "partitions_led": sorted(affected)}
    if fault == "paused":
        cluster.pause(victim)
        probing = asyncio.create_task(probe(operator, affected, began))
        await asyncio.sleep(PAUSE_S)
        cluster.resume(victim)
        figures["recovery_s"] = await probing
    else:
        await asyncio.to_thread(cluster.kill, victim)
        figures["recovery_s"] = await probe(operator, affected, began)
    if fault == "wiped":
        await asyncio.to_thread(cluster.wipe, victim)
    if fault != "paused":
        restarted = time.monotonic()
        await cluster.restart(victim)
        await eventually(
            lambda: cluster.all_in_sync([topics.commands, topics.runs, topics.checkpoints]),
            timeout=120,
            interval=0.25,
            message="the restarted broker caught up from the replicas",
        )
        figures["caught_up_s"] = round(time.monotonic() - restarted, 2)
    return figures


@pytest.mark.parametrize("fault", ["leader", "controller", "wiped", "paused"])
async def test_failover_loses_and_repeats_nothing(
    fault: str,
    kafka_cluster: Cluster,
    client: KafkaLog,
    workers: Workers,
    fresh_prefix: str,
    effects: Path,
    pg_url: str,
    chaos_report: Callable[[str], None],
) -> None:
    chaos = Chaos.from_env(f"failover-{fault}", short_runs=30)
    topics = Topics(fresh_prefix)
    operator = Operator(client, topics, effects, chaos.rng())
    operator.workers = workers
    projector = LiveProjector(kafka_cluster.bootstrap, pg_url, topics, f"p_{fresh_prefix}")
    await operator.start()
    await projector.start()
    began = time.monotonic()
    faults: list[dict[str, Any]] = []
    try:
        for _ in range(3):
            workers.spawn()
        starting = asyncio.create_task(operator.start_runs(chaos.runs, every_s=0.15))
        for number in range(max(1, chaos.runs // 200)):  # spread over the load
            share = chaos.runs * (number + 1) // (max(1, chaos.runs // 200) + 1) // 2

            def progressed(share: int = share) -> bool:
                return len(operator.done) >= max(3, share)

            await operator.until(progressed, 120 + chaos.runs * 0.5, "runs flow")
            faults.append(await inject(fault, kafka_cluster, operator, topics))
        await starting
        await operator.until(operator.all_done, 180 + chaos.runs * 0.5, "every run finished")
        runs = await read_runs(kafka_cluster.bootstrap, topics)
        ends: dict[int, int] = {}
        for events in runs.values():
            for partition, offset, _, _ in events:
                ends[partition] = max(ends.get(partition, 0), offset + 1)
        differing = await equals_a_rebuild(projector, ends)
    finally:
        await projector.close()
        await operator.close()
        await kafka_cluster.heal([topics.commands, topics.runs, topics.checkpoints])
    verdict = verify(runs, operator.runs, operator.sent, read_effects(effects), app)
    figures = {
        "faults": faults,
        "recovery_s_max": max(f["recovery_s"] for f in faults),
        "projection_tables_differing": differing,
        **figures_of(operator, workers, verdict, began),
    }
    report(chaos, figures, chaos_report)
    verdict.check()
    assert differing == []
    assert not workers.crashes()
