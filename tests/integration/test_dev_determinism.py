"""`countersign dev` reports a deliberately non-deterministic agent at its first decision:
the run is parked (its status and timeline say why: both calls, what differs, the source line,
the fix), the dev log carries a `run_parked` warning with the run id, and `runs resume-parked`
while the code still diverges parks it again and says so."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import eventually
from tests.processes import Processes

pytestmark = pytest.mark.postgres


@pytest.fixture
def cli(pg_url: str, fresh_prefix: str, tmp_path: Path) -> Iterator[Processes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}
    env |= {
        "COUNTERSIGN_LOG": "postgres",
        "COUNTERSIGN_DATABASE_URL": pg_url,
        "COUNTERSIGN_TOPIC_PREFIX": fresh_prefix,
        "COUNTERSIGN_PARTITIONS": "2",
        "COUNTERSIGN_WORKER_GROUP": f"{fresh_prefix}.workers",
        "COUNTERSIGN_PROJECTOR_GROUP": f"{fresh_prefix}.projector",
        "COUNTERSIGN_PROJECTION_SCHEMA": f"d_{uuid.uuid4().hex[:10]}",
        "COUNTERSIGN_LOG_FORMAT": "json",
        "COUNTERSIGN_HOME": str(tmp_path / "home"),
    }
    procs = Processes(env, tmp_path)
    try:
        yield procs
    finally:
        procs.end_all()


async def _shown(cli: Processes, run_id: str, status: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        result = cli.run("runs", "show", run_id, "--json", check=False)
        if result.returncode != 0:
            return None
        shown: dict[str, Any] = json.loads(result.stdout)
        return shown if shown["run"]["status"] == status else None

    found: dict[str, Any] = await eventually(check, timeout=90, interval=0.5)
    return found


async def test_dev_parks_a_non_deterministic_agent_at_its_first_decision(cli: Processes) -> None:
    cli.spawn("dev", "dev", "--app", "examples.nondeterministic:app")
    run_id = cli.run("start", "lottery", "--by", "alice").stdout.strip()
    waiting = await _shown(cli, run_id, "waiting")
    [request] = waiting["open_interrupts"]

    decided = cli.run(
        "decide", run_id, request["interrupt_id"], "approve", "--by", "bob", "--wait", "60"
    )
    assert decided.stdout.split()[1] == "accepted"

    parked = await _shown(cli, run_id, "parked")
    error = parked["run"]["error"]
    assert "step 0 does not replay" in error
    assert 'recorded: question "Keep the draw ' in error
    assert "examples/nondeterministic.py:" in error
    assert "ctx.random()" in error
    warnings = [
        line
        for line in cli.log_lines("dev")
        if '"run_parked"' in line and json.loads(line).get("run_id") == run_id
    ]
    assert len(warnings) == 1
    assert json.loads(warnings[0])["level"] == "warning"

    resumed = cli.run("runs", "resume-parked", run_id, "--by", "oscar", "--json", check=False)
    assert resumed.returncode == 2  # still the same code: parked again
    assert json.loads(resumed.stdout)["status"] == "parked again"
