"""The in-memory twin of the PostgreSQL store: its writer, reads and log binding in Python
dictionaries (no I/O). The contract suite (`tests/contracts/test_projection_store_contract.py`)
holds both to one meaning.

It applies a batch with the same steps (`projections.applying`) and keeps every row as the
PostgreSQL store would read it back: each goes through its table's mapping to database values
and back (`store_tables`), so text and JSON are cleaned the same way. What only the server
would refuse is refused here too where it matters to the projector: text holding NUL in a
column that is not cleaned. A batch is staged first and kept only if all of it could be:
all or nothing, like a transaction. The inbox, statistics and facts are SQL views: this twin
has none of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TypeVar

from projections import applying
from projections.batch import Applied, BatchItem, LoggedEvent, Unusable
from projections.errors import UnstorableBatch
from projections.fold import RunView, event_row, fold
from projections.rows import AuditRow, ErrorRow, EventRow, InterruptRow, RunRow, StoredPosition
from projections.store_columns import Table
from projections.store_tables import AUDIT, ERRORS, EVENTS, INTERRUPTS, RUNS

R = TypeVar("R")


@dataclass(slots=True)
class _Staged:
    """What one batch changes, computed before anything is kept."""

    events: list[EventRow] = field(default_factory=list)
    runs: list[RunRow] = field(default_factory=list)
    interrupts: list[InterruptRow] = field(default_factory=list)
    audit: list[AuditRow] = field(default_factory=list)
    errors: list[ErrorRow] = field(default_factory=list)
    positions: dict[int, StoredPosition] = field(default_factory=dict)


class MemoryStore:
    """`ProjectionWriter`, `LogBound`, `ReadModel`, `PositionSource` and `VerifySource`."""

    def __init__(
        self, *, schema: str = "memory", clock: Callable[[], datetime] | None = None
    ) -> None:
        self.schema = schema
        self._clock = clock or (lambda: datetime.now(UTC))
        self._positions: dict[tuple[str, str], dict[int, StoredPosition]] = {}
        self._logs: dict[tuple[str, str], str] = {}
        self._events: dict[str, dict[int, EventRow]] = {}
        self._runs: dict[str, RunRow] = {}
        self._interrupts: dict[str, InterruptRow] = {}
        self._audit: list[AuditRow] = []
        self._errors: dict[tuple[str, str, int, int], ErrorRow] = {}

    async def close(self) -> None:
        return None

    # -- the writer -----------------------------------------------------------------------------

    async def positions(self, projection: str, topic: str) -> dict[int, int]:
        held = self._positions.get((projection, topic), {})
        return {p: row.next_offset for p, row in held.items()}

    async def log_binding(self, projection: str, topic: str) -> str | None:
        return self._logs.get((projection, topic))

    async def bind_log(self, projection: str, topic: str, log_id: str) -> str:
        return self._logs.setdefault((projection, topic), log_id)

    async def apply(
        self,
        projection: str,
        topic: str,
        items: Sequence[BatchItem],
        *,
        built: asyncio.Event | None = None,
    ) -> Applied:
        """`ProjectionWriter.apply`; all of it is this process's work, so `built` is not set
        (the projector decodes once it is done)."""
        if not items:
            return Applied()
        held = self._positions.setdefault((projection, topic), {})
        stored = {
            p: held[p].next_offset if p in held else 0 for p in sorted({i.partition for i in items})
        }
        try:
            staged, applied = self._stage(projection, topic, stored, items)
        except (ValueError, OverflowError, TypeError, RecursionError) as error:
            raise UnstorableBatch(f"apply: {type(error).__name__}: {error}") from error
        self._keep(projection, topic, staged)
        return applied

    def _stage(
        self, projection: str, topic: str, stored: dict[int, int], items: Sequence[BatchItem]
    ) -> tuple[_Staged, Applied]:
        staged = _Staged()
        fresh = applying.fresh(stored, items)
        logged = [i for i in fresh if isinstance(i, LoggedEvent)]
        events, unchained = applying.chained(logged, self._heads(logged))
        unusable = [i for i in fresh if isinstance(i, Unusable)] + unchained
        new, duplicates = self._new_and_duplicates(events)
        staged.events = [_as_stored(EVENTS, event_row(e)) for e in new]
        folded = fold(self._views(new), new)
        staged.runs = [_as_stored(RUNS, r) for r in folded.runs]
        staged.interrupts = [_as_stored(INTERRUPTS, i) for i in folded.interrupts]
        staged.audit = [_as_stored(AUDIT, a, id=None) for a in folded.audit]
        errors = [applying.error_row(projection, topic, i) for i in unusable + duplicates]
        staged.errors = [_as_stored(ERRORS, e, recorded_at=self._clock()) for e in errors]
        moved = applying.next_positions(stored, fresh)
        staged.positions = self._moved(projection, topic, stored, moved, events)
        applied = Applied(
            events=len(new),
            duplicates=len(duplicates),
            unusable=len(unusable),
            skipped=len(items) - len(fresh),
            positions={**stored, **moved},
        )
        return staged, applied

    def _heads(self, events: Sequence[LoggedEvent]) -> dict[str, applying.Head]:
        heads = {}
        for run_id in applying.runs_with_history(events):
            stored = self._events.get(run_id)
            if stored:
                last = stored[max(stored)]
                heads[run_id] = (last.seq, last.hash)
        return heads

    def _new_and_duplicates(
        self, events: Iterable[LoggedEvent]
    ) -> tuple[list[LoggedEvent], list[Unusable]]:
        new: list[LoggedEvent] = []
        duplicates: list[Unusable] = []
        taken: set[tuple[str, int]] = set()
        for event in events:
            key = (event.envelope.run_id, event.envelope.seq)
            if key in taken or key[1] in self._events.get(key[0], {}):
                duplicates.append(applying.duplicate(event))
            else:
                taken.add(key)
                new.append(event)
        return new, duplicates

    def _views(self, events: Sequence[LoggedEvent]) -> dict[str, RunView]:
        run_ids, interrupt_ids = applying.stored_state_needed(events)
        if not run_ids:
            return {}
        wanted = set(run_ids)
        open_ones = [
            i for i in self._interrupts.values() if i.run_id in wanted and i.status == "open"
        ]
        named = [self._interrupts[i] for i in interrupt_ids if i in self._interrupts]
        resumed = set(applying.resumed_runs(events))
        named += [
            i for i in self._interrupts.values() if i.run_id in resumed and i.status == "withdrawn"
        ]
        runs = [self._runs[r] for r in run_ids if r in self._runs]
        return applying.views_of(runs, open_ones + named)

    def _moved(
        self,
        projection: str,
        topic: str,
        stored: Mapping[int, int],
        moved: Mapping[int, int],
        events: Iterable[LoggedEvent],
    ) -> dict[int, StoredPosition]:
        held = self._positions[(projection, topic)]
        latest = applying.latest_times(events)
        positions = {}
        for partition in stored:
            before = held.get(partition) or StoredPosition(
                partition=partition, next_offset=0, last_event_at=None, updated_at=None
            )
            if partition not in moved:
                positions[partition] = before
                continue
            at = applying.time_or_none(latest.get(partition))
            last = max((t for t in (before.last_event_at, at) if t is not None), default=None)
            positions[partition] = replace(
                before, next_offset=moved[partition], last_event_at=last, updated_at=self._clock()
            )
        return positions

    def _keep(self, projection: str, topic: str, staged: _Staged) -> None:
        for event in staged.events:
            self._events.setdefault(event.run_id, {})[event.seq] = event
        self._runs.update((r.run_id, r) for r in staged.runs)
        self._interrupts.update((i.interrupt_id, i) for i in staged.interrupts)
        for row in staged.audit:
            self._audit.append(replace(row, id=len(self._audit) + 1))
        for error in staged.errors:
            self._errors.setdefault((projection, topic, error.partition, error.offset), error)
        self._positions[(projection, topic)].update(staged.positions)

    # -- reads ----------------------------------------------------------------------------------

    async def fetch_run(self, run_id: str) -> RunRow | None:
        return self._runs.get(run_id)

    async def fetch_runs(self, status: str | None, limit: int) -> list[RunRow]:
        runs = sorted(self._runs.values(), key=lambda r: r.run_id)
        runs.sort(key=lambda r: r.started_at, reverse=True)
        return [r for r in runs if status is None or r.status == status][:limit]

    async def fetch_events(self, run_id: str, from_seq: int = 0) -> list[EventRow]:
        events = self._events.get(run_id, {})
        return [events[seq] for seq in sorted(events) if seq >= from_seq]

    async def fetch_interrupts(self, run_id: str) -> list[InterruptRow]:
        mine = [i for i in self._interrupts.values() if i.run_id == run_id]
        return sorted(mine, key=lambda i: i.seq)

    async def fetch_interrupt(self, interrupt_id: str) -> InterruptRow | None:
        return self._interrupts.get(interrupt_id)

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
        wanted = {"run_id": run_id, "actor": actor, "tool": tool, "action": action}
        found = [
            a
            for a in self._audit
            if all(v is None or getattr(a, k) == v for k, v in wanted.items())
            and (since is None or a.at >= since)
        ]
        return sorted(found, key=lambda a: (a.at, a.run_id, a.seq))[:limit]

    async def fetch_errors(self, projection: str | None, limit: int) -> list[ErrorRow]:
        found = [e for e in self._errors.values() if projection in (None, e.projection)]
        return found[:limit]

    async def fetch_positions(self, projection: str, topic: str) -> list[StoredPosition]:
        held = self._positions.get((projection, topic), {})
        return [held[p] for p in sorted(held)]

    # -- what verification reads ----------------------------------------------------------------

    async def fetch_events_of(self, run_ids: Sequence[str]) -> dict[str, list[EventRow]]:
        return {run_id: await self.fetch_events(run_id) for run_id in run_ids}

    async def fetch_audit_of(self, run_ids: Sequence[str]) -> dict[str, list[AuditRow]]:
        out: dict[str, list[AuditRow]] = {run_id: [] for run_id in run_ids}
        for row in sorted(self._audit, key=lambda a: (a.run_id, a.seq, a.action)):
            if row.run_id in out:
                out[row.run_id].append(row)
        return out

    async def fetch_run_ids(self) -> list[str]:
        return sorted(run_id for run_id, events in self._events.items() if events)

    async def fetch_error_offsets(self, projection: str, topic: str) -> dict[tuple[int, int], str]:
        return {
            (e.partition, e.offset): e.reason
            for e in self._errors.values()
            if (e.projection, e.topic) == (projection, topic)
        }


def _as_stored(table: Table[R], row: R, **generated: object) -> R:
    """`row` as the PostgreSQL store would read it back: written and fetched again (text and
    JSON cleaned), with the columns the database fills given here."""
    record = table.record(row)
    for value in record:
        if isinstance(value, str) and "\x00" in value:  # left uncleaned: the server refuses it
            raise ValueError(f"{table.name}: text holding NUL is refused: {value[:80]!r}")
    return table.from_record({**dict(zip(table.written, record, strict=True)), **generated})
