"""The topics a deployment needs on Kafka, and the check of what a cluster has. Pure.

`plan` says exactly which topics to create, with which partition count, replication factor
and settings; `check` compares a described cluster (`Observed`) with what the engine's
promises need and returns the problems, each saying what to change. Refused (`fatal`):
- the commands, runs and checkpoints topics are not co-partitioned, or their count is not
  the partition map's (partitions added without `countersign topics repartition`);
- a setting that would delete the runs log (compaction, finite retention) or drop commands
  before they are read (compaction);
- a replication that cannot keep an acknowledged event: one replica (unless the development
  setting allows it), `min.insync.replicas` above the replication factor (nothing is ever
  acknowledged) or below 2 with 3 or more replicas, unclean leader election enabled.
Warned: two replicas with `min.insync.replicas=1`, checkpoints not compacted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from engine.log.port import Topics
from engine.log.routing import PartitionMap

__all__ = [
    "DEVELOPMENT_RACK",
    "INTERNAL_TOPICS",
    "Observed",
    "ObservedTopic",
    "Problem",
    "Replication",
    "TopicSpec",
    "broker_settings",
    "check",
    "plan",
    "topic_configs",
]

DEVELOPMENT_RACK = "countersign-development"
"""`broker.rack` of the brokers `countersign kafka up` starts: a cluster whose every broker
says so is a development cluster, where one replica is allowed (with a warning)."""

INTERNAL_TOPICS = ("__consumer_offsets", "__transaction_state")
"""Kafka's own topics that exactly-once depends on: group positions and transaction state."""

_FOREVER = "-1"
_WEEK_MS = str(7 * 24 * 3600 * 1000)


@dataclass(frozen=True, slots=True)
class Replication:
    """How many copies of each partition, and how many must have a write before it counts."""

    factor: int
    min_insync: int

    def __post_init__(self) -> None:
        if self.factor < 1 or self.min_insync < 1:
            raise ValueError(f"replication {self.factor}, min in-sync {self.min_insync}: use ≥ 1")

    @classmethod
    def for_cluster(
        cls, brokers: int, *, factor: int | None = None, min_insync: int | None = None
    ) -> Replication:
        """The defaults: RF = min(3, brokers), min ISR = RF - 1 when RF > 1; either may be set."""
        chosen = factor if factor is not None else max(1, min(3, brokers))
        return cls(chosen, min_insync if min_insync is not None else max(1, chosen - 1))


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str]
    purpose: str


def topic_configs(topics: Topics) -> list[tuple[frozenset[str], dict[str, str]]]:
    """Settings by kind of topic (replication aside). The runs topic is the source of truth:
    it never expires and is never compacted. Commands are never compacted (a run's earlier
    commands would go). Checkpoints keep only the newest record per key (partition); short
    segments let the cleaner drop old ones soon (it never cleans the active segment). Dead
    letters are kept until someone acts on them. The routing topic is a short history. The run
    index keeps one record per run ever started, the agents topic one per agent version served:
    compacted only (compaction keeps every key's newest record), never deleted by retention."""
    kept = {"cleanup.policy": "delete", "retention.ms": _FOREVER, "retention.bytes": _FOREVER}
    week = {"cleanup.policy": "delete", "retention.ms": _WEEK_MS}
    return [
        # The anchors are the audit's outside proof (docs/anchors.md): kept like the runs.
        (frozenset({topics.runs, topics.anchors}), kept),
        (frozenset({topics.commands, topics.approvals}), week),
        (frozenset({topics.dlq, topics.routing}), kept),
        (
            frozenset({topics.checkpoints}),
            {
                "cleanup.policy": "compact",
                "segment.ms": str(15 * 60 * 1000),
                "min.cleanable.dirty.ratio": "0.5",
            },
        ),
        (frozenset({topics.index, topics.agents}), {"cleanup.policy": "compact"}),
    ]


_PURPOSES = {
    "commands": "StartRun / SubmitDecision / CancelRun from other systems (key = run id)",
    "runs": "every run's events: the source of truth, kept forever",
    "approvals": "approval requests and decision outcomes for notifiers and inboxes",
    "dlq": "dead letters: input the engine refused, with the reason",
    "checkpoints": "restore checkpoints, one per runs partition (compacted)",
    "routing": "the partition map: partition counts over time (see repartitioning)",
    "index": "every run id each runs partition ever started (compacted: a run starts once)",
    "agents": "what each worker serves, one record per agent version (compacted)",
    "anchors": "signed chain-head anchors of each runs partition: never compacted or deleted",
}


def plan(topics: Topics, partitions: int, replication: Replication) -> list[TopicSpec]:
    """Every topic a deployment needs, with its exact settings."""
    safety = {
        "min.insync.replicas": str(replication.min_insync),
        "unclean.leader.election.enable": "false",
    }
    by_name = {name: config for names, config in topic_configs(topics) for name in names}
    return [
        TopicSpec(
            name=name,
            partitions=1 if name == topics.routing else partitions,
            replication_factor=replication.factor,
            configs={**by_name[name], **safety},
            purpose=_PURPOSES[name.removeprefix(f"{topics.prefix}.")],
        )
        for name in (*topics.all, topics.routing)
    ]


def broker_settings(replication: Replication) -> dict[str, str]:
    """Broker settings the engine relies on: Kafka's own topics (group positions, transaction
    state) replicated like ours, and no unclean election anywhere."""
    return {
        "offsets.topic.replication.factor": str(replication.factor),
        "transaction.state.log.replication.factor": str(replication.factor),
        "transaction.state.log.min.isr": str(replication.min_insync),
        "default.replication.factor": str(replication.factor),
        "min.insync.replicas": str(replication.min_insync),
        "unclean.leader.election.enable": "false",
        "auto.create.topics.enable": "false",
    }


@dataclass(frozen=True, slots=True)
class ObservedTopic:
    """A topic as the cluster describes it."""

    name: str
    partitions: int
    replicas: int
    """The smallest replica count of any of its partitions."""
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Observed:
    brokers: int
    topics: Mapping[str, ObservedTopic]
    development: bool = False
    """Every broker's rack is DEVELOPMENT_RACK (a cluster `countersign kafka up` started)."""


@dataclass(frozen=True, slots=True)
class Problem:
    topic: str
    message: str
    fatal: bool = True

    def __str__(self) -> str:
        return f"{self.topic}: {self.message}"


def check(
    topics: Topics,
    observed: Observed,
    *,
    partition_map: PartitionMap | None = None,
    replication: Replication | None = None,
    allow_single_replica: bool = False,
) -> list[Problem]:
    """What stops this cluster from keeping the engine's promises (see the module docstring).
    `replication`: the configured one, if any (topics below it are refused)."""
    problems = _co_partitioning(topics, observed, partition_map)
    problems += _retention(topics, observed)
    single_ok = allow_single_replica or observed.development
    for name in (*topics.all, topics.routing, *INTERNAL_TOPICS):
        topic = observed.topics.get(name)
        if topic is not None:
            problems += _replication(topic, replication, single_ok)
    return problems


def _co_partitioning(
    topics: Topics, observed: Observed, partition_map: PartitionMap | None
) -> list[Problem]:
    problems = [
        Problem(name, "missing: create it with `countersign topics apply` (or as planned)")
        for name in topics.all
        if name not in observed.topics
    ]
    present = [t for t in (observed.topics.get(n) for n in _paired(topics)) if t is not None]
    if len({t.partitions for t in present}) > 1:
        listed = ", ".join(f"{t.name} has {t.partitions}" for t in present)
        problems.append(
            Problem(
                topics.commands,
                f"not co-partitioned ({listed}): a run's commands must reach the worker that "
                "owns its events; give them one partition count with `countersign topics "
                "repartition --partitions N`",
            )
        )
    commands = observed.topics.get(topics.commands)
    if partition_map and commands and commands.partitions != partition_map.partitions:
        problems.append(
            Problem(
                topics.commands,
                f"has {commands.partitions} partitions but the partition map says "
                f"{partition_map.partitions} ({partition_map.encode().decode()}): partitions "
                "were added without recording them, so waiting runs would lose their commands; "
                f"run `countersign topics repartition --partitions {commands.partitions}`",
            )
        )
    return problems


def _paired(topics: Topics) -> tuple[str, ...]:
    return (topics.commands, topics.runs, topics.checkpoints, topics.index, topics.anchors)


def _retention(topics: Topics, observed: Observed) -> list[Problem]:
    problems: list[Problem] = []
    runs = observed.topics.get(topics.runs)
    if runs is not None:
        configs = runs.configs
        if "compact" in configs.get("cleanup.policy", "delete"):
            problems.append(
                Problem(
                    runs.name,
                    "is compacted, which deletes a run's earlier events: set cleanup.policy=delete",
                )
            )
        for name in ("retention.ms", "retention.bytes"):
            if configs.get(name, _FOREVER) != _FOREVER:
                problems.append(
                    Problem(
                        runs.name,
                        f"{name}={configs[name]} would delete the runs log "
                        f"(the source of truth): set {name}=-1",
                    )
                )
    commands = observed.topics.get(topics.commands)
    if commands is not None and "compact" in commands.configs.get("cleanup.policy", "delete"):
        problems.append(
            Problem(
                commands.name,
                "is compacted, which drops a run's earlier commands before "
                "a worker reads them: set cleanup.policy=delete",
            )
        )
    index = observed.topics.get(topics.index)
    if index is not None and index.configs.get("cleanup.policy", "delete") != "compact":
        problems.append(
            Problem(
                index.name,
                f"cleanup.policy={index.configs.get('cleanup.policy', 'delete')} would delete "
                "run ids from the run index, and a run id could start twice: set "
                "cleanup.policy=compact",
            )
        )
    checkpoints = observed.topics.get(topics.checkpoints)
    if checkpoints is not None and "compact" not in checkpoints.configs.get("cleanup.policy", ""):
        problems.append(
            Problem(
                checkpoints.name,
                "is not compacted: old checkpoints pile up (and if they "
                "expire, restores read from the start); set cleanup.policy=compact",
                fatal=False,
            )
        )
    return problems


def _replication(
    topic: ObservedTopic, configured: Replication | None, allow_single_replica: bool
) -> list[Problem]:
    factor = topic.replicas
    min_insync = int(topic.configs.get("min.insync.replicas", "1"))
    problems: list[Problem] = []
    if topic.configs.get("unclean.leader.election.enable") == "true":
        problems.append(
            Problem(
                topic.name,
                "unclean leader election is on: a lagging replica may become "
                "leader and drop acknowledged events; set unclean.leader.election.enable=false",
            )
        )
    if configured is not None and factor < configured.factor:
        problems.append(
            Problem(
                topic.name,
                f"has {factor} replicas, {configured.factor} configured "
                "(COUNTERSIGN_KAFKA_REPLICATION_FACTOR): reassign its replicas",
            )
        )
    if factor == 1:
        problems.append(
            Problem(
                topic.name,
                "has one replica: losing that broker loses acknowledged events; recreate it "
                "with replication factor 3 (allowed for development only: "
                "COUNTERSIGN_KAFKA_ALLOW_SINGLE_REPLICA=1, or a broker started by "
                "`countersign kafka up`)",
                fatal=not allow_single_replica,
            )
        )
        return problems
    if min_insync > factor:
        problems.append(
            Problem(
                topic.name,
                f"min.insync.replicas={min_insync} is above its {factor} replicas: "
                f"no write can be acknowledged; set min.insync.replicas={factor - 1}",
            )
        )
    elif min_insync < 2 and factor >= 3:
        problems.append(
            Problem(
                topic.name,
                f"min.insync.replicas={min_insync} with {factor} replicas: an "
                "acknowledged event may exist on one broker only; set min.insync.replicas=2",
            )
        )
    elif min_insync < 2:
        problems.append(
            Problem(
                topic.name,
                "two replicas with min.insync.replicas=1: an acknowledged event "
                "may exist on one broker only while the other is behind; a third broker "
                "(RF 3, min ISR 2) keeps every acknowledged event",
                fatal=False,
            )
        )
    return problems
