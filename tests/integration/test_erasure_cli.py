"""Crypto-shredding end to end on the embedded PostgreSQL log, through the CLI as an
operator uses it: a voucher run handles a customer's personal data and completes; the log
holds it only sealed; `countersign erase` destroys the key; `verify` still passes, the audit,
timeline and `runs show` read `erased` where the values were, and `replay` is identical."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from engine.log.port import EventLog, Topics
from engine.log.postgres import PostgresLog
from tests.processes import Processes, cli_env

pytestmark = pytest.mark.postgres
PARTITIONS = 2
ERASED = {"countersign.erased": "cust-7"}


@pytest.fixture
def processes(pg_url: str, fresh_prefix: str, tmp_path: Path) -> Iterator[Processes]:
    schema = f"p_{fresh_prefix}".replace("-", "_")
    env = cli_env(
        fresh_prefix, tmp_path / "home", PARTITIONS,
        log="postgres", database_url=pg_url, projection_schema=schema,
    )  # fmt: skip
    procs = Processes(env, tmp_path)
    try:
        yield procs
    finally:
        procs.end_all()


@pytest.fixture
async def log(pg_url: str, fresh_prefix: str) -> AsyncIterator[EventLog]:
    event_log = PostgresLog(pg_url, client_id="test")
    await event_log.start()
    await event_log.ensure_topics(Topics(fresh_prefix), PARTITIONS)
    try:
        yield event_log
    finally:
        await event_log.close()


async def log_bytes(log: EventLog, topics: Topics) -> bytes:
    values = [
        record.value
        for partition in range(PARTITIONS)
        async for record in log.read(topics.runs, partition, 0)
    ]
    return b"".join(values)


async def test_an_erased_customer_reads_erased_and_the_audit_still_verifies(
    processes: Processes, log: EventLog, fresh_prefix: str
) -> None:
    processes.spawn("worker", "worker", "--app", "examples.crm:app")
    processes.spawn("projector", "projector")
    start = '{"customer_id": "cust-7", "amount": 20}'
    run_id = processes.run("start", "voucher", "--input", start, "--by", "bob").stdout.strip()
    interrupt = processes.run("approvals", "--run", run_id, "--wait", "90", "--ids").stdout
    edit = ("edit", "--set", "amount=25", "--by", "alice", "--wait", "60")  # from the opened card
    processes.run("decide", run_id, interrupt.strip(), *edit)
    shown = json.loads(processes.run("runs", "show", run_id, "--wait", "60", "--json").stdout)
    assert shown["run"]["status"] == "completed"
    assert shown["run"]["output"] == {"voucher": "ok", "reason": ""}
    before = json.loads(processes.run("audit", "--run", run_id, "--json").stdout)
    [asked] = [row for row in before if row["action"] == "interrupt_raised"]
    assert asked["args"]["email"] == "ada7@example.org"  # opened with the key, for the operator
    raw = await log_bytes(log, Topics(fresh_prefix))
    assert b"ada7@example.org" not in raw
    assert b"Ada Lovelace" not in raw

    erased = json.loads(processes.run("erase", "cust-7", "--json").stdout)
    again = json.loads(processes.run("erase", "cust-7", "--json").stdout)

    assert erased == {"subject": "cust-7", "erased": True, "already": False}
    assert again["already"] is True
    verdict = json.loads(processes.run("verify", run_id, "--json").stdout)
    assert verdict["broken"] == 0
    assert verdict["anchor_problems"] == 0
    after = json.loads(processes.run("audit", "--run", run_id, "--json").stdout)
    [asked] = [row for row in after if row["action"] == "interrupt_raised"]
    assert asked["args"]["email"] == ERASED
    assert asked["args"]["greeting"] == ERASED
    assert asked["args"]["amount"] == 20.0
    [edited] = [row for row in after if row["action"] == "decision_accepted"]
    assert edited["edited_args"]["email"] == ERASED  # the edit's copy is sealed too
    assert edited["edited_args"]["amount"] == 25
    timeline = processes.run("runs", "show", run_id).stdout
    assert '"email":"erased"' in timeline
    assert "ada7" not in timeline
    replayed = processes.run("replay", run_id, "--app", "examples.crm:app", "--json")
    assert json.loads(replayed.stdout)["outcome"] == "identical"
    assert await log_bytes(log, Topics(fresh_prefix)) == raw  # the log is untouched
