"""The typed API of the inbox, statistics, recommendations and what-if (the CLI calls it).

insights = Insights(store)
mine = await insights.inbox(principal="alice", roles=("support-lead",))
by_tool = await insights.stats("tool")
advice = await insights.recommendations()
report = await insights.what_if(Policy.from_json(json.load(open("policy.json"))))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from projections.inbox import DEFAULT_DUE_SOON, InboxItem, SlaState, TeamOverdue, role_names
from projections.inbox_query import InboxPage, InboxQuery
from projections.queries import MAX_LIMIT
from projections.recommend import (
    DEFAULT_SETTINGS,
    Recommendation,
    RecommendationSettings,
    recommend,
)
from projections.rows import InterruptRow
from projections.stats import DIMENSIONS, DecisionFact, Dimension, GateFact, StatRow
from projections.whatif import CallFact, Policy, WhatIf, what_if


class InsightSource(Protocol):
    """The reads behind the insights; `ProjectionStore` is the PostgreSQL one."""

    async def fetch_inbox(
        self,
        *,
        keys: Sequence[str] | None = None,
        principal: str | None = None,
        overdue_at: datetime | None = None,
        closed: bool = False,
        limit: int = 100,
    ) -> list[InterruptRow]: ...

    async def fetch_inbox_page(
        self, query: InboxQuery, now: datetime, due_soon: timedelta
    ) -> tuple[list[InterruptRow], dict[SlaState, int], int]: ...

    async def fetch_overdue_by_team(self, now: datetime) -> list[TeamOverdue]: ...

    async def fetch_stats(self, by: Dimension) -> list[StatRow]: ...

    async def fetch_decision_facts(self, since: datetime | None = None) -> list[DecisionFact]: ...

    async def fetch_gate_facts(self, since: datetime | None = None) -> list[GateFact]: ...

    async def fetch_calls(self, since: datetime | None = None) -> list[CallFact]: ...


class Insights:
    """Arguments are checked here (`ValueError`): a limit outside 1..10000, an unknown
    dimension, a naive time. `clock` gives "now" for ages and SLA states."""

    def __init__(
        self,
        store: InsightSource,
        *,
        due_soon: timedelta = DEFAULT_DUE_SOON,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._store = store
        self._due_soon = due_soon
        self._clock = clock or (lambda: datetime.now(UTC))

    async def inbox(
        self,
        principal: str | None = None,
        roles: Sequence[str] = (),
        *,
        overdue: bool = False,
        closed: bool = False,
        limit: int = 100,
    ) -> list[InboxItem]:
        """Open requests, oldest first: all, or those `principal` (holding `roles`) may
        decide now; only overdue ones with `overdue`. With `closed`: closed requests and
        their outcome, latest first."""
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
        if roles and principal is None:
            raise ValueError("roles narrow down a principal: give the principal too")
        now = self._clock()
        keys = None if principal is None else (principal, *role_names(tuple(roles)))
        rows = await self._store.fetch_inbox(
            keys=keys,
            principal=principal,
            overdue_at=now if overdue and not closed else None,
            closed=closed,
            limit=limit,
        )
        return [InboxItem.of(row, now, self._due_soon) for row in rows]

    async def inbox_page(self, query: InboxQuery) -> InboxPage:
        """One page of the inbox as `query` asks (`projections.inbox_query`), with the SLA
        counts beside it; `ValueError` for a query that is out of bounds."""
        now = self._clock()
        rows, counts, total = await self._store.fetch_inbox_page(
            query.checked(), now, self._due_soon
        )
        items = [InboxItem.of(row, now, self._due_soon) for row in rows]
        return InboxPage(items=items, counts=counts, total=total, query=query, now=now)

    @property
    def due_soon(self) -> timedelta:
        return self._due_soon

    async def overdue_by_team(self) -> list[TeamOverdue]:
        """Overdue open requests per approver entry (team), most overdue first."""
        return await self._store.fetch_overdue_by_team(self._clock())

    async def stats(self, by: Dimension = "tool") -> list[StatRow]:
        if by not in DIMENSIONS:
            raise ValueError(f"unknown dimension {by!r}; one of {', '.join(DIMENSIONS)}")
        return await self._store.fetch_stats(by)

    async def recommendations(
        self,
        settings: RecommendationSettings = DEFAULT_SETTINGS,
        since: datetime | None = None,
    ) -> list[Recommendation]:
        _aware(since)
        return recommend(await self._store.fetch_decision_facts(since), settings)

    async def what_if(self, policy: Policy, since: datetime | None = None) -> WhatIf:
        _aware(since)
        return what_if(policy, await self._store.fetch_calls(since))


def _aware(since: datetime | None) -> None:
    if since is not None and since.tzinfo is None:
        raise ValueError("since must be timezone-aware")
