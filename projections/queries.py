"""The typed query API over the core read models (what the CLI and other tools call)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

from events.codec import Codec
from events.envelope import EventEnvelope
from events.run_events import InterruptRaised
from projections.card import ReviewCard, previous_args
from projections.describe import summarize
from projections.rows import (
    AUDIT_ACTIONS,
    RUN_STATUSES,
    AuditAction,
    AuditRow,
    ErrorRow,
    EventRow,
    InterruptRow,
    RunRow,
    RunStatus,
    TimelineEntry,
)

MAX_LIMIT = 10_000


class ReadModel(Protocol):
    """The reads a store offers; `ProjectionStore` is the PostgreSQL one."""

    async def fetch_run(self, run_id: str) -> RunRow | None: ...

    async def fetch_runs(self, status: str | None, limit: int) -> list[RunRow]: ...

    async def fetch_events(self, run_id: str, from_seq: int = 0) -> list[EventRow]: ...

    async def fetch_interrupts(self, run_id: str) -> list[InterruptRow]: ...

    async def fetch_interrupt(self, interrupt_id: str) -> InterruptRow | None: ...

    async def fetch_audit(
        self,
        *,
        run_id: str | None,
        actor: str | None,
        tool: str | None,
        since: datetime | None,
        limit: int,
        action: str | None = None,
    ) -> list[AuditRow]: ...

    async def fetch_errors(self, projection: str | None, limit: int) -> list[ErrorRow]: ...


class Queries:
    """Runs, timelines, interrupts and the audit log, as our own rows (each has `to_json()`).

    Arguments are checked here: an unknown status, a limit outside 1..10000 or a naive
    `since` raise `ValueError`.
    """

    def __init__(self, store: ReadModel, codec: Codec | None = None) -> None:
        self._store = store
        self._codec = codec

    async def get_run(self, run_id: str) -> RunRow | None:
        return await self._store.fetch_run(run_id)

    async def list_runs(self, status: RunStatus | None = None, limit: int = 50) -> list[RunRow]:
        """Most recently started first."""
        if status is not None and status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}; one of {', '.join(RUN_STATUSES)}")
        return await self._store.fetch_runs(status, _limit(limit))

    async def run_timeline(
        self,
        run_id: str,
        opened: Callable[[list[EventEnvelope]], Awaitable[list[EventEnvelope]]] | None = None,
    ) -> list[TimelineEntry]:
        """Every projected event of the run, by seq; empty for an unknown run. `opened`:
        what the events' sealed personal values read as (docs/erasure.md).

        Summaries are written from the events' stored bytes when asked for, not stored: the
        projection's hot path stays lean and a better wording applies to old events too.
        """
        if self._codec is None:
            self._codec = Codec()
        codec = self._codec
        rows = await self._store.fetch_events(run_id)
        events = [codec.decode_event(row.raw) for row in rows]
        if opened is not None:
            events = await opened(events)
        return [
            TimelineEntry(
                seq=row.seq,
                type=row.type,
                occurred_at=row.occurred_at,
                summary=summarize(event.payload),
            )
            for row, event in zip(rows, events, strict=True)
        ]

    async def events(self, run_id: str, from_seq: int = 0) -> list[EventRow]:
        """The run's indexed events (payload, log position, hash and bytes), by seq."""
        return await self._store.fetch_events(run_id, from_seq)

    async def interrupts(self, run_id: str) -> list[InterruptRow]:
        """The run's interrupts, open or closed, in the order they were raised."""
        return await self._store.fetch_interrupts(run_id)

    async def card(self, interrupt_id: str, now: datetime | None = None) -> ReviewCard | None:
        """The whole request as a reviewer decides it (see `projections.card`); None when no
        such interrupt is projected."""
        row = await self._store.fetch_interrupt(interrupt_id)
        if row is None:
            return None
        if self._codec is None:
            self._codec = Codec()
        events = await self._store.fetch_events(row.run_id, row.seq)
        if not events or events[0].seq != row.seq:
            return None
        raised = self._codec.decode_event(events[0].raw).payload
        if not isinstance(raised, InterruptRaised) or raised.interrupt_id != interrupt_id:
            return None
        siblings = await self._store.fetch_interrupts(row.run_id)
        return ReviewCard(
            row=row,
            request=raised.request,
            previous=previous_args(row, siblings),
            now=now or datetime.now(UTC),
        )

    async def audit(
        self,
        run_id: str | None = None,
        approver: str | None = None,
        tool: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        action: AuditAction | None = None,
    ) -> list[AuditRow]:
        """Audit entries, oldest first. `approver` matches who acted (a decision's author,
        `system:timeout` for expiries, `agent:<name>` for raised interrupts,
        `policy:<name@version>` for gate verdicts); `action` one kind of entry."""
        if since is not None and since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        if action is not None and action not in AUDIT_ACTIONS:
            raise ValueError(f"unknown audit action {action!r}; one of {', '.join(AUDIT_ACTIONS)}")
        return await self._store.fetch_audit(
            run_id=run_id,
            actor=approver,
            tool=tool,
            since=since,
            limit=_limit(limit),
            action=action,
        )

    async def errors(self, projection: str | None = None, limit: int = 100) -> list[ErrorRow]:
        """Records the projections could not use, oldest first."""
        return await self._store.fetch_errors(projection, _limit(limit))

    async def quarantined(self, limit: int = 1_000) -> list[AuditRow]:
        """Runs held in quarantine now (their last `run_quarantined` entry, not lifted since,
        the run not cancelled), oldest first: what an operator must look at."""
        held = await self.audit(action="run_quarantined", limit=limit)
        lifted = await self.audit(action="quarantine_lifted", limit=limit)
        last_lift = {row.run_id: row.seq for row in lifted}
        latest = {row.run_id: row for row in held if row.seq > last_lift.get(row.run_id, -1)}
        out = []
        for row in latest.values():
            run = await self.get_run(row.run_id)
            if run is None or run.status != "cancelled":
                out.append(row)
        return out


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    return limit
