"""The reads of the PostgreSQL store: runs, events, interrupts, audit, errors, positions,
and what verification reads (I/O). Every query is `store_columns.select` over a table of
`store_tables`, so columns and rows come from one declaration."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from projections.rows import AuditRow, ErrorRow, EventRow, InterruptRow, RunRow, StoredPosition
from projections.store_columns import select
from projections.store_db import StorePart
from projections.store_tables import AUDIT, ERRORS, EVENTS, INTERRUPTS, POSITIONS, RUNS


class PostgresReads(StorePart):
    """`ReadModel`, `PositionSource` and `VerifySource` on PostgreSQL."""

    async def fetch_run(self, run_id: str) -> RunRow | None:
        rows = await self._db.select(RUNS, select(RUNS, where=[("run_id = {}", run_id)]))
        return rows[0] if rows else None

    async def fetch_runs(self, status: str | None, limit: int) -> list[RunRow]:
        query = select(
            RUNS, where=[("status = {}", status)], order="started_at DESC, run_id", limit=limit
        )
        return await self._db.select(RUNS, query)

    async def fetch_events(self, run_id: str, from_seq: int = 0) -> list[EventRow]:
        """The run's indexed events from `from_seq` on, by seq (with their raw bytes)."""
        where = [("run_id = {}", run_id), ("seq >= {}", from_seq)]
        return await self._db.select(EVENTS, select(EVENTS, where=where, order="seq"))

    async def fetch_interrupts(self, run_id: str) -> list[InterruptRow]:
        query = select(INTERRUPTS, where=[("run_id = {}", run_id)], order="seq")
        return await self._db.select(INTERRUPTS, query)

    async def fetch_interrupt(self, interrupt_id: str) -> InterruptRow | None:
        query = select(INTERRUPTS, where=[("interrupt_id = {}", interrupt_id)])
        rows = await self._db.select(INTERRUPTS, query)
        return rows[0] if rows else None

    async def fetch_audit(
        self,
        *,
        run_id: str | None,
        actor: str | None,
        tool: str | None,
        since: datetime | None,
        limit: int,
        action: str | None = None,
    ) -> list[AuditRow]:
        where = [
            ("run_id = {}", run_id),
            ("actor = {}", actor),
            ("tool = {}", tool),
            ("at >= {}", since),
            ("action = {}", action),
        ]
        query = select(AUDIT, where=where, order="at, run_id, seq", limit=limit)
        return await self._db.select(AUDIT, query)

    async def fetch_errors(self, projection: str | None, limit: int) -> list[ErrorRow]:
        query = select(ERRORS, where=[("projection = {}", projection)], order="id", limit=limit)
        return await self._db.select(ERRORS, query)

    async def fetch_positions(self, projection: str, topic: str) -> list[StoredPosition]:
        where = [("projection = {}", projection), ("topic = {}", topic)]
        return await self._db.select(POSITIONS, select(POSITIONS, where=where, order='"partition"'))

    # -- what verification reads ----------------------------------------------------------------

    async def fetch_events_of(self, run_ids: Sequence[str]) -> dict[str, list[EventRow]]:
        """The indexed events of each run, by seq (rows as stored: verification reads them)."""
        where = [("run_id = ANY({}::text[])", list(run_ids))]
        query = select(EVENTS, where=where, order="run_id, seq")
        return _by_run(run_ids, await self._db.select(EVENTS, query))

    async def fetch_audit_of(self, run_ids: Sequence[str]) -> dict[str, list[AuditRow]]:
        where = [("run_id = ANY({}::text[])", list(run_ids))]
        query = select(AUDIT, where=where, order="run_id, seq, action")
        return _by_run(run_ids, await self._db.select(AUDIT, query))

    async def fetch_run_ids(self) -> list[str]:
        """Every run in the events index (for `verify --all`: runs the log no longer has)."""
        rows = await self._db.fetch("SELECT DISTINCT run_id FROM cs_events ORDER BY run_id")
        return [str(r["run_id"]) for r in rows]

    async def fetch_error_offsets(self, projection: str, topic: str) -> dict[tuple[int, int], str]:
        rows = await self._db.fetch(
            'SELECT "partition", "offset", reason FROM cs_projection_errors'
            " WHERE projection = $1 AND topic = $2",
            projection,
            topic,
        )
        return {(int(r["partition"]), int(r["offset"])): str(r["reason"]) for r in rows}


Row = TypeVar("Row", EventRow, AuditRow)


def _by_run(run_ids: Sequence[str], rows: list[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {run_id: [] for run_id in run_ids}
    for row in rows:
        out.setdefault(row.run_id, []).append(row)
    return out
