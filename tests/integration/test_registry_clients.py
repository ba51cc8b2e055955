"""Schema-registry clients against a real registry (Apicurio 3.0.9, Confluent API) with
confluent-kafka's SchemaRegistryClient and AvroSerializer as the publisher: our adapter
fetches the writer schema by id and the codec reads the decision; a newer publisher's schema
resolves; an incompatible one is refused; and end to end over Kafka, a worker accepts a
registry-framed SubmitDecision and the paused run completes."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from engine.agent.app import App
from engine.agent.context import RunContext
from engine.agent.policies import Always
from engine.log.kafka import KafkaLog
from engine.log.port import Topics
from engine.log.schema_registry import RegistrySettings, SchemaRegistry
from events.catalog import COMMANDS
from events.codec import Codec
from events.commands import SubmitDecision
from events.errors import SchemaRefused
from events.json import Json, JsonObject
from events.run_events import RunCompleted, RunEventPayload
from tests import release2
from tests.approvals_harness import Clock, Harness

app = App("registry")


@app.tool(policy=Always(risk="medium"))
async def pay(amount: float) -> Json:
    return {"paid": amount}


@app.agent("pay")
async def pay_agent(ctx: RunContext, input: JsonObject) -> Json:
    return (await ctx.tool("pay", {"amount": input["amount"]})).value


DECISION_NAME = f"{COMMANDS}.SubmitDecision"
OURS = Codec().catalog.version_of(DECISION_NAME).raw


def _record(decision: SubmitDecision) -> dict[str, Any]:
    """The decision as the Avro record a foreign publisher writes (JSON fields as JSON text)."""
    record = {f.name: getattr(decision, f.name) for f in dataclasses.fields(decision)}
    for name in ("edited_args", "response"):
        record[name] = json.dumps(record[name])
    return record


def _serialize(url: str, schema: dict[str, Any], record: dict[str, Any], topic: str) -> bytes:
    client = SchemaRegistryClient({"url": url})
    serializer = AvroSerializer(client, json.dumps(schema))
    data: bytes = serializer(record, SerializationContext(topic, MessageField.VALUE))
    return data


def _decision(**changes: Any) -> SubmitDecision:
    fields: dict[str, Any] = {
        "decision_id": f"dec-{uuid.uuid4()}",
        "run_id": "run-1",
        "interrupt_id": "int-1",
        "kind": "edit",
        "decided_by": "bob",
        "issued_at_us": 1_700_000_000_000_000,
        "edited_args": {"amount": 12},
    }
    return SubmitDecision(**{**fields, **changes})


async def _read(url: str, data: bytes, codec: Codec | None = None) -> Any:
    codec = codec or Codec(registry_format=True)
    adapter = SchemaRegistry(codec, RegistrySettings(url))
    try:
        await adapter.prepare([data])
    finally:
        await adapter.close()
    return codec.decode_command(data)


async def test_a_decision_serialized_by_confluent_kafka_is_read(registry_url: str) -> None:
    decision = _decision()
    data = _serialize(registry_url, OURS, _record(decision), f"t-{uuid.uuid4()}")

    assert data[0] == 0  # Confluent framing: magic 0, then the id the registry gave
    assert await _read(registry_url, data) == decision


async def test_a_newer_publishers_decision_resolves_to_todays_reader(
    registry_url: str, tmp_path: Path
) -> None:
    newer_schema = release2.release2_catalog(tmp_path).version_of(DECISION_NAME).raw
    decision = _decision()
    record = {**_record(decision), "channel": "slack"}
    data = _serialize(registry_url, newer_schema, record, f"t-{uuid.uuid4()}")

    assert await _read(registry_url, data) == decision


async def test_a_schema_todays_reader_cannot_read_is_refused(registry_url: str) -> None:
    # Apicurio's default compatibility is NONE: it registers what the publisher asks.
    wrong = json.loads(json.dumps(OURS))
    wrong["fields"] = [f for f in wrong["fields"] if f["name"] != "kind"]
    record = {k: v for k, v in _record(_decision()).items() if k != "kind"}
    data = _serialize(registry_url, wrong, record, f"t-{uuid.uuid4()}")

    with pytest.raises(SchemaRefused, match="reader_field_missing_default_value"):
        await _read(registry_url, data)


@pytest.fixture
async def harness(
    kafka_bootstrap: str, registry_url: str, fresh_prefix: str
) -> AsyncIterator[Harness]:
    event_log = KafkaLog(kafka_bootstrap, client_id=fresh_prefix, heartbeat_interval_ms=250)
    await event_log.start()
    topics = Topics(fresh_prefix)
    await event_log.ensure_topics(topics, 2)
    codec = Codec(registry_format=True)
    registry = SchemaRegistry(codec, RegistrySettings(registry_url))
    h = Harness(event_log, topics, timeout=60.0, codec=codec, schema_registry=registry)
    try:
        yield h
    finally:
        await h.halt_all()
        await registry.close()
        await event_log.close()


def _completed(payloads: list[RunEventPayload]) -> bool:
    return any(isinstance(p, RunCompleted) for p in payloads)


@pytest.mark.kafka
async def test_a_worker_accepts_a_registry_framed_decision_and_the_run_resumes(
    harness: Harness, kafka_bootstrap: str, registry_url: str
) -> None:
    await harness.start_worker(app, Clock())
    run_id = await harness.publisher.start_run("pay", {"amount": 12.5}, requested_by="alice")
    [raised] = await harness.open_interrupts(run_id, 1)
    decision = _decision(
        run_id=run_id,
        interrupt_id=raised.interrupt_id,
        kind="approve",
        decided_by="bob",
        edited_args=None,
        digest=raised.request.digest,
    )
    topic = harness.topics.commands
    data = _serialize(registry_url, OURS, _record(decision), topic)

    # librdkafka's own partitioner: the worker forwards it to the run's partition if needed.
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    producer.produce(topic, value=data, key=run_id.encode())
    assert producer.flush(30) == 0

    await harness.wait_for(run_id, _completed, "the run resumes on the registry-framed decision")
    assert await harness.dead_letters() == []
