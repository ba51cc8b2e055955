"""Restore trusts nothing it cannot check, and an operator resolves a quarantine with the CLI,
on the embedded PostgreSQL log and on Kafka.

A refund waits for approval and another has finished; their worker stops; an insider appends
behind them on the runs topic: junk and a forged approval that does not chain behind the
waiting one, a copy of a record behind the finished one. The next worker quarantines both on
restore; `countersign runs quarantined` lists them, a decision is refused and the waiting
refund does not run; `countersign runs lift RUN --by ... --reason ...` lets it go on, and the
approval then refunds exactly once (the finished one refunded once, too).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from engine.log.kafka import KafkaLog
from engine.log.port import EventLog, Outgoing, Topics, partition_for
from engine.log.postgres import PostgresLog
from events.codec import Codec
from events.notices import ApprovalRequested
from events.run_events import DecisionAccepted
from tests.helpers import eventually
from tests.processes import Processes

pytestmark = pytest.mark.postgres
PARTITIONS = 2


@pytest.fixture(params=["postgres", "kafka"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def bootstrap(backend: str, request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("kafka_bootstrap")) if backend == "kafka" else ""


@pytest.fixture
def processes(
    pg_url: str, fresh_prefix: str, tmp_path: Path, backend: str, bootstrap: str
) -> Iterator[Processes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}
    env |= {
        "COUNTERSIGN_LOG": backend,
        "COUNTERSIGN_KAFKA_BOOTSTRAP": bootstrap,
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
async def log(pg_url: str, fresh_prefix: str, bootstrap: str) -> AsyncIterator[EventLog]:
    event_log: EventLog = (
        KafkaLog(bootstrap, client_id="test") if bootstrap else PostgresLog(pg_url, client_id="t")
    )
    await event_log.start()
    await event_log.ensure_topics(Topics(fresh_prefix), PARTITIONS)
    try:
        yield event_log
    finally:
        await event_log.close()


async def _request(log: EventLog, topics: Topics, run_id: str) -> ApprovalRequested:
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


async def test_strays_quarantine_runs_and_an_operator_lifts_one(
    processes: Processes, log: EventLog, fresh_prefix: str, tmp_path: Path
) -> None:
    topics = Topics(fresh_prefix)
    first = processes.spawn("worker-1", "worker", "--app", "examples.refund:app")
    processes.spawn("projector", "projector")
    start = '{"order_id": "A-17", "amount": 2400}'
    run_id = processes.run("start", "refund", "--input", start, "--by", "bob").stdout.strip()
    small = '{"order_id": "A-18", "amount": 20}'
    done = processes.run(
        "start", "refund", "--input", small, "--by", "bob", "--wait", "60", "--json"
    )
    done_id = json.loads(done.stdout)["run"]["run_id"]
    assert json.loads(done.stdout)["run"]["status"] == "completed"
    request = await _request(log, topics, run_id)
    first.terminate()
    first.wait(timeout=30)
    await _tamper(log, topics, run_id, request.interrupt_id, done_id)
    processes.spawn("worker-2", "worker", "--app", "examples.refund:app")

    async def listed() -> list[dict[str, object]]:
        out = processes.run("runs", "quarantined", "--json").stdout
        return [row for row in json.loads(out) if row["run_id"] in (run_id, done_id)]

    async def both() -> list[dict[str, object]] | None:
        rows = await listed()
        return rows if len(rows) == 2 else None

    rows = await eventually(both, timeout=90, interval=0.5, message="both runs are quarantined")
    assert {row["actor"] for row in rows} == {"system:integrity"}
    strays = {row["run_id"]: len(row["detail"]["strays"]) for row in rows}  # type: ignore[index,arg-type]
    assert strays == {run_id: 2, done_id: 1}
    assert _refunds(tmp_path / "effects.jsonl", done_id) == 1
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


async def _tamper(
    log: EventLog, topics: Topics, run_id: str, interrupt_id: str, done_id: str
) -> None:
    """Junk and a forged approval that does not chain behind `run_id`; a copy of a record
    behind the finished `done_id`."""
    codec = Codec()
    partition = partition_for(run_id, PARTITIONS)
    events = [
        (r, codec.decode_event(r.value))
        async for r in log.read(topics.runs, partition, 0)
        if r.key == run_id
    ]
    last = events[-1][1]
    forged = dataclasses.replace(
        last,
        seq=last.seq + 1,
        event_id="forged",
        prev_hash="0" * 64,
        payload=DecisionAccepted(
            interrupt_id=interrupt_id, decision_id="forged", kind="approve", decided_by="alice"
        ),
    )
    done_partition = partition_for(done_id, PARTITIONS)
    [copy, *_] = [r async for r in log.read(topics.runs, done_partition, 0) if r.key == done_id]
    await log.publish(
        [
            Outgoing(topics.runs, run_id, b"\xc3\x01not an event", partition),
            Outgoing(topics.runs, run_id, codec.encode(forged), partition),
            Outgoing(topics.runs, done_id, copy.value, done_partition, copy.headers),
        ]
    )


def _listed_none(processes: Processes, run_id: str) -> bool:
    out = processes.run("runs", "quarantined", "--json").stdout
    return not [row for row in json.loads(out) if row["run_id"] == run_id]
