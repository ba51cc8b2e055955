"""Any client, any partitioner, on real Kafka. A run started the Java way (murmur2 of the run
id) gets its decision from librdkafka (confluent-kafka on its default settings: CRC32 of the
key), which lands on another partition; another run is started and decided with key-less
records (a random partition each). Two worker processes forward each command to its run's
partition and both runs complete, each refund running exactly once. Before forwarding, the
first decision was refused as "unknown run". Three processes: two workers, one client."""

from __future__ import annotations

import json
import os
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from consumers.publisher import CommandPublisher
from engine.log.kafka import KafkaLog
from engine.log.kafka.connection import KafkaSecurity
from engine.log.kafka.security import librdkafka_config
from engine.log.port import Topics, partition_for
from engine.runtime.step import FORWARDED_FROM
from engine.trust.jws import SigningKey
from engine.trust.keys import create_key
from engine.trust.signing import proof_header
from events.codec import Codec
from events.commands import StartRun, SubmitDecision
from events.notices import ApprovalRequested
from events.run_events import RunCompleted
from tests.helpers import eventually
from tests.processes import Processes

pytestmark = pytest.mark.kafka
PARTITIONS = 4


@pytest.fixture
def processes(
    kafka_bootstrap: str, pg_url: str, fresh_prefix: str, tmp_path: Path
) -> Iterator[Processes]:
    env = {
        **os.environ,
        # The session's PostgreSQL: the workers would otherwise start an embedded one in
        # the home, and it outlives the test (it is meant to outlive the command).
        "COUNTERSIGN_DATABASE_URL": pg_url,
        "COUNTERSIGN_LOG": "kafka",
        "COUNTERSIGN_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "COUNTERSIGN_TOPIC_PREFIX": fresh_prefix,
        "COUNTERSIGN_PARTITIONS": str(PARTITIONS),
        "COUNTERSIGN_WORKER_GROUP": f"{fresh_prefix}.workers",
        "COUNTERSIGN_EFFECTS_FILE": str(tmp_path / "effects.jsonl"),
        "COUNTERSIGN_LOG_FORMAT": "json",
        "COUNTERSIGN_HOME": str(tmp_path / "home"),
    }
    procs = Processes(env, tmp_path)
    try:
        yield procs
    finally:
        procs.end_all()


def _run_id_librdkafka_misplaces() -> str:
    """A run id that librdkafka's CRC32 puts on another partition than Java's murmur2."""
    while True:
        run_id = f"rd-{uuid.uuid4()}"
        if zlib.crc32(run_id.encode()) % PARTITIONS != partition_for(run_id, PARTITIONS):
            return run_id


class Librdkafka:
    """Publishes commands the way a non-Java system would: confluent-kafka, default settings,
    signing the exact bytes it publishes (docs/signing.md)."""

    def __init__(self, bootstrap: str, topic: str, key: SigningKey) -> None:
        # Default settings but the connection's: TLS/SASL from COUNTERSIGN_KAFKA_* if any.
        security = librdkafka_config(KafkaSecurity.from_env(os.environ))
        self._producer = Producer({"bootstrap.servers": bootstrap, **security})
        self._topic = topic
        self._codec = Codec()
        self._key = key

    def send(self, command: StartRun | SubmitDecision, *, keyed: bool) -> None:
        key = command.run_id.encode() if keyed else None
        value = self._codec.encode(command)
        proof = proof_header(value, command, self._key, now_s=int(time.time()))
        self._producer.produce(self._topic, value=value, key=key, headers=[proof])
        assert self._producer.flush(30) == 0


async def _wait(log: KafkaLog, topics: Topics, run_id: str, cls: type) -> object:
    codec = Codec()

    async def found() -> object | None:
        topic = topics.approvals if cls is ApprovalRequested else topics.runs
        async for record in log.read(topic, partition_for(run_id, PARTITIONS), 0):
            message = codec.decode(record.value)
            payload = getattr(message, "payload", message)
            if getattr(message, "run_id", None) == run_id and isinstance(payload, cls):
                return payload
        return None

    return await eventually(found, timeout=90, interval=0.3, message=f"{cls.__name__} {run_id}")


async def test_decisions_from_librdkafka_keyed_and_key_less_resume_runs(
    processes: Processes, kafka_bootstrap: str, fresh_prefix: str, tmp_path: Path
) -> None:
    topics = Topics(fresh_prefix)
    log = KafkaLog(kafka_bootstrap, client_id="any-client-test")
    await log.start()
    await log.ensure_topics(topics, PARTITIONS)
    # The deployment trusts the client's issuer (the workers on Kafka refuse unsigned).
    signer = create_key(tmp_path / "home", issuer="any-client").key
    processes.spawn("worker-1", "worker", "--app", "examples.refund:app")
    processes.spawn("worker-2", "worker", "--app", "examples.refund:app")
    client = Librdkafka(kafka_bootstrap, topics.commands, signer)
    java_way = CommandPublisher(log, topics, Codec(), key=signer)
    runs = {_run_id_librdkafka_misplaces(): True, f"nokey-{uuid.uuid4()}": False}
    try:
        for run_id, keyed in runs.items():
            start = StartRun(
                command_id=str(uuid.uuid4()),
                run_id=run_id,
                agent="refund",
                input={"order_id": "A-17", "amount": 2400},
                requested_by="bob",
                issued_at_us=1,
            )
            if keyed:
                await java_way.publish(start)  # murmur2: the run's own partition
            else:
                client.send(start, keyed=False)
        for run_id, keyed in runs.items():
            request = await _wait(log, topics, run_id, ApprovalRequested)
            assert isinstance(request, ApprovalRequested)
            decision = SubmitDecision(
                decision_id=str(uuid.uuid4()),
                run_id=run_id,
                interrupt_id=request.interrupt_id,
                kind="approve",
                decided_by="alice",
                issued_at_us=2,
            )
            client.send(decision, keyed=keyed)
        for run_id in runs:
            await _wait(log, topics, run_id, RunCompleted)

        forwarded = [
            record
            for partition in range(PARTITIONS)
            async for record in log.read(topics.commands, partition, 0)
            if record.header(FORWARDED_FROM) is not None
        ]
        assert forwarded, "librdkafka's partitions differ from the runs': commands were forwarded"
        for record in forwarded:
            command = Codec().decode_command(record.value)
            assert record.partition == partition_for(command.run_id, PARTITIONS)
    finally:
        await log.close()
    effects = [json.loads(line) for line in (tmp_path / "effects.jsonl").read_text().splitlines()]
    for run_id in runs:
        refunds = [e for e in effects if e["tool"] == "refund" and e["key"].startswith(run_id)]
        assert len(refunds) == 1, (run_id, effects)
