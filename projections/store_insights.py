"""The inbox, statistics, facts and verification reads, in SQL. Part of the PostgreSQL adapter.

Functions of an asyncpg pool returning our own rows; `ProjectionStore` exposes them. The
statistics read the `cs_v_stats` view (the SQL contract), the facts `cs_v_decisions`,
`cs_v_gates` and `cs_v_calls`, so what other systems read and what the CLI shows is one
definition.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from projections.inbox import TeamOverdue
from projections.rows import AuditRow, EventRow, InterruptRow, StoredPosition
from projections.stats import DIMENSIONS, DecisionFact, Dimension, GateFact, StatRow
from projections.store_rows import (
    AUDIT_COLUMNS,
    EVENT_COLUMNS,
    INTERRUPT_COLUMNS,
    audit_from,
    event_from,
    interrupt_from,
    json_object,
)
from projections.whatif import CallFact

_OPEN = "status = 'open'"


async def inbox(
    pool: Any,
    *,
    keys: Sequence[str] | None,
    principal: str | None,
    overdue_at: datetime | None,
    closed: bool,
    limit: int,
) -> list[InterruptRow]:
    """Open requests oldest first (or closed ones, latest first). With `keys` (a principal
    and its `role:` entries) only those it may decide; with `overdue_at` only those whose
    deadline is at or before it."""
    args: list[object] = []
    where = ["status <> 'open'" if closed else _OPEN]
    if keys is not None and principal is not None:
        args += [list(keys), principal]
        where.append(
            "(approvers ?| $1::text[] OR approvers = '[]'::jsonb)"
            " AND requested_by <> $2 AND NOT excluded ? $2"
        )
    if overdue_at is not None:
        args.append(overdue_at)
        where.append(f"deadline <= ${len(args)}")
    order = "closed_at DESC, interrupt_id" if closed else "raised_at, interrupt_id"
    args.append(limit)
    rows = await pool.fetch(
        f"SELECT {INTERRUPT_COLUMNS} FROM cs_interrupts WHERE {' AND '.join(where)}"
        f" ORDER BY {order} LIMIT ${len(args)}",
        *args,
    )
    return [interrupt_from(r) for r in rows]


async def overdue_by_team(pool: Any, now: datetime) -> list[TeamOverdue]:
    """Overdue open requests per approver entry (a request listing two counts for both;
    `(anyone)` for requests anyone may decide), most overdue first."""
    rows = await pool.fetch(
        "SELECT team, count(*) AS overdue, min(deadline) AS oldest_deadline,"
        " min(raised_at) AS oldest_raised_at FROM cs_interrupts,"
        " jsonb_array_elements_text(CASE WHEN approvers = '[]'::jsonb"
        " THEN '[\"(anyone)\"]'::jsonb ELSE approvers END) AS team"
        f" WHERE {_OPEN} AND deadline <= $1 GROUP BY team ORDER BY min(deadline), team",
        now,
    )
    return [
        TeamOverdue(
            team=r["team"],
            overdue=r["overdue"],
            oldest_deadline=r["oldest_deadline"],
            oldest_raised_at=r["oldest_raised_at"],
        )
        for r in rows
    ]


async def stats(pool: Any, by: Dimension) -> list[StatRow]:
    if by not in DIMENSIONS:
        raise ValueError(f"unknown dimension {by!r}; one of {', '.join(DIMENSIONS)}")
    # The dimension is a literal (from the closed list above), so the planner keeps only
    # that branch of the view's UNION ALL.
    rows = await pool.fetch(
        "SELECT key, requests, open, approved, edited, rejected, responded, expired,"
        " escalated, withdrawn, auto_approved, approval_rate, median_s, p90_s"
        f" FROM cs_v_stats WHERE dimension = '{by}' ORDER BY key"
    )
    return [
        StatRow(
            dimension=by,
            key=r["key"],
            requests=r["requests"],
            open=r["open"],
            approved=r["approved"],
            edited=r["edited"],
            rejected=r["rejected"],
            responded=r["responded"],
            expired=r["expired"],
            escalated=r["escalated"],
            withdrawn=r["withdrawn"],
            auto_approved=r["auto_approved"],
            approval_rate=r["approval_rate"],
            median_s=r["median_s"],
            p90_s=r["p90_s"],
        )
        for r in rows
    ]


async def decision_facts(pool: Any, since: datetime | None) -> list[DecisionFact]:
    rows = await pool.fetch(
        "SELECT interrupt_id, run_id, call, agent, kind, tool, args, edited_args, risk,"
        " amount, confidence, policy, status, decided_by, reason, raised_at, closed_at,"
        " escalated FROM cs_v_decisions WHERE raised_at >= coalesce($1::timestamptz, '-infinity')"
        " ORDER BY raised_at, interrupt_id",
        since,
    )
    return [
        DecisionFact(
            interrupt_id=r["interrupt_id"],
            run_id=r["run_id"],
            call=r["call"],
            agent=r["agent"],
            kind=r["kind"],
            tool=r["tool"],
            args=json_object(r["args"]),
            edited_args=json_object(r["edited_args"]),
            risk=r["risk"],
            amount=r["amount"],
            confidence=r["confidence"],
            policy=r["policy"],
            status=r["status"],
            decided_by=r["decided_by"],
            reason=r["reason"],
            raised_at=r["raised_at"],
            closed_at=r["closed_at"],
            escalated=r["escalated"],
        )
        for r in rows
    ]


async def gate_facts(pool: Any, since: datetime | None) -> list[GateFact]:
    rows = await pool.fetch(
        "SELECT run_id, call, round, at, agent, tool, action, policy, risk, confidence"
        " FROM cs_v_gates WHERE at >= coalesce($1::timestamptz, '-infinity')"
        " ORDER BY at, run_id, seq",
        since,
    )
    return [
        GateFact(
            run_id=r["run_id"],
            call=r["call"],
            round=r["round"],
            at=r["at"],
            agent=r["agent"] or "",
            tool=r["tool"] or "",
            action=r["action"],
            policy=r["policy"] or "",
            risk=r["risk"] or "",
            confidence=r["confidence"],
        )
        for r in rows
    ]


async def calls(pool: Any, since: datetime | None) -> list[CallFact]:
    rows = await pool.fetch(
        "SELECT run_id, call, at, agent, tool, action, policy, risk, amount, confidence,"
        " args, outcome, decided_by, decision_s FROM cs_v_calls"
        " WHERE at >= coalesce($1::timestamptz, '-infinity') ORDER BY at, run_id, call",
        since,
    )
    return [
        CallFact(
            run_id=r["run_id"],
            call=r["call"],
            at=r["at"],
            agent=r["agent"] or "",
            tool=r["tool"] or "",
            action=r["action"],
            policy=r["policy"] or "",
            risk=r["risk"] or "",
            amount=r["amount"],
            confidence=r["confidence"],
            args=json_object(r["args"]),
            outcome=r["outcome"],
            decided_by=r["decided_by"],
            decision_s=r["decision_s"],
        )
        for r in rows
    ]


# -- verification -------------------------------------------------------------------------------


async def events_of(pool: Any, run_ids: Sequence[str]) -> dict[str, list[EventRow]]:
    """The indexed events of each run, by seq (rows as stored: verification reads them)."""
    rows = await pool.fetch(
        f"SELECT {EVENT_COLUMNS} FROM cs_events WHERE run_id = ANY($1::text[])"
        " ORDER BY run_id, seq",
        list(run_ids),
    )
    out: dict[str, list[EventRow]] = {run_id: [] for run_id in run_ids}
    for record in rows:
        row = event_from(record)
        out.setdefault(row.run_id, []).append(row)
    return out


async def audit_of(pool: Any, run_ids: Sequence[str]) -> dict[str, list[AuditRow]]:
    rows = await pool.fetch(
        f"SELECT id, {AUDIT_COLUMNS} FROM cs_audit WHERE run_id = ANY($1::text[])"
        " ORDER BY run_id, seq, action",
        list(run_ids),
    )
    out: dict[str, list[AuditRow]] = {run_id: [] for run_id in run_ids}
    for record in rows:
        row = audit_from(record)
        out.setdefault(row.run_id, []).append(row)
    return out


async def run_ids_of(pool: Any) -> list[str]:
    """Every run in the events index (for `verify --all`: runs the log no longer has)."""
    rows = await pool.fetch("SELECT DISTINCT run_id FROM cs_events ORDER BY run_id")
    return [cast(str, r["run_id"]) for r in rows]


async def error_offsets(pool: Any, projection: str, topic: str) -> dict[tuple[int, int], str]:
    rows = await pool.fetch(
        'SELECT "partition", "offset", reason FROM cs_projection_errors'
        " WHERE projection = $1 AND topic = $2",
        projection,
        topic,
    )
    return {(r["partition"], r["offset"]): r["reason"] for r in rows}


async def position_rows(pool: Any, projection: str, topic: str) -> list[StoredPosition]:
    rows = await pool.fetch(
        'SELECT "partition", next_offset, last_event_at, updated_at'
        " FROM cs_projection_positions WHERE projection = $1 AND topic = $2"
        ' ORDER BY "partition"',
        projection,
        topic,
    )
    return [
        StoredPosition(
            partition=r["partition"],
            next_offset=r["next_offset"],
            last_event_at=r["last_event_at"],
            updated_at=r["updated_at"],
        )
        for r in rows
    ]
