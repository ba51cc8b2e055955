"""`countersign start` without surprises, on the embedded PostgreSQL log with a worker process:
a typo in the agent's name, a version no worker serves and an input that breaks the agent's
schema are refused before anything is sent (exit 1, the reason); `--force` sends anyway;
`--wait` shows where the run went; `countersign agents` lists what the workers serve."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import Processes

pytestmark = pytest.mark.postgres


@pytest.fixture
def processes(pg_url: str, fresh_prefix: str, tmp_path: Path) -> Iterator[Processes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}
    env |= {
        "COUNTERSIGN_LOG": "postgres",
        "COUNTERSIGN_DATABASE_URL": pg_url,
        "COUNTERSIGN_TOPIC_PREFIX": fresh_prefix,
        "COUNTERSIGN_PARTITIONS": "2",
        "COUNTERSIGN_WORKER_GROUP": f"{fresh_prefix}.workers",
        "COUNTERSIGN_PROJECTOR_GROUP": f"{fresh_prefix}.projector",
        "COUNTERSIGN_LOG_FORMAT": "json",
        "COUNTERSIGN_HOME": str(tmp_path / "home"),
    }
    procs = Processes(env, tmp_path)
    try:
        yield procs
    finally:
        procs.end_all()


def test_start_refuses_what_no_worker_would_take(processes: Processes) -> None:
    processes.spawn("worker", "worker", "--app", "examples.refund:app")
    processes.spawn("projector", "projector")
    good = '{"order_id": "A-17", "amount": 2400}'

    waited = processes.run(
        "start", "refund", "--input", good, "--by", "bob", "--wait", "60", "--json"
    )
    shown = json.loads(waited.stdout)
    assert shown["run"]["status"] == "waiting"
    assert [i["tool"] for i in shown["open_interrupts"]] == ["refund"]

    listed = json.loads(processes.run("agents", "--json").stdout)
    assert [(a["agent"], a["version"]) for a in listed] == [("refund", "1")]

    for args, reason in [
        (("refnud", "--input", good), "no worker serves agent refnud"),
        (("refund", "--agent-version", "2", "--input", good), "refund version 2"),
        (("refund", "--input", '{"order_id": "A-17"}'), "input.amount is required"),
        (("refund", "--input", '{"order_id": "A-17", "amount": "25000"}'), "amount must be"),
    ]:
        refused = processes.run("start", *args, "--by", "bob", check=False)
        assert refused.returncode == 1, (args, refused.stdout)
        assert reason in refused.stderr, (args, refused.stderr)

    forced = processes.run("start", "refnud", "--input", good, "--by", "bob", "--force", "--json")
    assert json.loads(forced.stdout)["run_id"]
