"""The write path of the PostgreSQL store: positions, their log, and one batch per
transaction (I/O).

`apply` writes one batch in one transaction: it locks the projection's position rows of the
batch's partitions, drops every record below the stored positions (already applied: exactly
once), inserts the events index rows, folds the new events onto the runs' stored state in
Python (`projections.fold`) and upserts each run's and interrupt's final row once, inserts the
audit and error rows, and moves the positions. The steps are `projections.applying`'s, which
the in-memory twin follows too.

One statement per table per batch, never one per event: events and audit rows are COPYed
(binary), runs, interrupts, errors and positions go in with one `INSERT ... SELECT FROM
unnest($1::type[], ...)` each (upserts where a row changes). About ten round trips a batch.
"""

from __future__ import annotations

import asyncio
import contextlib
from asyncio import Event
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from projections import applying
from projections.batch import Applied, BatchItem, LoggedEvent, Unusable
from projections.event_record import event_record
from projections.fold import Folded, RunView, fold
from projections.store_columns import Table, columns_of
from projections.store_db import StorePart
from projections.store_tables import AUDIT, ERRORS, EVENTS, INTERRUPTS, RUNS
from projections.waiting import until_set_or_done


class PostgresWriter(StorePart):
    """`ProjectionWriter`, `LogBound` and `IndexesAhead` on PostgreSQL."""

    indexes_ahead = True

    async def positions(self, projection: str, topic: str) -> dict[int, int]:
        """The next offset to read per partition, for the partitions the projection has seen."""
        rows = await self._db.fetch(
            'SELECT "partition", next_offset FROM cs_projection_positions'
            " WHERE projection = $1 AND topic = $2",
            projection,
            topic,
        )
        return {int(r["partition"]): int(r["next_offset"]) for r in rows}

    async def log_binding(self, projection: str, topic: str) -> str | None:
        """The log the positions were read from (`EventLog.log_id`); None before the first."""
        found = await self._db.fetchval(
            "SELECT log_id FROM cs_projection_logs WHERE projection = $1 AND topic = $2",
            projection,
            topic,
        )
        return None if found is None else str(found)

    async def bind_log(self, projection: str, topic: str, log_id: str) -> str:
        """Bind the positions to `log_id` unless they are bound already; the log they are
        bound to now (another one when someone bound them first)."""
        async with self._db.transaction("bind_log") as conn:
            await conn.execute(
                "INSERT INTO cs_projection_logs (projection, topic, log_id) VALUES ($1, $2, $3)"
                " ON CONFLICT (projection, topic) DO NOTHING",
                projection,
                topic,
                log_id,
            )
        bound = await self.log_binding(projection, topic)
        assert bound is not None  # inserted above, never deleted
        return bound

    async def apply(
        self,
        projection: str,
        topic: str,
        items: Sequence[BatchItem],
        *,
        built: Event | None = None,
    ) -> Applied:
        """Project `items` (in log order per partition) and move the positions, atomically.

        Items below the stored position of their partition are skipped, so applying the same
        batch twice, or an overlapping one, changes nothing the second time. Raises
        `StoreUnavailable` (nothing written; retry) or `UnstorableBatch` (nothing written;
        some item's data is refused). `built` is set once every row is built, when what is
        left is PostgreSQL's work.
        """
        if not items:
            return Applied()
        try:
            async with self._db.writing("apply") as conn:
                return await _apply(conn, projection, topic, items, built or Event(), copy=True)
        except _AlreadyIndexed:
            pass  # that transaction was rolled back: write the batch again, knowing
        async with self._db.writing("apply") as conn:
            return await _apply(conn, projection, topic, items, built or Event(), copy=False)


class _AlreadyIndexed(Exception):
    """COPY met an event already indexed (the same run and seq from another record)."""


async def _apply(
    conn: Any,
    projection: str,
    topic: str,
    items: Sequence[BatchItem],
    built: Event,
    *,
    copy: bool,
) -> Applied:
    stored = await _lock_positions(conn, projection, topic, sorted({i.partition for i in items}))
    fresh = applying.fresh(stored, items)
    logged = [i for i in fresh if isinstance(i, LoggedEvent)]
    events, unchained = applying.chained(logged, await _heads(conn, logged))
    unusable = [i for i in fresh if isinstance(i, Unusable)] + unchained
    if copy:  # every event is new, or COPY fails: fold while PostgreSQL takes the index rows
        new, repeated = list(events), list[LoggedEvent]()
        views = await _load_views(conn, new)
        async with _copying(conn, new):
            writes = _writes(projection, topic, fold(views, new), unusable)
            built.set()
    else:
        new, repeated = await _insert_events(conn, events)
        refused = unusable + [applying.duplicate(e) for e in repeated]
        writes = _writes(projection, topic, fold(await _load_views(conn, new), new), refused)
        built.set()
    await _execute(conn, _UPSERT_RUNS, writes.runs)
    await _execute(conn, _UPSERT_INTERRUPTS, writes.interrupts)
    if writes.audit:  # new events only, so their audit rows are new: COPY them
        await conn.copy_records_to_table(
            AUDIT.name, records=writes.audit, columns=list(AUDIT.written)
        )
    await _execute(conn, _INSERT_ERRORS, writes.errors)
    moved = applying.next_positions(stored, fresh)
    await _save_positions(conn, projection, topic, moved, applying.latest_times(events))
    return Applied(
        events=len(new),
        duplicates=len(repeated),
        unusable=len(unusable),
        skipped=len(items) - len(fresh),
        positions={**stored, **moved},
    )


async def _lock_positions(
    conn: Any, projection: str, topic: str, partitions: list[int]
) -> dict[int, int]:
    """The stored positions, with their rows locked until the transaction ends (created at 0
    when missing), so two projectors never apply the same records concurrently."""
    rows = await conn.fetch(
        'INSERT INTO cs_projection_positions (projection, topic, "partition", next_offset)'
        " SELECT $1, $2, p, 0 FROM unnest($3::integer[]) AS p"
        ' ON CONFLICT (projection, topic, "partition")'
        " DO UPDATE SET next_offset = cs_projection_positions.next_offset"
        ' RETURNING "partition", next_offset',
        projection,
        topic,
        partitions,
    )
    return {int(r["partition"]): int(r["next_offset"]) for r in rows}


async def _save_positions(
    conn: Any,
    projection: str,
    topic: str,
    positions: Mapping[int, int],
    latest_us: Mapping[int, int],
) -> None:
    """Move the positions; remember the time of each partition's latest event (lag in s)."""
    if not positions:
        return
    latest = [applying.time_or_none(latest_us.get(p)) for p in positions]
    await conn.execute(
        "UPDATE cs_projection_positions AS t SET next_offset = u.o, updated_at = now(),"
        " last_event_at = greatest(t.last_event_at, u.at)"
        " FROM unnest($3::integer[], $4::bigint[], $5::timestamptz[]) AS u(p, o, at)"
        ' WHERE t.projection = $1 AND t.topic = $2 AND t."partition" = u.p',
        projection,
        topic,
        list(positions),
        list(positions.values()),
        latest,
    )


@dataclass(frozen=True, slots=True)
class _Writes:
    """A batch's statement parameters, built before the first of them is sent."""

    runs: tuple[list[Any], ...] | None
    interrupts: tuple[list[Any], ...] | None
    audit: list[tuple[Any, ...]]
    errors: tuple[list[Any], ...] | None


def _writes(projection: str, topic: str, folded: Folded, refused: Sequence[Unusable]) -> _Writes:
    return _Writes(
        runs=RUNS.params(folded.runs),
        interrupts=INTERRUPTS.params(folded.interrupts),
        audit=AUDIT.records(folded.audit),
        errors=ERRORS.params([applying.error_row(projection, topic, i) for i in refused]),
    )


@contextlib.asynccontextmanager
async def _copying(conn: Any, events: Sequence[LoggedEvent]) -> AsyncIterator[None]:
    """COPY the events index rows while the body runs, so that the body's work (the fold:
    this process's CPU) and PostgreSQL's (taking the rows) overlap instead of taking turns.

    The body starts once asyncpg has handed every row to the connection: asyncpg encodes
    them without yielding, so a body started earlier would hold back the rest. An event
    already indexed fails the COPY (`_AlreadyIndexed`), and with it the transaction, so
    whatever the body built is dropped. The connection is free again on every way out.
    """
    if not events:
        yield
        return
    handed = asyncio.Event()

    def rows() -> Iterator[tuple[Any, ...]]:
        for event in events:
            yield event_record(event)
        handed.set()

    copy = conn.copy_records_to_table(EVENTS.name, records=rows(), columns=list(EVENTS.written))
    copying = asyncio.ensure_future(copy)
    try:
        await until_set_or_done(handed, copying)
        if handed.is_set():
            yield
        await copying  # its refusal, when it failed before every row was handed
    except asyncpg.UniqueViolationError as error:
        raise _AlreadyIndexed(str(error)) from error
    except BaseException:
        copying.cancel()
        with contextlib.suppress(BaseException):  # the body's exception is the one to raise
            await copying
        raise


async def _insert_events(
    conn: Any, events: Sequence[LoggedEvent]
) -> tuple[list[LoggedEvent], list[LoggedEvent]]:
    """Insert the events index rows with INSERT ... ON CONFLICT DO NOTHING: the events that
    were new, and those already indexed (the same run and seq from another record)."""
    if not events:
        return [], []
    records = [event_record(e) for e in events]
    rows = await conn.fetch(_INSERT_EVENTS, *(columns_of(records) or ()))
    inserted = {(int(r["partition"]), int(r["offset"])) for r in rows}
    new = [e for e in events if (e.partition, e.offset) in inserted]
    return new, [e for e in events if (e.partition, e.offset) not in inserted]


async def _heads(conn: Any, events: Sequence[LoggedEvent]) -> dict[str, applying.Head]:
    """The last projected event (seq, hash) of each run the batch continues."""
    run_ids = applying.runs_with_history(events)
    if not run_ids:
        return {}
    rows = await conn.fetch(
        "SELECT DISTINCT ON (run_id) run_id, seq, hash FROM cs_events"
        " WHERE run_id = ANY($1::text[]) ORDER BY run_id, seq DESC",
        run_ids,
    )
    return {str(r["run_id"]): (int(r["seq"]), str(r["hash"])) for r in rows}


async def _load_views(conn: Any, events: Sequence[LoggedEvent]) -> dict[str, RunView]:
    """The stored state of the batch's runs that the fold needs. No row lock is needed: a
    run lives in one partition, and the partition's position row is locked."""
    run_ids, interrupt_ids = applying.stored_state_needed(events)
    if not run_ids:
        return {}
    runs = await conn.fetch(
        f"SELECT {RUNS.column_list()} FROM cs_runs WHERE run_id = ANY($1::text[])", run_ids
    )
    interrupts = await conn.fetch(
        f"SELECT {INTERRUPTS.column_list()} FROM cs_interrupts"
        " WHERE run_id = ANY($1::text[]) AND status = 'open'"
        f" UNION ALL SELECT {INTERRUPTS.column_list()} FROM cs_interrupts"
        " WHERE interrupt_id = ANY($2::text[])"
        f" UNION ALL SELECT {INTERRUPTS.column_list()} FROM cs_interrupts"
        " WHERE run_id = ANY($3::text[]) AND status = 'withdrawn'",
        run_ids,
        interrupt_ids,
        applying.resumed_runs(events),
    )
    return applying.views_of(map(RUNS.from_record, runs), map(INTERRUPTS.from_record, interrupts))


def _upsert_sql(table: Table[Any], key: str) -> str:
    updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in table.written if c != key)
    return (
        f"INSERT INTO {table.name} ({table.column_list(written=True)}) {table.select_unnest()}"
        f' ON CONFLICT ("{key}") DO UPDATE SET {updates}'
    )


_INSERT_EVENTS = (
    f"INSERT INTO cs_events ({EVENTS.column_list(written=True)}) {EVENTS.select_unnest()}"
    ' ON CONFLICT (run_id, seq) DO NOTHING RETURNING "partition", "offset"'
)
_UPSERT_RUNS = _upsert_sql(RUNS, "run_id")
_UPSERT_INTERRUPTS = _upsert_sql(INTERRUPTS, "interrupt_id")
_INSERT_ERRORS = (
    f"INSERT INTO {ERRORS.name} ({ERRORS.column_list(written=True)}) {ERRORS.select_unnest()}"
    " ON CONFLICT DO NOTHING"
)


async def _execute(conn: Any, sql: str, params: tuple[list[Any], ...] | None) -> None:
    if params is not None:
        await conn.execute(sql, *params)
