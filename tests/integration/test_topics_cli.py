"""`countersign topics plan|apply|check` on the real broker, and the check every worker runs at
start: topics that would delete the runs log stop the worker with what to change."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.log.kafka import admin
from engine.log.kafka.plan import Replication, plan
from engine.log.port import Topics
from tests.processes import Processes

pytestmark = [pytest.mark.kafka]


@pytest.fixture
def cli(
    kafka_bootstrap: str, pg_url: str, fresh_prefix: str, tmp_path: Path
) -> Iterator[Processes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}
    env |= {
        # The session's PostgreSQL: a worker would otherwise start an embedded one in the
        # home, and it outlives the test (it is meant to outlive the command).
        "COUNTERSIGN_DATABASE_URL": pg_url,
        "COUNTERSIGN_LOG": "kafka",
        "COUNTERSIGN_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "COUNTERSIGN_TOPIC_PREFIX": fresh_prefix,
        "COUNTERSIGN_WORKER_GROUP": f"{fresh_prefix}.workers",
        "COUNTERSIGN_HOME": str(tmp_path / "home"),
        "COUNTERSIGN_LOG_FORMAT": "json",
    }
    procs = Processes(env, tmp_path)
    try:
        yield procs
    finally:
        procs.end_all()


def test_plan_prints_every_topic_with_its_settings(cli: Processes, fresh_prefix: str) -> None:
    planned = json.loads(cli.run("topics", "plan", "--brokers", "3", "--json").stdout)

    names = {topic["name"] for topic in planned}
    topics = Topics(fresh_prefix)
    assert names == {*topics.all, topics.routing}
    runs = next(topic for topic in planned if topic["name"] == topics.runs)
    assert runs["replication_factor"] == 3
    assert runs["configs"]["min.insync.replicas"] == "2"
    assert runs["configs"]["retention.ms"] == "-1"


async def test_apply_then_check_is_clean_on_the_development_broker(cli: Processes) -> None:
    applied = cli.run("topics", "apply")
    checked = cli.run("topics", "check", "--json")

    assert "in place" in applied.stdout
    report = json.loads(checked.stdout)
    assert report["ok"] is True
    assert all(not problem["fatal"] for problem in report["problems"])  # one replica: warned


async def test_a_worker_refuses_topics_that_would_delete_the_runs_log(
    cli: Processes, kafka_bootstrap: str, fresh_prefix: str
) -> None:
    topics = Topics(fresh_prefix)
    specs = plan(topics, 4, Replication(1, 1))
    weekly = [
        spec
        if spec.name != topics.runs
        else type(spec)(spec.name, spec.partitions, 1, {"retention.ms": "604800000"}, "")
        for spec in specs
    ]
    await admin.apply(kafka_bootstrap, weekly)

    checked = cli.run("topics", "check", check=False)
    worker = cli.run("worker", "--app", "examples.refund:app", check=False)

    assert checked.returncode == 1
    assert f"{topics.runs}: retention.ms=604800000 would delete the runs log" in checked.stdout
    assert worker.returncode != 0
    assert "set retention.ms=-1" in worker.stderr
