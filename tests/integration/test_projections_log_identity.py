"""Issue 9's scenario, end to end: the Kafka walk-through's projections, then the embedded
PostgreSQL log on the same database. Every command that would have applied Kafka's positions
to the other log refuses and says what to do; `projections status` flags the positions past
the end; both remedies work."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from engine.log.kafka import KafkaLog
from engine.log.port import Topics
from projections import LiveStore, Projector
from tests.helpers import eventually
from tests.integration.projections_history import CODEC, Call, publish
from tests.processes import Processes

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def project_from_kafka(bootstrap: str, url: str, prefix: str, schema: str) -> dict[int, int]:
    """The walk-through's end state: runs on Kafka, projected into `schema`; the positions."""
    log = KafkaLog(bootstrap)
    await log.start()
    topics = Topics(prefix)
    store = await LiveStore.connect(url, home=schema)
    try:
        await log.ensure_topics(topics, 4)
        await publish(log, topics.runs, [Call(run_id=f"r{n}") for n in range(6)])
        projector = Projector(log, store, topics.runs, f"{prefix}.p", CODEC)
        stop = asyncio.Event()
        task = asyncio.create_task(projector.run(stop))

        async def caught_up() -> bool:
            return sum((await projector.lag()).values()) == 0

        await eventually(caught_up, timeout=60, message="projected from Kafka")
        stop.set()
        await asyncio.wait_for(task, 30)
        return await store.positions("core", topics.runs)
    finally:
        await store.close()
        await log.close()


def test_positions_from_kafka_are_refused_on_the_embedded_log(
    kafka_bootstrap: str, pg_url: str, fresh_prefix: str, tmp_path: Path
) -> None:
    schema = f"c_{fresh_prefix}"
    kafka_positions = asyncio.run(project_from_kafka(kafka_bootstrap, pg_url, fresh_prefix, schema))
    assert sum(kafka_positions.values()) > 0
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")},
        "COUNTERSIGN_HOME": str(tmp_path / "home"),
        "COUNTERSIGN_LOG": "postgres",  # the embedded default: `countersign dev`
        "COUNTERSIGN_DATABASE_URL": pg_url,
        "COUNTERSIGN_TOPIC_PREFIX": fresh_prefix,
        "COUNTERSIGN_PROJECTION_SCHEMA": schema,
        "COUNTERSIGN_LOG_LEVEL": "warning",
    }
    countersign = Processes(env, tmp_path)

    for command in (("projector",), ("dev", "--app", "examples.refund:app")):
        refused = countersign.run(*command, check=False)
        assert refused.returncode == 1, (command, refused.stdout, refused.stderr)
        error = refused.stderr.strip().splitlines()[-1]
        assert error.startswith("countersign: error: projection core in schema"), error
        assert "its positions were read from another log (kafka:" in error
        assert "`countersign projections rebuild core`" in error
        assert "COUNTERSIGN_PROJECTION_SCHEMA" in error

    status = countersign.run("projections", "status", "--json", check=False)
    assert status.returncode == 1
    report = json.loads(status.stdout)
    assert report["bound_log_id"].startswith("kafka:")
    assert report["log_id"].startswith("postgres:")
    flagged = {p["partition"] for p in report["partitions"] if p["past_end"]}
    assert flagged == {p for p, position in kafka_positions.items() if position > 0}
    assert report["lag"] == 0  # what issue 9 saw; the flags now say what is wrong
    assert len(report["problems"]) == 1 + len(flagged)
    text = countersign.run("projections", "status", check=False).stdout
    assert "PAST THE END" in text
    assert "problem: positions were read from another log" in text
    assert "what to do: build it again from this log" in text

    verified = countersign.run("verify", "--all", check=False)
    assert verified.returncode == 1
    assert "another log" in verified.stderr  # not "12 of 16 runs broken"

    # Remedy one: this log's projections in a schema of their own.
    apart = Processes({**env, "COUNTERSIGN_PROJECTION_SCHEMA": f"o_{fresh_prefix}"}, tmp_path)
    assert json.loads(apart.run("projections", "status", "--json").stdout)["problems"] == []

    # Remedy two: build the projection again from this log; the live copy moves to it.
    countersign.run("projections", "rebuild", "core", "--grace", "0.2")
    after = json.loads(countersign.run("projections", "status", "--json").stdout)
    assert after["problems"] == []
    assert after["bound_log_id"] == after["log_id"]
    assert after["schema"] != schema
