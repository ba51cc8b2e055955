"""A deployment's Kafka log built from settings, and the check of its topics (I/O).

`check_topics` is what every worker and projector runs at start (after `bootstrap.open_log`):
it describes the cluster, compares it with the plan (`engine.log.kafka.plan.check`), logs the
warnings and refuses to go on, with a message saying what to change, when a topic cannot keep
the engine's promises. `countersign topics plan|apply|check|repartition` use the same pieces.
"""

from __future__ import annotations

import structlog

from countersign.settings import Settings
from engine.errors import ConfigurationError
from engine.log.kafka import KafkaLog
from engine.log.kafka import admin as kafka_admin
from engine.log.kafka.connection import Connection
from engine.log.kafka.plan import INTERNAL_TOPICS, Problem, Replication, check, plan
from engine.log.port import EventLog, Topics
from engine.log.routing import PartitionMap, RoutingError
from engine.log.routing_log import load_partition_map, record_partition_map

__all__ = [
    "check_topics",
    "configured_replication",
    "connection",
    "inspect_topics",
    "kafka_log",
    "repartition",
]

log = structlog.get_logger(__name__)


def connection(settings: Settings, bootstrap: str) -> Connection:
    return Connection(bootstrap, settings.kafka.security)


def kafka_log(settings: Settings, bootstrap: str, *, client_id: str) -> KafkaLog:
    """The Kafka event log with the deployment's security and replication settings."""
    return KafkaLog(
        connection(settings, bootstrap),
        client_id=client_id,
        replication_factor=settings.kafka.replication_factor,
        min_insync_replicas=settings.kafka.min_insync_replicas,
    )


def configured_replication(settings: Settings) -> Replication | None:
    factor = settings.kafka.replication_factor
    if factor is None:
        return None
    return Replication.for_cluster(0, factor=factor, min_insync=settings.kafka.min_insync_replicas)


async def inspect_topics(settings: Settings, event_log: KafkaLog) -> list[Problem]:
    """Every problem `plan.check` finds with the deployment's topics (fatal or not)."""
    topics = Topics(settings.topic_prefix)
    names = [*topics.all, topics.routing, *INTERNAL_TOPICS]
    observed = await kafka_admin.describe(event_log.connection, names)
    partition_map = await load_partition_map(event_log, topics)
    if observed.development or settings.kafka.allow_single_replica:
        log.warning(
            "kafka_single_replica_allowed",
            reason="development broker (countersign kafka up)"
            if observed.development
            else "COUNTERSIGN_KAFKA_ALLOW_SINGLE_REPLICA=1",
        )
    return check(
        topics,
        observed,
        partition_map=partition_map,
        replication=configured_replication(settings),
        allow_single_replica=settings.kafka.allow_single_replica,
    )


async def check_topics(settings: Settings, event_log: EventLog) -> list[Problem]:
    """Refuse to start on topics that cannot keep the engine's promises (Kafka only; other
    logs pass). Warnings are logged and returned."""
    if not isinstance(event_log, KafkaLog):
        return []
    problems = await inspect_topics(settings, event_log)
    for problem in problems:
        if not problem.fatal:
            log.warning("kafka_topic_warning", topic=problem.topic, problem=problem.message)
    fatal = [problem for problem in problems if problem.fatal]
    if fatal:
        listed = "\n".join(f"  - {problem}" for problem in fatal)
        raise ConfigurationError(
            f"the Kafka topics cannot keep the engine's promises (`countersign topics check` "
            f"shows this again):\n{listed}"
        )
    log.info("kafka_topics_checked", prefix=settings.topic_prefix, warnings=len(problems))
    return problems


async def repartition(
    settings: Settings, event_log: KafkaLog, partitions: int
) -> tuple[PartitionMap, PartitionMap]:
    """Grow every co-partitioned topic to `partitions`, then record the new era in the
    partition map; returns the maps before and after. Safe to run again after an
    interruption: partitions already added are kept, the era is recorded once."""
    topics = Topics(settings.topic_prefix)
    target = event_log.connection
    counts = await kafka_admin.partition_counts(target, [*topics.all, topics.routing])
    missing = [name for name in topics.all if name not in counts]
    if missing:
        raise ConfigurationError(f"topics {missing} are missing: run `countersign topics apply`")
    if topics.routing not in counts:
        replication = await event_log.replication()
        routing = [s for s in plan(topics, partitions, replication) if s.name == topics.routing]
        await kafka_admin.apply(target, routing)
    before = await load_partition_map(event_log, topics)
    if partitions == before.partitions and set(counts.values()) <= {partitions, 1}:
        return before, before  # nothing to do: already there
    try:
        after = before.grown(partitions)
    except RoutingError as error:
        raise ConfigurationError(str(error)) from error
    await kafka_admin.add_partitions(target, {name: partitions for name in topics.all})
    await record_partition_map(event_log, topics, after)
    log.info("partitions_added", before=before.encode().decode(), after=after.encode().decode())
    return before, after
