"""The walking skeleton end to end, as separate OS processes on real Kafka and PostgreSQL.

A run pauses for approval under worker 1; worker 1 is killed with SIGKILL; a third process
publishes the decision; worker 2 resumes the run by replay. The lookup tool and the refund
tool each ran exactly once (counted from a file the tools append to, across processes).
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.log.kafka import KafkaLog
from engine.log.port import Topics
from events.codec import Codec
from events.notices import ApprovalRequested
from tests.helpers import eventually
from tests.processes import Processes

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


@pytest.fixture
def processes(
    kafka_bootstrap: str, pg_url: str, fresh_prefix: str, tmp_path: Path
) -> Iterator[Processes]:
    env = {
        **os.environ,
        "COUNTERSIGN_LOG": "kafka",
        "COUNTERSIGN_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "COUNTERSIGN_DATABASE_URL": pg_url,
        "COUNTERSIGN_TOPIC_PREFIX": fresh_prefix,
        "COUNTERSIGN_WORKER_GROUP": f"{fresh_prefix}.workers",
        "COUNTERSIGN_PROJECTOR_GROUP": f"{fresh_prefix}.projector",
        "COUNTERSIGN_EFFECTS_FILE": str(tmp_path / "effects.jsonl"),
        "COUNTERSIGN_LOG_FORMAT": "json",
        "COUNTERSIGN_HOME": str(tmp_path / "home"),
    }
    procs = Processes(env, tmp_path)
    try:
        yield procs
    finally:
        procs.end_all()


async def _approval_request(bootstrap: str, prefix: str, run_id: str) -> ApprovalRequested:
    codec = Codec()
    topics = Topics(prefix)
    event_log = KafkaLog(bootstrap, client_id="test-reader")
    await event_log.start()
    try:

        async def found() -> ApprovalRequested | None:
            for partition in range(await event_log.partition_count(topics.approvals)):
                async for record in event_log.read(topics.approvals, partition, 0):
                    notice = codec.decode_notice(record.value)
                    if isinstance(notice, ApprovalRequested) and notice.run_id == run_id:
                        return notice
            return None

        return await eventually(found, timeout=60, interval=0.5, message="no approval request")
    finally:
        await event_log.close()


def _effects(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


async def test_run_pauses_worker_dies_another_resumes_by_replay(
    processes: Processes, kafka_bootstrap: str, fresh_prefix: str, tmp_path: Path
) -> None:
    first = processes.spawn("worker-1", "worker", "--app", "examples.refund:app")
    processes.spawn("projector", "projector")

    run_id = processes.run(
        "start", "refund", "--input", '{"order_id": "A-17", "amount": 2400}', "--by", "bob"
    ).stdout.strip()
    request = await _approval_request(kafka_bootstrap, fresh_prefix, run_id)
    assert request.request.tool == "refund"
    assert request.request.amount == 2400.0

    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    processes.spawn("worker-2", "worker", "--app", "examples.refund:app")

    decided = processes.run(
        "decide",
        run_id,
        request.interrupt_id,
        "approve",
        "--by",
        "alice",
        "--reason",
        "checked",
        "--wait",
        "90",
        "--json",
    )
    assert json.loads(decided.stdout)["accepted"] is True

    async def completed() -> dict[str, object]:
        shown = json.loads(processes.run("runs", "show", run_id, "--json").stdout)
        assert shown["run"]["status"] == "completed", shown["run"]["status"]
        return dict(shown)

    shown = await eventually(completed, timeout=60, interval=0.5)
    types = [entry["type"] for entry in shown["timeline"]]  # type: ignore[index,union-attr]
    assert types[0] == "RunStarted"
    assert types[-1] == "RunCompleted"
    assert types.count("DecisionAccepted") == 1

    effects = _effects(tmp_path / "effects.jsonl")
    tools = [effect["tool"] for effect in effects]
    assert tools.count("lookup_order") == 1, effects
    assert tools.count("refund") == 1, effects
    refund_pid = next(e["pid"] for e in effects if e["tool"] == "refund")
    assert int(refund_pid) != first.pid, "the refund must run on the second worker"

    audit = json.loads(processes.run("audit", "--run", run_id, "--json").stdout)
    decisions = [row for row in audit if row["action"] == "decision_accepted"]
    assert len(decisions) == 1
    assert decisions[0]["actor"] == "alice"
    assert decisions[0]["reason"] == "checked"
