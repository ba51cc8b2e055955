"""Repartitioning without losing runs: partitions are added while runs wait for decisions.

Strategy (docs/kafka-production.md#repartitioning): a run keeps the partition it started on;
`countersign topics repartition` grows every co-partitioned topic and then records the new
era in the partition map; commands walk a run's candidate partitions
(`engine.log.routing.route`) until they reach the one that knows it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from countersign import kafka_topics
from countersign.settings import Settings
from engine.log.kafka import KafkaLog
from engine.log.kafka import admin as kafka_admin
from engine.log.port import Topics
from engine.log.routing import PartitionMap
from engine.log.routing_log import load_partition_map
from events.envelope import EventEnvelope
from events.run_events import InterruptRaised
from examples.chaos import app
from tests.faults.conftest import Broker
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

pytestmark = [pytest.mark.faults, pytest.mark.kafka]

GROWN = PARTITIONS * 2


def settings_for(prefix: str, bootstrap: str) -> Settings:
    return Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix, partitions=PARTITIONS)


async def test_repartition_grows_every_topic_and_records_the_era(
    fault_broker: Broker, client: KafkaLog, fresh_prefix: str
) -> None:
    topics = Topics(fresh_prefix)
    settings = settings_for(fresh_prefix, fault_broker.bootstrap)
    assert await load_partition_map(client, topics) == PartitionMap.single(PARTITIONS)

    before, after = await kafka_topics.repartition(settings, client, GROWN)
    again = await kafka_topics.repartition(settings, client, GROWN)  # idempotent

    assert (before.eras, after.eras) == ((PARTITIONS,), (PARTITIONS, GROWN))
    assert again == (after, after)
    counts = await kafka_admin.partition_counts(client.connection, [*topics.all, topics.routing])
    assert counts == {**dict.fromkeys(topics.all, GROWN), topics.routing: 1}
    assert await load_partition_map(client, topics) == after
    assert [p for p in await kafka_topics.inspect_topics(settings, client) if p.fatal] == []


async def test_partitions_added_behind_the_maps_back_are_refused(
    fault_broker: Broker, client: KafkaLog, fresh_prefix: str
) -> None:
    topics = Topics(fresh_prefix)
    settings = settings_for(fresh_prefix, fault_broker.bootstrap)
    await kafka_admin.add_partitions(client.connection, dict.fromkeys(topics.all, GROWN))

    problems = [p for p in await kafka_topics.inspect_topics(settings, client) if p.fatal]

    assert any(f"topics repartition --partitions {GROWN}" in str(p) for p in problems), problems


async def test_runs_waiting_across_a_repartition_get_their_decisions(
    fault_broker: Broker,
    client: KafkaLog,
    fresh_prefix: str,
    effects: Path,
    tmp_path: Path,
    chaos_report: Callable[[str], None],
) -> None:
    chaos = Chaos.from_env("repartition", short_runs=12)
    topics = Topics(fresh_prefix)
    operator = Operator(client, topics, effects, chaos.rng())
    release = asyncio.Event()

    async def hold(op: Operator, raised: EventEnvelope, interrupt: InterruptRaised) -> None:
        await release.wait()  # runs wait across the repartition
        await Operator.decide_once(op, raised, interrupt)

    operator.plan = hold
    old = Workers(worker_env(fault_broker.bootstrap, fresh_prefix, effects), tmp_path / "old")
    new = Workers(
        worker_env(
            fault_broker.bootstrap, fresh_prefix, effects, COUNTERSIGN_PARTITIONS=str(GROWN)
        ),
        tmp_path / "new",
    )
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    began = time.monotonic()
    await operator.start()
    try:
        for _ in range(2):
            old.spawn()
        await operator.start_runs(chaos.runs)

        def all_waiting() -> bool:
            return len(waiting(operator)) == chaos.runs

        await operator.until(all_waiting, 120, "every run waits for a decision")
        await kafka_topics.repartition(settings_for(fresh_prefix, fault_broker.bootstrap),
                                       client, GROWN)  # fmt: skip
        for proc in old.alive:  # a rolling restart with COUNTERSIGN_PARTITIONS=GROWN
            await old.leave(proc)
            new.spawn()
        await operator.start(GROWN)
        await operator.start_runs(chaos.runs // 2)  # new runs, in the new era
        release.set()
        await operator.until(operator.all_done, 60, "every run finished")
    finally:
        await operator.close()
        old.end_all()
        new.end_all()
    runs = await read_runs(fault_broker.bootstrap, topics, partitions=GROWN)
    verdict = verify(runs, operator.runs, operator.sent, read_effects(effects), app)
    report(chaos, figures_of(operator, new, verdict, began), chaos_report)
    verdict.check()


def waiting(operator: Operator) -> set[str]:
    return {
        run_id
        for run_id, events in operator.histories.items()
        if any(isinstance(event.payload, InterruptRaised) for event in events)
    }
