"""An operator resolves a quarantined run with the CLI, on the embedded PostgreSQL log.

A refund waits for approval; its worker stops; an insider appends junk behind it on the runs
topic. The next worker quarantines the run on restore; `countersign runs quarantined` lists
it, a decision is refused and the refund does not run; `countersign runs lift RUN --by ...
--reason ...` lets it go on, and the approval then refunds exactly once.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from engine.log.port import Outgoing, Topics, partition_for
from engine.log.postgres import PostgresLog
from events.codec import Codec
from events.notices import ApprovalRequested
from tests.helpers import eventually
from tests.processes import Processes

pytestmark = pytest.mark.postgres
PARTITIONS = 2


@pytest.fixture
def processes(pg_url: str, fresh_prefix: str, tmp_path: Path) -> Iterator[Processes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}
    env |= {
        "COUNTERSIGN_LOG": "postgres",
        "COUNTERSIGN_DATABASE_URL": pg_url,
        "COUNTERSIGN_TOPIC_PREFIX": fresh_prefix,
        "COUNTERSIGN_PARTITIONS": str(PARTITIONS),
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


@pytest.fixture
async def log(pg_url: str, fresh_prefix: str) -> AsyncIterator[PostgresLog]:
    event_log = PostgresLog(pg_url, client_id="test")
    await event_log.start()
    await event_log.ensure_topics(Topics(fresh_prefix), PARTITIONS)
    try:
        yield event_log
    finally:
        await event_log.close()


async def _request(log: PostgresLog, topics: Topics, run_id: str) -> ApprovalRequested:
    codec = Codec()

    async def found() -> ApprovalRequested | None:
        async for record in log.read(topics.approvals, partition_for(run_id, PARTITIONS), 0):
            notice = codec.decode_notice(record.value)
            if isinstance(notice, ApprovalRequested) and notice.run_id == run_id:
                return notice
        return None

    return await eventually(found, timeout=60, interval=0.3, message="the approval request")


def _refunds(path: Path, run_id: str) -> int:
    if not path.exists():
        return 0
    effects = [json.loads(line) for line in path.read_text().splitlines() if line]
    return sum(1 for e in effects if e["tool"] == "refund" and e["key"].startswith(run_id))


async def test_an_operator_lifts_a_quarantine_and_the_run_goes_on(
    processes: Processes, log: PostgresLog, fresh_prefix: str, tmp_path: Path
) -> None:
    topics = Topics(fresh_prefix)
    first = processes.spawn("worker-1", "worker", "--app", "examples.refund:app")
    processes.spawn("projector", "projector")
    start = '{"order_id": "A-17", "amount": 2400}'
    run_id = processes.run("start", "refund", "--input", start, "--by", "bob").stdout.strip()
    request = await _request(log, topics, run_id)
    first.terminate()
    first.wait(timeout=30)

    junk = Outgoing(topics.runs, run_id, b"\xc3\x01not an event", partition_for(run_id, PARTITIONS))
    await log.publish([junk])
    processes.spawn("worker-2", "worker", "--app", "examples.refund:app")

    async def listed() -> list[dict[str, object]]:
        out = processes.run("runs", "quarantined", "--json").stdout
        return [row for row in json.loads(out) if row["run_id"] == run_id]

    [row] = await eventually(listed, timeout=60, interval=0.5, message="the run is quarantined")
    assert row["actor"] == "system:integrity"
    refused = processes.run(
        "decide", run_id, request.interrupt_id, "approve", "--by", "alice", "--json", check=False
    )
    assert refused.returncode == 2
    assert "quarantined" in json.loads(refused.stdout)["reason"]
    assert _refunds(tmp_path / "effects.jsonl", run_id) == 0

    processes.run("runs", "lift", run_id, "--by", "oscar", "--reason", "junk from a bad script")
    await eventually(lambda: _listed_none(processes, run_id), timeout=60, interval=0.5)
    approved = processes.run(
        "decide", run_id, request.interrupt_id, "approve", "--by", "alice", "--json"
    )
    assert json.loads(approved.stdout)["accepted"] is True

    async def completed() -> bool:
        shown = json.loads(processes.run("runs", "show", run_id, "--json").stdout)
        return bool(shown["run"]["status"] == "completed")

    await eventually(completed, timeout=60, interval=0.5, message="the run completes")
    assert _refunds(tmp_path / "effects.jsonl", run_id) == 1
    audit = json.loads(processes.run("audit", "--run", run_id, "--json").stdout)
    lifted = [r for r in audit if r["action"] == "quarantine_lifted"]
    assert [(r["actor"], r["reason"]) for r in lifted] == [("oscar", "junk from a bad script")]


def _listed_none(processes: Processes, run_id: str) -> bool:
    out = processes.run("runs", "quarantined", "--json").stdout
    return not [row for row in json.loads(out) if row["run_id"] == run_id]
