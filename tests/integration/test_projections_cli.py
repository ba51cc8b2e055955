"""The read-side commands end to end: the embedded-default log (PostgreSQL), the projector,
and `countersign inbox | stats | recommendations | what-if | verify | audit | projections`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from countersign.cli import main
from engine.log.port import Topics
from engine.log.postgres import PostgresLog
from projections import LiveStore, Projector
from tests.helpers import eventually
from tests.integration.projections_history import CODEC, Call, publish

pytestmark = pytest.mark.postgres

POLICY = Path(__file__).resolve().parents[2] / "examples" / "policies" / "refunds.json"


async def project(url: str, prefix: str, schema: str, calls: list[Call]) -> None:
    log = PostgresLog(url, client_id=prefix)
    await log.start()
    topics = Topics(prefix)
    await log.ensure_topics(topics, 4)
    store = await LiveStore.connect(url, home=schema)
    try:
        await publish(log, topics.runs, calls)
        projector = Projector(log, store, topics.runs, "p", CODEC)
        stop = asyncio.Event()
        task = asyncio.create_task(projector.run(stop))

        async def caught_up() -> bool:
            return sum((await projector.lag()).values()) == 0

        await eventually(caught_up, timeout=30)
        stop.set()
        await asyncio.wait_for(task, 10)
    finally:
        await store.close()
        await log.close()


def test_the_read_side_commands(
    pg_url: str,
    fresh_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    schema = f"c_{fresh_prefix}"
    for name, value in {
        "COUNTERSIGN_LOG": "postgres",
        "COUNTERSIGN_DATABASE_URL": pg_url,
        "COUNTERSIGN_TOPIC_PREFIX": fresh_prefix,
        "COUNTERSIGN_PROJECTION_SCHEMA": schema,
        "COUNTERSIGN_LOG_LEVEL": "warning",
    }.items():
        monkeypatch.setenv(name, value)
    calls = [
        Call(
            run_id=f"r{n}",
            outcome="approved",
            tool="resend_email",
            risk="low",
            args={"to": f"c{n}"},
            decide_after_s=30,
        )
        for n in range(6)
    ]
    calls += [
        Call(run_id="open-1", outcome="open", args={"order": "A-9", "amount": 900.0}),
        Call(
            run_id="small-1",
            outcome="rejected",
            args={"order": "A-8", "amount": 90.0},
            decided_by="carol",
            reason="duplicate",
        ),
    ]
    asyncio.run(project(pg_url, fresh_prefix, schema, calls))
    capsys.readouterr()  # the projector's log lines

    def run(*argv: str) -> tuple[int, Any]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        assert "error" not in err, err
        return code, json.loads(out) if "--json" in argv else out

    code, inbox = run("inbox", "--for", "alice", "--role", "support-lead", "--json")
    assert code == 0
    assert [i["run_id"] for i in inbox["items"]] == ["open-1"]
    assert inbox["items"][0]["sla"] == "overdue"
    _, overdue = run("inbox", "--overdue", "--json")
    assert overdue["overdue_by_team"][0]["team"] == "role:support-lead"
    _, text = run("inbox", "--closed")
    assert "rejected by carol" in text

    _, stats = run("stats", "--by", "approver", "--json")
    assert {(s["key"], s["requests"]) for s in stats} == {("alice", 6), ("carol", 1)}
    _, advice = run("recommendations", "--min-decisions", "5", "--json")
    assert ("relax", "tool resend_email", "AUTO") in {
        (a["kind"], a["subject"], a["suggestion"]) for a in advice
    }
    _, report = run("what-if", str(POLICY), "--json")
    assert report["rules"][1]["would_auto_outcomes"] == {"rejected": 1}  # small refunds: auto

    code, verified = run("verify", "--all", "--json")
    assert (code, verified["runs"], verified["broken"]) == (0, 8, 0)
    code, text = run("verify", "open-1")
    assert code == 0
    assert "ok     open-1: 3 events chained" in text
    code, text = run("verify", "no-such-run")
    assert code == 1
    assert "no such run" in text

    _, status = run("projections", "status", "--json")
    assert (status["schema"], status["lag"]) == (schema, 0)
    assert [p["position"] for p in status["partitions"]] == [
        p["end_offset"] for p in status["partitions"]
    ]
    _, audit = run("audit", "--action", "gate_evaluated", "--json")
    assert len(audit) == 8

    code, rebuilt = run(
        "projections", "rebuild", "core", "--max-lag", "0", "--grace", "0", "--json"
    )
    events = sum(p["end_offset"] for p in status["partitions"])
    assert (code, rebuilt["previous"], rebuilt["events"]) == (0, schema, events)
    _, status = run("projections", "status", "--json")
    assert status["schema"] == rebuilt["schema"]
    _, runs = run("runs", "list", "--json")
    assert len(runs) == 8  # read through the pointer, from the new copy
