"""The inbox, statistics and facts of the PostgreSQL store (I/O).

The statistics read the `cs_v_stats` view (the SQL contract), the facts `cs_v_decisions`,
`cs_v_gates` and `cs_v_calls`, so what other systems read and what the CLI shows is one
definition. Queries are `store_columns.select` over `store_tables`, as for the other reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from projections.inbox import TeamOverdue
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
            (
                "(approvers ?| {0}::text[] OR approvers = '[]'::jsonb)"
                " AND (requested_by <> {1} OR kind = 'question') AND NOT excluded ? {1}",
                mine,
                principal,
            ),
            ("deadline <= {}", overdue_at),
        ]
        order = "closed_at DESC, interrupt_id" if closed else "raised_at, interrupt_id"
        query = select(INTERRUPTS, where=where, order=order, limit=limit)
        return await self._db.select(INTERRUPTS, query)

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
