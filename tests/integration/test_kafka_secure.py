"""The broker knows its clients: a secure local broker (SASL_SSL with SCRAM-SHA-512, mutual
TLS, the StandardAuthorizer) and one principal per role with exactly its ACLs.

- the walk-through works with the worker, the projector and the publisher (the CLI's `start`
  and `decide`) each under its own principal;
- a client without credentials (aiokafka or librdkafka) can neither read nor write any topic;
- the decision publisher cannot write the runs topic;
- the projector cannot write any topic; it can read the runs and keep its group's offsets.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from countersign import local_kafka
from engine.errors import ConfigurationError, EngineError
from engine.log.kafka import KafkaLog
from engine.log.kafka.connection import Connection, KafkaSecurity
from engine.log.port import Outgoing, Topics
from tests.conftest import _or_fail
from tests.helpers import eventually
from tests.processes import Processes

pytestmark = [pytest.mark.kafka]

ROLES = ("worker", "projector", "publisher", "reader")


@pytest.fixture(scope="module")
async def secure_broker(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[local_kafka.LocalKafka]:
    state_dir = tmp_path_factory.mktemp("secure-kafka")
    started = asyncio.to_thread(local_kafka.start, state_dir, secure=True)
    broker = await _or_fail("could not start the secure local broker", started)
    try:
        yield broker
    finally:
        await asyncio.to_thread(local_kafka.stop, state_dir)


@pytest.fixture
async def topics(secure_broker: local_kafka.LocalKafka, fresh_prefix: str) -> Topics:
    """The deployment's topics, created by the admin, and each role's ACLs on them."""
    topics = Topics(fresh_prefix)
    admin = KafkaLog(secure_broker.connection("admin"), client_id="admin")
    await admin.start()
    try:
        await admin.ensure_topics(topics, 2)
    finally:
        await admin.close()
    await asyncio.to_thread(
        local_kafka.grant,
        secure_broker,
        topics,
        worker_group=f"{fresh_prefix}.workers",
        projector_group=f"{fresh_prefix}.projector",
    )
    return topics


async def attempt_publish(connection: Connection, topic: str) -> BaseException | None:
    """The error publishing one record gave, or None if the log took it."""
    log = KafkaLog(connection, client_id="attempt", connect_timeout_s=8, request_timeout_ms=5000)
    try:
        await log.start()
        await log.publish([Outgoing(topic, "run-1", b"x")])
    except EngineError as error:
        return error
    finally:
        await log.close()
    return None


# -- who may write where -----------------------------------------------------------------------


async def test_the_publisher_writes_commands_and_cannot_write_the_runs_topic(
    secure_broker: local_kafka.LocalKafka, topics: Topics
) -> None:
    publisher = secure_broker.connection("publisher")
    assert await attempt_publish(publisher, topics.commands) is None
    refused = await attempt_publish(publisher, topics.runs)
    assert isinstance(refused, ConfigurationError)
    assert "TopicAuthorizationFailed" in str(refused)


async def test_the_projector_writes_nothing_but_keeps_its_group_offsets(
    secure_broker: local_kafka.LocalKafka, topics: Topics, fresh_prefix: str
) -> None:
    projector = secure_broker.connection("projector")
    for topic in (*topics.all, topics.routing):
        refused = await attempt_publish(projector, topic)
        assert isinstance(refused, ConfigurationError), topic
    worker = KafkaLog(secure_broker.connection("worker"), client_id="w")
    await worker.start()
    await worker.publish([Outgoing(topics.runs, "run-1", b"event", partition=0)])
    await worker.close()

    log = KafkaLog(secure_broker.connection("projector"), client_id="p", heartbeat_interval_ms=250)
    await log.start()
    try:
        listener = Assigned()
        member = log.member(f"{fresh_prefix}.projector", topics.runs, listener)
        await member.start()

        async def polled() -> list[object]:
            return list(await member.poll(0.5))

        records = await eventually(polled, timeout=30, message="the projector reads the runs")
        assert records[0].value == b"event"  # type: ignore[attr-defined]
        assert await member.commit(0, [], records[0].offset + 1) == []  # type: ignore[attr-defined]
        with pytest.raises(ConfigurationError, match="TopicAuthorizationFailed"):
            await member.commit(0, [Outgoing(topics.runs, "run-1", b"forged", partition=0)], 2)
        await member.stop()
    finally:
        await log.close()


class Assigned:
    async def on_assigned(self, partitions: frozenset[int]) -> dict[int, int]:
        return {}

    async def on_revoked(self, partitions: frozenset[int]) -> None:
        return None


async def test_a_client_without_credentials_reads_and_writes_nothing(
    secure_broker: local_kafka.LocalKafka, topics: Topics
) -> None:
    ca = str(secure_broker.material.ca_file)  # type: ignore[union-attr]
    anonymous = [
        Connection(secure_broker.bootstrap),  # plaintext to the SASL_SSL listener
        Connection(secure_broker.bootstrap, KafkaSecurity(protocol="SSL", ca_file=ca)),
        Connection(secure_broker.mtls_bootstrap, KafkaSecurity(protocol="SSL", ca_file=ca)),
    ]
    wrong = KafkaSecurity(
        protocol="SASL_SSL", username="worker", password="not-the-password", ca_file=ca
    )
    anonymous.append(Connection(secure_broker.bootstrap, wrong))
    attempts = [attempt_publish(connection, topics.commands) for connection in anonymous]
    librdkafka = [
        asyncio.to_thread(librdkafka_gets_nothing, secure_broker, topics, config)
        for config in (
            {},
            {"security.protocol": "SSL", "ssl.ca.location": ca},
            {**wrong.librdkafka(), "sasl.password": "not-the-password"},
        )
    ]
    outcomes = await asyncio.gather(*attempts, *librdkafka)
    # None gets past the handshake: no topic is reached, by either client.
    assert all(isinstance(error, EngineError) for error in outcomes[: len(attempts)]), outcomes
    assert all(outcomes[len(attempts) :]), outcomes


def librdkafka_gets_nothing(
    broker: local_kafka.LocalKafka, topics: Topics, security: dict[str, str]
) -> bool:
    """An independent client (librdkafka) tries to write and to read; both must fail."""
    common = {"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 3000, **security}
    producer = Producer({**common, "message.timeout.ms": 4000})
    errors: list[object] = []
    producer.produce(topics.commands, b"x", on_delivery=lambda error, _: errors.append(error))
    producer.flush(10)
    consumer = Consumer({**common, "group.id": "anonymous", "auto.offset.reset": "earliest"})
    consumer.subscribe([topics.runs, topics.commands])
    read = [consumer.poll(1.0) for _ in range(4)]
    consumer.close()
    delivered = any(error is None for error in errors)
    got = [m for m in read if m is not None and m.error() is None]
    return not delivered and errors != [] and got == []


# -- the walk-through, each process under its own principal ----------------------------------


@pytest.fixture
def role_env(
    secure_broker: local_kafka.LocalKafka, topics: Topics, pg_url: str, tmp_path: Path
) -> dict[str, dict[str, str]]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}
    base |= {
        "COUNTERSIGN_LOG": "kafka",
        "COUNTERSIGN_DATABASE_URL": pg_url,
        "COUNTERSIGN_TOPIC_PREFIX": topics.prefix,
        "COUNTERSIGN_WORKER_GROUP": f"{topics.prefix}.workers",
        "COUNTERSIGN_PROJECTOR_GROUP": f"{topics.prefix}.projector",
        "COUNTERSIGN_EFFECTS_FILE": str(tmp_path / "effects.jsonl"),
        "COUNTERSIGN_LOG_FORMAT": "json",
        "COUNTERSIGN_HOME": str(tmp_path / "home"),
        "COUNTERSIGN_PARTITIONS": "2",
    }
    material = secure_broker.material
    assert material is not None
    return {role: base | env_file(material.dir / f"{role}.env") for role in ROLES}


def env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


async def test_the_walk_through_runs_with_one_principal_per_role(
    role_env: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    runs = {role: Processes(env, tmp_path) for role, env in role_env.items()}
    try:
        runs["worker"].spawn("worker", "worker", "--app", "examples.refund:app")
        runs["projector"].spawn("projector", "projector")

        def registered() -> bool:  # `start` refuses an agent no worker serves yet
            return any("agents_registered" in line for line in runs["worker"].log_lines("worker"))

        await eventually(registered, timeout=90, interval=0.5, message="the worker registered")
        publisher = runs["publisher"]
        run_id = publisher.run(
            "start", "refund", "--input", '{"order_id": "S-1", "amount": 2400}', "--by", "bob"
        ).stdout.strip()

        async def waiting() -> str:
            inbox = json.loads(publisher.run("inbox", "--json").stdout)["items"]
            found = [row for row in inbox if row["run_id"] == run_id]
            assert found, inbox
            return str(found[0]["interrupt_id"])

        interrupt = await eventually(waiting, timeout=90, interval=0.5, message="in the inbox")
        decided = publisher.run(
            "decide", run_id, interrupt, "approve", "--by", "alice", "--wait", "90", "--json"
        )
        assert json.loads(decided.stdout)["accepted"] is True

        async def completed() -> bool:
            shown = json.loads(publisher.run("runs", "show", run_id, "--json").stdout)
            return bool(shown["run"]["status"] == "completed")

        await eventually(completed, timeout=60, interval=0.5, message="the run completed")
    finally:
        for procs in runs.values():
            procs.end_all()
    worker_log = "\n".join(runs["worker"].log_lines("worker"))
    assert "kafka_topics_checked" in worker_log
