"""The inbox, statistics, recommendations, what-if and the SQL views on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg  # noqa: TID251  (the SQL contract is read as other systems read it: raw SQL)
import pytest

from engine.log.memory import MemoryLog
from projections import (
    DIMENSIONS,
    Insights,
    Policy,
    ProjectionStore,
    Projector,
    Queries,
    tally,
)
from projections.fold import timestamp
from tests.helpers import eventually
from tests.integration.projections_history import CODEC, SECOND, T0, Call, publish

pytestmark = pytest.mark.postgres

TOPIC = "rs.runs"
HOUR = 3600 * SECOND


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[ProjectionStore]:
    store = await ProjectionStore.connect(pg_url, schema=f"t_{uuid.uuid4().hex[:12]}")
    await store.migrate()
    yield store
    await store.close()


async def project(store: ProjectionStore, calls: list[Call]) -> None:
    log = MemoryLog(default_partitions=3)
    await publish(log, TOPIC, calls)
    projector = Projector(log, store, TOPIC, "g", CODEC, max_records=50)
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))

    async def caught_up() -> bool:
        return sum((await projector.lag()).values()) == 0

    await eventually(caught_up, message="projected")
    stop.set()
    await asyncio.wait_for(task, 10)


# -- the inbox ------------------------------------------------------------------------------------


def inbox_calls() -> list[Call]:
    return [
        Call(run_id="a-overdue", outcome="open", deadline_s=600, start_us=T0),
        Call(
            run_id="b-carol",
            outcome="open",
            approvers=("carol",),
            start_us=T0 + 1 * HOUR,
            deadline_s=48 * 3600,
        ),
        Call(
            run_id="c-anyone",
            outcome="open",
            approvers=(),
            requested_by="alice",
            start_us=T0 + 2 * HOUR,
            deadline_s=None,
        ),
        Call(
            run_id="d-soon",
            outcome="open",
            approvers=("role:support-lead", "role:finance"),
            start_us=T0 + 3 * HOUR,
            deadline_s=3 * 3600 + 1800,
        ),
        Call(run_id="e-approved", outcome="approved", decided_by="alice", start_us=T0),
        Call(
            run_id="f-rejected",
            outcome="rejected",
            decided_by="carol",
            reason="no",
            decide_after_s=7200,
            start_us=T0 + HOUR,
        ),
        Call(run_id="g-auto", outcome="auto"),
    ]


async def test_the_inbox_shows_who_may_decide_oldest_first_with_sla(store: ProjectionStore) -> None:
    await project(store, inbox_calls())
    now = timestamp(T0 + 6 * HOUR)
    insights = Insights(store, clock=lambda: now, due_soon=timedelta(hours=1))

    everything = await insights.inbox()
    alice = await insights.inbox("alice", ("support-lead",))
    dave = await insights.inbox("dave")
    bob = await insights.inbox("bob", ("role:support-lead",))
    overdue = await insights.inbox(overdue=True)
    closed = await insights.inbox(closed=True)

    assert [(i.request.run_id, i.sla) for i in everything] == [
        ("a-overdue", "overdue"),
        ("b-carol", "on_time"),
        ("c-anyone", "no_deadline"),
        ("d-soon", "due_soon"),
    ]
    assert [i.request.run_id for i in alice] == ["a-overdue", "d-soon"]  # not c: she asked
    assert [i.request.run_id for i in dave] == ["c-anyone"]
    assert [i.request.run_id for i in bob] == ["c-anyone"]  # the requester of a, d
    assert [i.request.run_id for i in overdue] == ["a-overdue"]
    assert [(i.request.run_id, i.request.status, i.sla) for i in closed] == [
        ("f-rejected", "rejected", "missed"),
        ("e-approved", "approved", "met"),
    ]
    first = everything[0]
    assert first.age_s == 6 * 3600 - 2 / 1e6
    assert (first.request.reasoning, first.request.amount, first.deciders) == (
        "the customer asked",
        2400.0,
        ("role:support-lead",),
    )
    assert [i.deciders for i in dave] == [("anyone but alice",)]
    for item in everything:  # the SQL rule and the Python one agree
        assert item.request.may_decide("alice", ("support-lead",)) == (item in alice)


async def test_overdue_requests_are_counted_per_team(store: ProjectionStore) -> None:
    await project(store, inbox_calls())
    late = Insights(store, clock=lambda: timestamp(T0 + 100 * HOUR))

    teams = await late.overdue_by_team()

    assert [(t.team, t.overdue) for t in teams] == [
        ("role:support-lead", 2),
        ("role:finance", 1),
        ("carol", 1),
    ]
    assert teams[0].oldest_deadline == timestamp(T0 + 600 * SECOND)


async def test_the_inbox_view_agrees_with_the_python_sla(
    store: ProjectionStore, pg_url: str
) -> None:
    year = 365 * 24 * 3600
    future = [  # deadlines years ahead: one within the due-soon window, one beyond it
        Call(run_id="y-soon", outcome="open", deadline_s=2 * year),
        Call(run_id="z-later", outcome="open", deadline_s=20 * year),
    ]
    await project(store, inbox_calls() + future)
    conn = await asyncpg.connect(pg_url, server_settings={"search_path": store.schema})
    try:
        now = await conn.fetchval("SELECT now()")
        await conn.execute("SET countersign.due_soon = '3000 days'")
        rows = await conn.fetch("SELECT interrupt_id, sla FROM cs_v_inbox")
    finally:
        await conn.close()
    insights = Insights(store, clock=lambda: now, due_soon=timedelta(days=3000))
    items = [*await insights.inbox(), *await insights.inbox(closed=True)]

    assert {r["interrupt_id"]: r["sla"] for r in rows} == {
        i.request.interrupt_id: i.sla for i in items
    }
    assert {r["sla"] for r in rows} == {
        "overdue",
        "due_soon",
        "on_time",
        "no_deadline",
        "met",
        "missed",
    }


# -- statistics -----------------------------------------------------------------------------------


def random_calls(count: int, seed: int = 5) -> list[Call]:
    rng = random.Random(seed)
    calls = []
    for n in range(count):
        outcome = rng.choice(["auto", "approved", "approved", "edited", "rejected", "expired",
                              "escalated", "open"])  # fmt: skip
        amount = float(rng.choice([50, 120, 480, 900, 2400]))
        calls.append(
            Call(
                run_id=f"r{n:04d}",
                agent=rng.choice(["refunds", "billing"]),
                tool=rng.choice(["refund", "credit", "lookup"]),
                args={"order": f"A-{n}", "amount": amount},
                outcome=outcome,  # type: ignore[arg-type]
                risk=rng.choice(["low", "medium", "high"]),
                decided_by=rng.choice(["alice", "bob", "carol"]),
                requested_by="dave",
                decide_after_s=rng.uniform(1, 7200),
                start_us=T0 + n * 97 * 60 * SECOND,  # several days
                confidence=round(rng.random(), 2),
                edited_args={"order": f"A-{n}", "amount": 100.0} if outcome == "edited" else None,
            )
        )
    return calls


async def test_the_stats_view_counts_as_the_reference_does(store: ProjectionStore) -> None:
    calls = random_calls(150)
    await project(store, calls)
    decisions = await store.fetch_decision_facts()
    gates = await store.fetch_gate_facts()
    insights = Insights(store)

    for by in DIMENSIONS:
        from_sql = await insights.stats(by)
        reference = tally(decisions, gates, by)
        assert [r.key for r in from_sql] == [r.key for r in reference], by
        for sql_row, row in zip(from_sql, reference, strict=True):
            assert sql_row.to_json() == pytest.approx(row.to_json()), (by, row.key)

    by_tool = {r.key: r for r in await insights.stats("tool")}
    for tool in ("refund", "credit", "lookup"):
        mine = [c for c in calls if c.tool == tool]
        row = by_tool[tool]
        assert row.auto_approved == sum(c.outcome == "auto" for c in mine)
        assert row.requests == sum(c.outcome != "auto" for c in mine)
        assert row.escalated == sum(c.outcome == "escalated" for c in mine)
        assert row.edited == sum(c.outcome == "edited" for c in mine)


async def test_recommendations_and_what_if_read_the_history(store: ProjectionStore) -> None:
    easy = [
        Call(
            run_id=f"e{n}",
            tool="resend_email",
            risk="low",
            outcome="approved",
            args={"to": f"c{n}@x"},
            decided_by=f"p{n % 3}",
            decide_after_s=300,
        )
        for n in range(25)
    ]
    refunds = [
        Call(
            run_id=f"r{n}",
            args={"order": f"A-{n}", "amount": 100.0 + 10 * n},
            outcome="rejected" if n in (3, 7) else "approved",
            decided_by="carol",
        )
        for n in range(60)
    ]
    lookups = [Call(run_id=f"l{n}", tool="lookup", outcome="auto", args={"amount": 900.0})
               for n in range(4)]  # fmt: skip
    await project(store, easy + refunds + lookups)
    insights = Insights(store)

    advice = {(r.kind, r.subject): r for r in await insights.recommendations()}
    report = await insights.what_if(
        Policy.from_json(
            {
                "rules": [
                    {
                        "tool": "refund",
                        "when": {"arg": "amount", "op": "<=", "value": 500},
                        "action": "auto",
                    },
                    {
                        "tool": "lookup",
                        "when": {"arg": "amount", "op": ">", "value": 500},
                        "action": "approve",
                    },
                ]
            }
        )
    )

    relax = advice[("relax", "tool resend_email")]
    assert (relax.suggestion, relax.evidence["decisions"]) == ("AUTO", 25)
    rules = report.to_json()["rules"]
    assert isinstance(rules, list)
    first, second = rules
    assert isinstance(first, dict)
    assert isinstance(second, dict)
    assert (first["would_auto"], first["would_auto_outcomes"]) == (
        41,
        {"approved": 39, "rejected": 2},
    )
    assert first["summary"] == (
        "this rule would have auto-approved 41 calls people were asked about, "
        "2 of which people rejected"
    )
    assert second["would_ask"] == 4  # their arguments come from ToolCallScheduled


# -- the audit log is append-only -----------------------------------------------------------------


@pytest.mark.parametrize("table", ["cs_audit", "cs_events"])
@pytest.mark.parametrize(
    "statement",
    ["UPDATE {} SET seq = seq + 1", "DELETE FROM {}", "TRUNCATE {}"],
    ids=["update", "delete", "truncate"],
)
async def test_audit_and_events_refuse_update_delete_truncate(
    store: ProjectionStore, pg_url: str, table: str, statement: str
) -> None:
    await project(store, inbox_calls()[:2])
    conn = await asyncpg.connect(pg_url, server_settings={"search_path": store.schema})
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute(statement.format(table))
        assert await conn.fetchval(f"SELECT count(*) FROM {table}") > 0
    finally:
        await conn.close()


async def test_audit_can_be_filtered_by_action(store: ProjectionStore) -> None:
    await project(store, inbox_calls())
    q = Queries(store)

    gates = await q.audit(action="gate_evaluated", limit=100)
    decisions = await q.audit(action="decision_accepted", approver="carol")

    assert len(gates) == len(inbox_calls())
    assert {g.actor for g in gates} == {"policy:refund-policy@1"}
    assert [(d.run_id, d.kind) for d in decisions] == [("f-rejected", "reject")]
    with pytest.raises(ValueError, match="unknown audit action"):
        await q.audit(action="nope")  # type: ignore[arg-type]
