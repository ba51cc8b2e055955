"""The inbox, statistics and facts of the PostgreSQL store (I/O).

The statistics read the `cs_v_stats` view (the SQL contract), the facts `cs_v_decisions`,
`cs_v_gates` and `cs_v_calls`, so what other systems read and what the CLI shows is one
definition. Queries are `store_columns.select` over `store_tables`, as for the other reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from projections.inbox import SlaState, TeamOverdue, role_names
from projections.inbox_query import OPEN_SLA, InboxQuery, deadline_window
from projections.rows import InterruptRow
from projections.stats import DIMENSIONS, DecisionFact, Dimension, GateFact, StatRow
from projections.store_columns import Condition, select
from projections.store_db import StorePart
from projections.store_tables import CALLS, DECISIONS, GATES, INTERRUPTS, STATS, TEAMS
from projections.whatif import CallFact

_OPEN = "status = 'open'"


class PostgresInsights(StorePart):
    """`InsightSource` on PostgreSQL."""

    async def fetch_inbox(
        self,
        *,
        keys: Sequence[str] | None = None,
        principal: str | None = None,
        overdue_at: datetime | None = None,
        closed: bool = False,
        limit: int = 100,
    ) -> list[InterruptRow]:
        """Open requests oldest first (or closed ones, latest first). With `keys` (a principal
        and its `role:` entries) only those it may decide; with `overdue_at` only those whose
        deadline is at or before it."""
        mine = None if keys is None or principal is None else list(keys)
        where: list[Condition] = [
            ("status <> 'open'",) if closed else (_OPEN,),
            _may_decide(mine, principal),
            ("deadline <= {}", overdue_at),
        ]
        order = "closed_at DESC, interrupt_id" if closed else "raised_at, interrupt_id"
        query = select(INTERRUPTS, where=where, order=order, limit=limit)
        return await self._db.select(INTERRUPTS, query)

    async def fetch_inbox_page(
        self, query: InboxQuery, now: datetime, due_soon: timedelta
    ) -> tuple[list[InterruptRow], dict[SlaState, int], int]:
        """One page of `query` (open: soonest deadline first, none last; closed: latest
        first), the SLA counts of the open requests matching its other filters, and how many
        match all of it."""
        window = deadline_window(query.sla, now, due_soon)
        base = _inbox_conditions(query)
        where: list[Condition] = [
            *base,
            ("deadline > {}", window.after),
            ("deadline <= {}", window.until),
            *([("deadline IS NULL",)] if window.none else []),
        ]
        order = (
            "closed_at DESC, interrupt_id"
            if query.status == "closed"
            else "deadline ASC NULLS LAST, raised_at, interrupt_id"
        )
        sql, args = select(INTERRUPTS, where=where, order=order, limit=query.limit)
        rows = await self._db.rows(INTERRUPTS, f"{sql} OFFSET {int(query.offset)}", *args)
        count_sql, count_args = select(INTERRUPTS, where=where)
        total = await self._db.fetchval(
            "SELECT count(*) FROM cs_interrupts" + _where_part(count_sql), *count_args
        )
        counts: dict[SlaState, int] = dict.fromkeys(OPEN_SLA, 0)
        if query.status == "open":
            sla_sql, sla_args = select(INTERRUPTS, where=base)
            n = len(sla_args)
            record = (
                await self._db.fetch(
                    f"SELECT count(*) FILTER (WHERE deadline <= ${n + 1}) AS overdue,"
                    f" count(*) FILTER (WHERE deadline > ${n + 1} AND deadline <= ${n + 2})"
                    " AS due_soon,"
                    f" count(*) FILTER (WHERE deadline > ${n + 2}) AS on_time,"
                    " count(*) FILTER (WHERE deadline IS NULL) AS no_deadline"
                    " FROM cs_interrupts" + _where_part(sla_sql),
                    *sla_args,
                    now,
                    now + due_soon,
                )
            )[0]
            counts = {state: int(record[state]) for state in OPEN_SLA}
        return rows, counts, int(total)

    async def fetch_overdue_by_team(self, now: datetime) -> list[TeamOverdue]:
        """Overdue open requests per approver entry (a request listing two counts for both;
        `(anyone)` for requests anyone may decide), most overdue first."""
        return await self._db.rows(
            TEAMS,
            "SELECT team, count(*) AS overdue, min(deadline) AS oldest_deadline,"
            " min(raised_at) AS oldest_raised_at FROM cs_interrupts,"
            " jsonb_array_elements_text(CASE WHEN approvers = '[]'::jsonb"
            " THEN '[\"(anyone)\"]'::jsonb ELSE approvers END) AS team"
            f" WHERE {_OPEN} AND deadline <= $1 GROUP BY team ORDER BY min(deadline), team",
            now,
        )

    async def fetch_stats(self, by: Dimension) -> list[StatRow]:
        if by not in DIMENSIONS:
            raise ValueError(f"unknown dimension {by!r}; one of {', '.join(DIMENSIONS)}")
        return await self._db.select(
            STATS, select(STATS, where=[("dimension = {}", by)], order="key")
        )

    async def fetch_decision_facts(self, since: datetime | None = None) -> list[DecisionFact]:
        query = select(
            DECISIONS, where=[("raised_at >= {}", since)], order="raised_at, interrupt_id"
        )
        return await self._db.select(DECISIONS, query)

    async def fetch_gate_facts(self, since: datetime | None = None) -> list[GateFact]:
        query = select(GATES, where=[("at >= {}", since)], order="at, run_id, seq")
        return await self._db.select(GATES, query)

    async def fetch_calls(self, since: datetime | None = None) -> list[CallFact]:
        query = select(CALLS, where=[("at >= {}", since)], order="at, run_id, call")
        return await self._db.select(CALLS, query)


def _inbox_conditions(query: InboxQuery) -> list[Condition]:
    """The filters but the SLA one (the counts are taken over these)."""
    mine = None if query.principal is None else [query.principal, *role_names(query.roles)]
    return [
        ("status <> 'open'",) if query.status == "closed" else (_OPEN,),
        _may_decide(mine, query.principal),
        ("tool = {}", query.tool),
        ("agent = {}", query.agent),
    ]


def _may_decide(keys: list[str] | None, principal: str | None) -> Condition:
    """Listed by name or role (or anyone may), not excluded, not the requester (who may
    answer questions): as `InterruptRow.may_decide` asks in Python. Left out when `keys` is
    None."""
    return (
        "(approvers ?| {0}::text[] OR approvers = '[]'::jsonb)"
        " AND (requested_by <> {1} OR kind = 'question') AND NOT excluded ? {1}",
        keys,
        principal,
    )


def _where_part(sql: str) -> str:
    """The ` WHERE ...` of a `select()` statement (empty when it has none)."""
    _, found, rest = sql.partition(" WHERE ")
    return f" WHERE {rest}" if found else ""
