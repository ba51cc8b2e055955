"""Issue 16's metrics and health, on the real local Kafka and the embedded PostgreSQL: a
worker process and a projector process with `--health-port` are not ready, then ready; a
start and a decision move their counters; the projector's lag drains to zero; the run's
events carry the trace context its start command brought."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumers.publisher import CommandPublisher
from engine.core.trace_context import trace_context
from engine.log.kafka import KafkaLog
from engine.log.port import Outgoing, Topics, partition_for
from engine.trust.jws import SigningKey
from engine.trust.keys import create_key
from engine.trust.signing import proof_header
from events.codec import Codec
from events.commands import StartRun
from events.notices import ApprovalRequested
from events.run_events import RunCompleted
from tests.helpers import eventually
from tests.processes import Processes
from tests.scrape import Samples, get, scrape, value

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

PARTITIONS = 2
CODEC = Codec()
PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def processes(
    kafka_bootstrap: str, pg_url: str, fresh_prefix: str, tmp_path: Path
) -> Iterator[Processes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("COUNTERSIGN_", "OTEL_"))},
        "COUNTERSIGN_LOG": "kafka",
        "COUNTERSIGN_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "COUNTERSIGN_TOPIC_PREFIX": fresh_prefix,
        "COUNTERSIGN_PARTITIONS": str(PARTITIONS),
        "COUNTERSIGN_WORKER_GROUP": f"{fresh_prefix}.workers",
        "COUNTERSIGN_PROJECTOR_GROUP": f"{fresh_prefix}.projector",
        "COUNTERSIGN_DATABASE_URL": pg_url,
        "COUNTERSIGN_PROJECTION_SCHEMA": f"o_{fresh_prefix}",
        "COUNTERSIGN_EFFECTS_FILE": str(tmp_path / "effects.jsonl"),
        "COUNTERSIGN_LOG_FORMAT": "json",
        "COUNTERSIGN_HOME": str(tmp_path / "home"),
    }
    procs = Processes(env, tmp_path)
    try:
        yield procs
    finally:
        procs.end_all()


async def _readiness_until_ready(port: int) -> list[int]:
    """Every readiness answer from the first one the port gives until one says ready."""
    seen: list[int] = []

    async def ready() -> bool:
        try:
            status, _ = await get(port, "/readyz")
        except OSError:
            return False  # not listening yet
        seen.append(status)
        return status == 200

    await eventually(ready, timeout=120, interval=0.05, message=f"ready on port {port}")
    return seen


async def _start(log: KafkaLog, topics: Topics, run_id: str, key: SigningKey) -> None:
    start = StartRun(
        command_id=str(uuid.uuid4()),
        run_id=run_id,
        agent="refund",
        input={"order_id": "O-1", "amount": 900},
        requested_by="bob",
        issued_at_us=0,
    )
    value_ = CODEC.encode(start)
    headers = (
        CODEC.schema_header(value_),
        ("traceparent", PARENT.encode()),
        proof_header(value_, start, key, now_s=int(time.time())),
    )
    await log.publish([Outgoing(topics.commands, run_id, value_, headers=headers)])


async def _found(log: KafkaLog, topic: str, run_id: str, cls: type) -> object:
    async def find() -> object | None:
        async for record in log.read(topic, partition_for(run_id, PARTITIONS), 0):
            message = CODEC.decode(record.value)
            payload = getattr(message, "payload", message)
            if getattr(message, "run_id", None) == run_id and isinstance(payload, cls):
                return payload
        return None

    return await eventually(find, timeout=90, interval=0.3, message=f"{cls.__name__} {run_id}")


async def test_a_worker_and_a_projector_report_health_metrics_and_traces(
    processes: Processes, kafka_bootstrap: str, fresh_prefix: str, tmp_path: Path
) -> None:
    topics = Topics(fresh_prefix)
    # Workers on Kafka take signed commands only: the home's key is an issuer they trust.
    signer = create_key(tmp_path / "home", issuer="observability-test").key
    log = KafkaLog(kafka_bootstrap, client_id="observability-test")
    await log.start()
    try:
        await log.ensure_topics(topics, PARTITIONS)
        worker_port, projector_port = _free_port(), _free_port()
        processes.spawn(
            "worker", "worker", "--app", "examples.refund:app", "--health-port", str(worker_port)
        )
        processes.spawn("projector", "projector", "--health-port", str(projector_port))
        worker_seen, projector_seen = await asyncio.gather(
            _readiness_until_ready(worker_port), _readiness_until_ready(projector_port)
        )
        assert worker_seen[0] == 503, worker_seen  # starting, or restoring: then ready
        assert projector_seen[0] == 503, projector_seen
        assert await get(worker_port, "/livez") == (200, b"ok\n")
        before = await scrape(worker_port)
        assert value(before, "countersign_restore_seconds_count") >= 1  # its partitions

        run_id = f"obs-{uuid.uuid4()}"
        await _start(log, topics, run_id, signer)
        asked = await _found(log, topics.approvals, run_id, ApprovalRequested)
        await CommandPublisher(log, topics, CODEC, key=signer).submit_decision(
            run_id, asked.interrupt_id, "approve", decided_by="alice"
        )
        await _found(log, topics.runs, run_id, RunCompleted)

        async def counted() -> Samples | None:
            samples = await scrape(worker_port)
            moved = value(samples, "countersign_decision_continued_seconds_count") >= 1
            return samples if moved else None

        after = await eventually(counted, timeout=60, interval=0.3, message="decision counted")
        assert value(after, "countersign_commands_total", outcome="applied") >= 1
        assert value(after, "countersign_commands_total", outcome="accepted") >= 1
        assert value(after, "countersign_commit_seconds_count") > value(
            before, "countersign_commit_seconds_count"
        )
        assert value(after, "countersign_runs", status="live") == 0
        assert value(after, "countersign_stood_down", role="worker") == 0
        lag_partitions = {
            dict(labels)["partition"]
            for name, labels in after
            if name == "countersign_consumer_lag_records"
        }
        assert lag_partitions == {"0", "1"}

        # The run's events carry the trace its start brought (the decision began its own).
        traced = [
            trace_context(r.headers)
            async for r in log.read(topics.runs, partition_for(run_id, PARTITIONS), 0)
            if r.key == run_id
        ]
        assert any(c is not None and c.trace_id == PARENT[3:35] for c in traced)
        assert None not in traced

        async def projected() -> Samples | None:
            samples = await scrape(projector_port)
            lags = [
                v for (name, _), v in samples.items() if name == "countersign_projector_lag_records"
            ]
            done = (
                lags and sum(lags) == 0 and value(samples, "countersign_projected_events_total") > 0
            )
            return samples if done else None

        projector = await eventually(projected, timeout=90, interval=0.5, message="projected")
        assert value(projector, "countersign_stood_down", role="projector") == 0
        assert all(
            v == 0
            for (name, _), v in projector.items()
            if name == "countersign_projector_lag_seconds"
        )
    finally:
        await log.close()
