"""The Kafka topic plan and its check (engine.log.kafka.plan), and the Kafka settings."""

from __future__ import annotations

import subprocess
import sys

import pytest

from countersign.kafka_settings import KafkaSettings
from engine.log.kafka.connection import KafkaSecurity
from engine.log.kafka.plan import (
    Observed,
    ObservedTopic,
    Problem,
    Replication,
    broker_settings,
    check,
    plan,
)
from engine.log.port import Topics
from engine.log.routing import PartitionMap

TOPICS = Topics("t")
RF3 = Replication(3, 2)


def healthy(partitions: int = 6, replication: Replication = RF3) -> dict[str, ObservedTopic]:
    """The cluster exactly as planned."""
    return {
        spec.name: ObservedTopic(
            spec.name, spec.partitions, spec.replication_factor, dict(spec.configs)
        )
        for spec in plan(TOPICS, partitions, replication)
    }


def changed(topics: dict[str, ObservedTopic], name: str, **configs: str) -> Observed:
    topic = topics[name]
    topics = {**topics, name: ObservedTopic(name, topic.partitions, topic.replicas, {
        **topic.configs, **configs})}  # fmt: skip
    return Observed(brokers=3, topics=topics)


def fatal(problems: list[Problem]) -> list[str]:
    return [str(problem) for problem in problems if problem.fatal]


# -- the plan --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("brokers", "factor", "min_insync"), [(1, 1, 1), (2, 2, 1), (3, 3, 2), (5, 3, 2)]
)
def test_default_replication_follows_the_cluster_size(
    brokers: int, factor: int, min_insync: int
) -> None:
    assert Replication.for_cluster(brokers) == Replication(factor, min_insync)


def test_configured_replication_wins() -> None:
    assert Replication.for_cluster(5, factor=5) == Replication(5, 4)
    assert Replication.for_cluster(5, factor=5, min_insync=3) == Replication(5, 3)


def test_the_plan_keeps_runs_forever_and_never_elects_an_unclean_leader() -> None:
    specs = {spec.name: spec for spec in plan(TOPICS, 6, RF3)}
    assert set(specs) == {*TOPICS.all, TOPICS.routing}
    runs = specs[TOPICS.runs].configs
    assert (runs["cleanup.policy"], runs["retention.ms"], runs["retention.bytes"]) == (
        "delete",
        "-1",
        "-1",
    )
    assert specs[TOPICS.checkpoints].configs["cleanup.policy"] == "compact"
    assert specs[TOPICS.routing].partitions == 1
    for spec in specs.values():
        assert spec.replication_factor == 3
        assert spec.configs["min.insync.replicas"] == "2"
        assert spec.configs["unclean.leader.election.enable"] == "false"
    assert broker_settings(RF3)["transaction.state.log.min.isr"] == "2"


def test_the_planned_cluster_passes_its_check() -> None:
    assert check(TOPICS, Observed(3, healthy()), partition_map=PartitionMap.single(6)) == []


# -- the check -------------------------------------------------------------------------------


def test_commands_and_runs_with_different_counts_are_refused() -> None:
    topics = healthy()
    topics[TOPICS.runs] = ObservedTopic(TOPICS.runs, 8, 3, topics[TOPICS.runs].configs)
    problems = fatal(check(TOPICS, Observed(3, topics)))
    assert any("not co-partitioned" in p and "has 8" in p for p in problems), problems


def test_partitions_added_without_recording_them_are_refused() -> None:
    problems = fatal(check(TOPICS, Observed(3, healthy(8)), partition_map=PartitionMap.single(6)))
    assert any("topics repartition --partitions 8" in p for p in problems), problems
    assert check(TOPICS, Observed(3, healthy(8)), partition_map=PartitionMap((6, 8))) == []


@pytest.mark.parametrize(
    ("configs", "says"),
    [
        ({"cleanup.policy": "compact"}, "set cleanup.policy=delete"),
        ({"cleanup.policy": "compact,delete"}, "set cleanup.policy=delete"),
        ({"retention.ms": "604800000"}, "set retention.ms=-1"),
        ({"retention.bytes": "1073741824"}, "set retention.bytes=-1"),
    ],
)
def test_settings_that_would_delete_the_runs_log_are_refused(
    configs: dict[str, str], says: str
) -> None:
    problems = fatal(check(TOPICS, changed(healthy(), TOPICS.runs, **configs)))
    assert any(p.startswith(TOPICS.runs) and says in p for p in problems), problems


def test_compacted_commands_are_refused() -> None:
    problems = fatal(check(TOPICS, changed(healthy(), TOPICS.commands, **{
        "cleanup.policy": "compact"})))  # fmt: skip
    assert any("earlier commands" in p for p in problems), problems


def test_missing_topics_are_named() -> None:
    topics = healthy()
    del topics[TOPICS.dlq]
    assert any("topics apply" in p for p in fatal(check(TOPICS, Observed(3, topics))))


@pytest.mark.parametrize(
    ("factor", "min_insync", "says"),
    [
        (1, 1, "one replica"),
        (3, 1, "set min.insync.replicas=2"),
        (3, 4, "no write can be acknowledged"),
    ],
)
def test_replication_that_cannot_keep_an_acknowledged_event_is_refused(
    factor: int, min_insync: int, says: str
) -> None:
    problems = fatal(check(TOPICS, Observed(3, healthy(replication=Replication(factor, 1)))))
    if min_insync != 1:
        observed = Observed(3, healthy(replication=Replication(factor, min_insync)))
        problems = fatal(check(TOPICS, observed))
    assert len([p for p in problems if says in p]) == len(TOPICS.all) + 1, problems


def test_one_replica_is_allowed_for_development_and_still_said() -> None:
    single = healthy(replication=Replication(1, 1))
    explicit = check(TOPICS, Observed(1, single), allow_single_replica=True)
    marked = check(TOPICS, Observed(1, single, development=True))
    for problems in (explicit, marked):
        assert fatal(problems) == []
        assert {p.topic for p in problems} == {*TOPICS.all, TOPICS.routing}


def test_two_replicas_with_one_in_sync_are_a_warning() -> None:
    problems = check(TOPICS, Observed(2, healthy(replication=Replication(2, 1))))
    assert problems
    assert fatal(problems) == []


def test_unclean_election_and_fewer_replicas_than_configured_are_refused() -> None:
    problems = fatal(check(TOPICS, changed(healthy(), TOPICS.runs, **{
        "unclean.leader.election.enable": "true"})))  # fmt: skip
    assert any("unclean" in p for p in problems)
    short = fatal(check(TOPICS, Observed(3, healthy()), replication=Replication(5, 3)))
    assert any("5 configured" in p for p in short)


def test_kafkas_own_topics_are_checked_too() -> None:
    topics = healthy()
    topics["__transaction_state"] = ObservedTopic(
        "__transaction_state", 50, 1, {"min.insync.replicas": "1"}
    )
    assert any(
        p.startswith("__transaction_state") for p in fatal(check(TOPICS, Observed(3, topics)))
    )


# -- settings ----------------------------------------------------------------------------------


def test_kafka_settings_from_env() -> None:
    settings = KafkaSettings.from_env(
        {
            "COUNTERSIGN_KAFKA_REPLICATION_FACTOR": "3",
            "COUNTERSIGN_KAFKA_MIN_INSYNC_REPLICAS": "2",
            "COUNTERSIGN_KAFKA_ALLOW_SINGLE_REPLICA": "0",
            "COUNTERSIGN_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "COUNTERSIGN_KAFKA_USERNAME": "worker",
            "COUNTERSIGN_KAFKA_PASSWORD": "s3cret",
            "COUNTERSIGN_KAFKA_CA_FILE": "/etc/ca.pem",
            "COUNTERSIGN_KAFKA_ROUTE_KEY": "k" * 32,
        }
    )
    assert settings.route_key == b"k" * 32
    assert (settings.replication_factor, settings.min_insync_replicas) == (3, 2)
    assert settings.security.protocol == "SASL_SSL"
    assert settings.security.mechanism == "SCRAM-SHA-512"
    assert "s3cret" not in repr(settings)
    assert "kkkk" not in repr(settings)
    assert KafkaSecurity.from_env(settings.security.as_env()) == settings.security
    assert settings.security.librdkafka() == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "worker",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/ca.pem",
        "ssl.endpoint.identification.algorithm": "https",
    }


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"COUNTERSIGN_KAFKA_REPLICATION_FACTOR": "0"}, "REPLICATION_FACTOR"),
        ({"COUNTERSIGN_KAFKA_REPLICATION_FACTOR": "three"}, "REPLICATION_FACTOR"),
        ({"COUNTERSIGN_KAFKA_ALLOW_SINGLE_REPLICA": "maybe"}, "ALLOW_SINGLE_REPLICA"),
        ({"COUNTERSIGN_KAFKA_SECURITY_PROTOCOL": "TLS"}, "SECURITY_PROTOCOL"),
        ({"COUNTERSIGN_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "USERNAME"),
        (
            {
                "COUNTERSIGN_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "COUNTERSIGN_KAFKA_SASL_MECHANISM": "PLAIN",
                "COUNTERSIGN_KAFKA_USERNAME": "u",
                "COUNTERSIGN_KAFKA_PASSWORD": "p",
            },
            "SASL_MECHANISM",
        ),
        ({"COUNTERSIGN_KAFKA_CA_FILE": "/ca.pem"}, "does not use TLS"),
        (
            {"COUNTERSIGN_KAFKA_SECURITY_PROTOCOL": "SSL", "COUNTERSIGN_KAFKA_CERT_FILE": "/c"},
            "KEY_FILE",
        ),
        ({"COUNTERSIGN_KAFKA_USERNAME": "x" * 5000}, "USERNAME"),
        ({"COUNTERSIGN_KAFKA_ROUTE_KEY": "too-short"}, "ROUTE_KEY"),
    ],
)
def test_unusable_kafka_settings_are_refused_by_name(env: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        KafkaSettings.from_env(env)


def test_the_plan_and_settings_load_without_aiokafka() -> None:
    probe = (
        "import sys, countersign.kafka_settings, engine.log.kafka.plan, engine.log.routing; "
        "print('aiokafka' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
