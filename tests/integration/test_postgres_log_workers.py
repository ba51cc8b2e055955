"""Two worker processes on one PostgreSQL event log: one is killed, the other resumes its runs.

Both `countersign worker` processes join one group on the embedded database and split the
partitions. Runs start and pause for approval; the worker that ran the lookup of the first
run is killed with SIGKILL (no goodbye: its lease must expire). Decisions are published;
the surviving worker takes the dead one's partitions, rebuilds those runs by replay and
finishes every run. No duplicate appends: each run's `seq` is contiguous from 0 with unique
event ids, and each tool effect happened exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from consumers.publisher import CommandPublisher
from engine.log.port import Topics
from engine.log.postgres import PostgresLog
from events.codec import Codec
from events.envelope import EventEnvelope
from events.notices import ApprovalRequested
from tests.helpers import eventually
from tests.processes import Processes

pytestmark = pytest.mark.postgres

PARTITIONS = 4
RUNS = 8


class Workers(Processes):
    """`countersign worker` processes of the refund example."""

    def spawn_worker(self, name: str) -> subprocess.Popen[bytes]:
        return self.spawn(name, "worker", "--app", "examples.refund:app")

    def restored(self, name: str) -> int:
        """How many partitions the worker has restored so far (from its JSON log)."""
        return sum(1 for line in self.log_lines(name) if '"partition_restored"' in line)


@pytest.fixture
def workers(pg_url: str, fresh_prefix: str, tmp_path: Path) -> Iterator[Workers]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}
    env |= {
        "COUNTERSIGN_LOG": "postgres",
        "COUNTERSIGN_DATABASE_URL": pg_url,
        "COUNTERSIGN_TOPIC_PREFIX": fresh_prefix,
        "COUNTERSIGN_PARTITIONS": str(PARTITIONS),
        "COUNTERSIGN_WORKER_GROUP": f"{fresh_prefix}.workers",
        "COUNTERSIGN_EFFECTS_FILE": str(tmp_path / "effects.jsonl"),
        "COUNTERSIGN_LOG_FORMAT": "json",
        "COUNTERSIGN_HOME": str(tmp_path / "home"),
    }
    procs = Workers(env, tmp_path)
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


def _effects(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


async def _requests(
    event_log: PostgresLog, topics: Topics, runs: set[str]
) -> dict[str, ApprovalRequested]:
    codec = Codec()
    found: dict[str, ApprovalRequested] = {}
    for partition in range(PARTITIONS):
        async for record in event_log.read(topics.approvals, partition, 0):
            notice = codec.decode_notice(record.value)
            if isinstance(notice, ApprovalRequested) and notice.run_id in runs:
                found[notice.run_id] = notice
    return found


async def _histories(event_log: PostgresLog, topics: Topics) -> dict[str, list[EventEnvelope]]:
    codec = Codec()
    runs: dict[str, list[EventEnvelope]] = {}
    for partition in range(PARTITIONS):
        async for record in event_log.read(topics.runs, partition, 0):
            envelope = codec.decode_event(record.value)
            runs.setdefault(envelope.run_id, []).append(envelope)
    return runs


async def test_a_killed_workers_runs_are_resumed_by_the_other_without_duplicates(
    workers: Workers, log: PostgresLog, fresh_prefix: str, tmp_path: Path
) -> None:
    topics = Topics(fresh_prefix)
    first = workers.spawn_worker("worker-1")
    await eventually(lambda: workers.restored("worker-1") == PARTITIONS, timeout=30)
    second = workers.spawn_worker("worker-2")
    await eventually(lambda: workers.restored("worker-2") >= 1, timeout=30)

    publisher = CommandPublisher(log, topics, Codec())
    order = {"order_id": "A-17", "amount": 2400}
    run_ids = [await publisher.start_run("refund", order, requested_by="bob") for _ in range(RUNS)]

    async def all_requested() -> dict[str, ApprovalRequested]:
        found = await _requests(log, topics, set(run_ids))
        assert len(found) == RUNS, f"{len(found)} of {RUNS} runs asked for approval"
        return found

    requests = await eventually(all_requested, timeout=30)

    ran_lookup = {
        e["key"].split(":")[0]: int(e["pid"]) for e in _effects(tmp_path / "effects.jsonl")
    }
    victim = first if ran_lookup[run_ids[0]] == first.pid else second
    survivor = second if victim is first else first
    moved = {run for run, pid in ran_lookup.items() if pid == victim.pid}
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)

    for run_id in run_ids:
        notice = requests[run_id]
        await publisher.submit_decision(
            run_id, notice.interrupt_id, "approve", decided_by="alice", digest=notice.request.digest
        )

    async def all_completed() -> dict[str, list[EventEnvelope]]:
        histories = await _histories(log, topics)
        done = [r for r in run_ids if histories.get(r) and histories[r][-1].type == "RunCompleted"]
        assert len(done) == RUNS, f"{len(done)} of {RUNS} runs completed"
        return histories

    histories = await eventually(all_completed, timeout=60, interval=0.25)

    for run_id in run_ids:  # no duplicate appends: one writer per run, even across the kill
        history = histories[run_id]
        assert [e.seq for e in history] == list(range(len(history))), run_id
        assert len({e.event_id for e in history}) == len(history)
        assert [e.type for e in history].count("DecisionAccepted") == 1
    effects = _effects(tmp_path / "effects.jsonl")
    assert Counter((e["tool"], e["key"]) for e in effects) == Counter(
        {("lookup_order", f"{r}:0"): 1 for r in run_ids}
        | {("refund", f"{r}:1"): 1 for r in run_ids}
    )
    refunded_by = {e["key"].split(":")[0]: int(e["pid"]) for e in effects if e["tool"] == "refund"}
    assert moved
    assert all(refunded_by[run] == survivor.pid for run in moved)
