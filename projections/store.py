"""The PostgreSQL adapter of the core projections (the only module here importing asyncpg).

`apply` writes one batch in one transaction: it locks the projection's position rows of the
batch's partitions, drops every record below the stored positions (already applied: exactly
once), inserts the events index rows, folds the new events onto the runs' stored state in
Python (`projections.fold`) and upserts each run's and interrupt's final row once, inserts the
audit and error rows, and moves the positions.

One statement per table per batch, never one per event: events and audit rows are COPYed
(binary), runs, interrupts, errors and positions go in with one `INSERT ... SELECT FROM
unnest($1::type[], ...)` each (upserts where a row changes). About ten round trips a batch.

asyncpg's objects stay in this module (and `store_rows.py`); callers get our dataclasses and
our errors: `StoreUnavailable` (retry), `UnstorableBatch` (poison; split the batch) and, for
anything else PostgreSQL refuses, `ProjectionsError`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from importlib import resources
from typing import Any

import asyncpg

from projections import store_insights as insights
from projections.batch import Applied, BatchItem, LoggedEvent, Unusable
from projections.errors import ProjectionsError, StoreUnavailable, UnstorableBatch
from projections.fold import RunView, fold, timestamp
from projections.inbox import TeamOverdue
from projections.rows import (
    AuditRow,
    ErrorRow,
    EventRow,
    InterruptRow,
    RunRow,
    StoredPosition,
)
from projections.stats import DecisionFact, Dimension, GateFact, StatRow
from projections.store_live import live_pointer, point_views, switch
from projections.store_rows import (
    AUDIT_COLUMNS,
    COLUMN_TYPES,
    EVENT_COLUMNS,
    INTERRUPT_COLUMNS,
    RUN_COLUMNS,
    audit_from,
    audit_records,
    column_list,
    columns_of,
    error_from,
    error_params,
    event_from,
    interrupt_from,
    interrupt_params,
    logged_records,
    run_from,
    run_params,
    select_unnest,
)
from projections.whatif import CallFact

__all__ = ["ProjectionStore"]

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_MIGRATION_LOCK = 0x63735F70726F6A  # any constant shared by every projector process
_POISON_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})  # data, integrity, program limits


class ProjectionStore:
    """The core read models in one PostgreSQL schema; `connect`, then `migrate` once."""

    def __init__(self, pool: Any, schema: str) -> None:
        self._pool = pool
        self.schema = schema

    @classmethod
    async def connect(
        cls, url: str, *, schema: str = "public", min_size: int = 1, max_size: int = 4
    ) -> ProjectionStore:
        """A pool of connections to `url` whose tables live in `schema`."""
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"schema name {schema!r} is not a plain lower-case identifier")
        async with _transient("connect"):
            pool = await asyncpg.create_pool(
                url,
                min_size=min_size,
                max_size=max_size,
                server_settings={"search_path": schema, "application_name": "countersign"},
            )
        return cls(pool, schema)

    async def close(self) -> None:
        await self._pool.close()

    async def migrate(self) -> None:
        """Create the schema, the tables and the views if missing; safe from many processes.

        The views (`views.sql`, the SQL contract) are the schema's own, unless this is a home
        schema whose pointer names another live schema: then that schema is migrated too and
        these views read through to it.
        """
        async with _transient("migrate"), self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            changed = await _migrate_schema(conn, self.schema)
            live = await live_pointer(conn, "core")
            if live is not None and live != self.schema:
                changed = await _migrate_schema(conn, live) or changed
                await conn.execute(f'SET LOCAL search_path TO "{self.schema}"')
                if changed:
                    await point_views(conn, live)

    # -- positions ----------------------------------------------------------------------------

    async def positions(self, projection: str, topic: str) -> dict[int, int]:
        """The next offset to read per partition, for the partitions the projection has seen."""
        async with _transient("positions"):
            rows = await self._pool.fetch(
                'SELECT "partition", next_offset FROM cs_projection_positions'
                " WHERE projection = $1 AND topic = $2",
                projection,
                topic,
            )
        return {int(r["partition"]): int(r["next_offset"]) for r in rows}

    # -- the write path -----------------------------------------------------------------------

    async def apply(self, projection: str, topic: str, items: Sequence[BatchItem]) -> Applied:
        """Project `items` (in log order per partition) and move the positions, atomically.

        Items below the stored position of their partition are skipped, so applying the same
        batch twice, or an overlapping one, changes nothing the second time. Raises
        `StoreUnavailable` (nothing written; retry) or `UnstorableBatch` (nothing written;
        some item's data is refused).
        """
        if not items:
            return Applied()
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                return await _apply(conn, projection, topic, items)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as error:
            raise _classified(error, "apply") from error
        except (ValueError, OverflowError, TypeError) as error:  # a value we cannot convert
            raise UnstorableBatch(f"apply: {type(error).__name__}: {error}") from error

    # -- reads --------------------------------------------------------------------------------

    async def fetch_run(self, run_id: str) -> RunRow | None:
        row = await self._fetchrow(f"SELECT {RUN_COLUMNS} FROM cs_runs WHERE run_id = $1", run_id)
        return None if row is None else run_from(row)

    async def fetch_runs(self, status: str | None, limit: int) -> list[RunRow]:
        where, args = _where([("status = {}", status)])
        rows = await self._fetch(
            f"SELECT {RUN_COLUMNS} FROM cs_runs{where}"
            f" ORDER BY started_at DESC, run_id LIMIT ${len(args) + 1}",
            *args,
            limit,
        )
        return [run_from(r) for r in rows]

    async def fetch_events(self, run_id: str, from_seq: int = 0) -> list[EventRow]:
        """The run's indexed events from `from_seq` on, by seq (with their raw bytes)."""
        rows = await self._fetch(
            f"SELECT {EVENT_COLUMNS} FROM cs_events WHERE run_id = $1 AND seq >= $2 ORDER BY seq",
            run_id,
            from_seq,
        )
        return [event_from(r) for r in rows]

    async def fetch_interrupts(self, run_id: str) -> list[InterruptRow]:
        rows = await self._fetch(
            f"SELECT {INTERRUPT_COLUMNS} FROM cs_interrupts WHERE run_id = $1 ORDER BY seq",
            run_id,
        )
        return [interrupt_from(r) for r in rows]

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
        where, args = _where(
            [
                ("run_id = {}", run_id),
                ("actor = {}", actor),
                ("tool = {}", tool),
                ("at >= {}", since),
                ("action = {}", action),
            ]
        )
        rows = await self._fetch(
            f"SELECT id, {AUDIT_COLUMNS} FROM cs_audit{where}"
            f" ORDER BY at, run_id, seq LIMIT ${len(args) + 1}",
            *args,
            limit,
        )
        return [audit_from(r) for r in rows]

    async def fetch_errors(self, projection: str | None, limit: int) -> list[ErrorRow]:
        where, args = _where([("projection = {}", projection)])
        rows = await self._fetch(
            'SELECT projection, topic, "partition", "offset", reason, raw, recorded_at'
            f" FROM cs_projection_errors{where} ORDER BY id LIMIT ${len(args) + 1}",
            *args,
            limit,
        )
        return [error_from(r) for r in rows]

    # -- the inbox, statistics and facts (SQL in store_insights.py) ----------------------------

    async def fetch_inbox(
        self,
        *,
        keys: Sequence[str] | None = None,
        principal: str | None = None,
        overdue_at: datetime | None = None,
        closed: bool = False,
        limit: int = 100,
    ) -> list[InterruptRow]:
        async with _transient("read"):
            return await insights.inbox(
                self._pool,
                keys=keys,
                principal=principal,
                overdue_at=overdue_at,
                closed=closed,
                limit=limit,
            )

    async def fetch_overdue_by_team(self, now: datetime) -> list[TeamOverdue]:
        async with _transient("read"):
            return await insights.overdue_by_team(self._pool, now)

    async def fetch_stats(self, by: Dimension) -> list[StatRow]:
        async with _transient("read"):
            return await insights.stats(self._pool, by)

    async def fetch_decision_facts(self, since: datetime | None = None) -> list[DecisionFact]:
        async with _transient("read"):
            return await insights.decision_facts(self._pool, since)

    async def fetch_gate_facts(self, since: datetime | None = None) -> list[GateFact]:
        async with _transient("read"):
            return await insights.gate_facts(self._pool, since)

    async def fetch_calls(self, since: datetime | None = None) -> list[CallFact]:
        async with _transient("read"):
            return await insights.calls(self._pool, since)

    async def fetch_events_of(self, run_ids: Sequence[str]) -> dict[str, list[EventRow]]:
        async with _transient("read"):
            return await insights.events_of(self._pool, run_ids)

    async def fetch_audit_of(self, run_ids: Sequence[str]) -> dict[str, list[AuditRow]]:
        async with _transient("read"):
            return await insights.audit_of(self._pool, run_ids)

    async def fetch_run_ids(self) -> list[str]:
        async with _transient("read"):
            return await insights.run_ids_of(self._pool)

    async def fetch_error_offsets(self, projection: str, topic: str) -> dict[tuple[int, int], str]:
        async with _transient("read"):
            return await insights.error_offsets(self._pool, projection, topic)

    async def fetch_positions(self, projection: str, topic: str) -> list[StoredPosition]:
        async with _transient("read"):
            return await insights.position_rows(self._pool, projection, topic)

    # -- the live pointer (store_live.py) -----------------------------------------------------

    async def live_schema(self, projection: str = "core") -> str:
        """The schema holding the live copy of `projection`, by this (home) schema's
        pointer: this schema itself when there is none."""
        async with _transient("read"), self._pool.acquire() as conn:
            return await live_pointer(conn, projection) or self.schema

    async def switch_live(self, projection: str, schema: str) -> str:
        """Point `projection` (and this schema's cs_v_* views) at `schema`, atomically; the
        schema that was live before."""
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"schema name {schema!r} is not a plain lower-case identifier")
        async with _transient("switch"), self._pool.acquire() as conn, conn.transaction():
            exists = "SELECT to_regclass(format('%I.cs_v_stats', $1::text))"
            if await conn.fetchval(exists, schema) is None:
                raise ValueError(f"schema {schema} holds no projection copy")
            return await switch(conn, projection, schema)

    async def drop_schema(self, schema: str) -> None:
        """Drop a copy that is no longer live (never this schema, never the live one)."""
        if schema == self.schema or schema == await self.live_schema():
            raise ValueError(f"schema {schema} is in use; it cannot be dropped")
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"schema name {schema!r} is not a plain lower-case identifier")
        async with _transient("drop"):
            await self._pool.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    async def _fetch(self, query: str, *args: object) -> list[Any]:
        async with _transient("read"):
            return list(await self._pool.fetch(query, *args))

    async def _fetchrow(self, query: str, *args: object) -> Any:
        async with _transient("read"):
            return await self._pool.fetchrow(query, *args)


async def _migrate_schema(conn: Any, schema: str) -> bool:
    """Run the scripts in `schema` unless it is up to date with them (their digest is
    stored there): a migration takes strong locks, so a current schema is not touched.
    True if the scripts ran."""
    scripts = [
        resources.files("projections").joinpath(name).read_text("utf-8")
        for name in ("schema.sql", "views.sql")
    ]
    digest = hashlib.sha256("\n".join(scripts).encode()).hexdigest()
    known = "SELECT to_regclass(format('%I.cs_projection_schema', $1::text)) IS NOT NULL"
    if await conn.fetchval(known, schema):
        stored = await conn.fetchval(
            f'SELECT digest FROM "{schema}".cs_projection_schema WHERE id = 1'
        )
        if stored == digest:
            return False
    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    await conn.execute(f'SET LOCAL search_path TO "{schema}"')
    for script in scripts:
        await conn.execute(script)
    await conn.execute(
        "INSERT INTO cs_projection_schema (id, digest) VALUES (1, $1)"
        " ON CONFLICT (id) DO UPDATE SET digest = EXCLUDED.digest, migrated_at = now()",
        digest,
    )
    return True


# -- the transaction of one batch ---------------------------------------------------------------


async def _apply(conn: Any, projection: str, topic: str, items: Sequence[BatchItem]) -> Applied:
    stored = await _lock_positions(conn, projection, topic, sorted({i.partition for i in items}))
    fresh = [i for i in items if i.offset >= stored[i.partition]]
    events = [i for i in fresh if isinstance(i, LoggedEvent)]
    unusable = [i for i in fresh if isinstance(i, Unusable)]
    inserted = await _insert_events(conn, events)
    new = [e for e in events if (e.partition, e.offset) in inserted]
    duplicates = [_duplicate(e) for e in events if (e.partition, e.offset) not in inserted]
    folded = fold(await _load_views(conn, new), new)
    await _execute(conn, _UPSERT_RUNS, run_params(folded.runs))
    await _execute(conn, _UPSERT_INTERRUPTS, interrupt_params(folded.interrupts))
    if folded.audit:  # new events only, so their audit rows are new: COPY them
        await conn.copy_records_to_table(
            "cs_audit", records=audit_records(folded.audit), columns=_AUDIT_COPY_COLUMNS
        )
    await _execute(conn, _INSERT_ERRORS, error_params(projection, topic, unusable + duplicates))
    moved = _next_positions(stored, fresh)
    await _save_positions(conn, projection, topic, moved, _latest(events))
    return Applied(
        events=len(new),
        duplicates=len(duplicates),
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


def _next_positions(stored: Mapping[int, int], fresh: Iterable[BatchItem]) -> dict[int, int]:
    moved: dict[int, int] = {}
    for item in fresh:
        moved[item.partition] = max(moved.get(item.partition, 0), item.offset + 1)
    return {p: o for p, o in moved.items() if o > stored[p]}


def _latest(events: Sequence[LoggedEvent]) -> dict[int, int]:
    """The latest `occurred_at_us` per partition among `events`."""
    latest: dict[int, int] = {}
    for event in events:
        at = event.envelope.occurred_at_us
        if at > latest.get(event.partition, -(2**63)):
            latest[event.partition] = at
    return latest


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
    latest = [_time_or_none(latest_us.get(p)) for p in positions]
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


def _time_or_none(us: int | None) -> datetime | None:
    if us is None:
        return None
    try:
        return timestamp(us)
    except OverflowError:  # such an event is stored as an error, its time is not kept
        return None


async def _insert_events(conn: Any, events: Sequence[LoggedEvent]) -> set[tuple[int, int]]:
    """Insert the events index rows; the (partition, offset) of those that were new.

    COPY first (about twice as fast as INSERT ... SELECT FROM unnest), in a savepoint; if an
    event is already indexed (the same run and seq from another record), that step is undone
    and the rows go in with ON CONFLICT DO NOTHING instead, which says which were new.
    """
    if not events:
        return set()
    records = logged_records(events)
    try:
        async with conn.transaction():  # nested: a savepoint
            await conn.copy_records_to_table(
                "cs_events", records=records, columns=_EVENT_COPY_COLUMNS
            )
    except asyncpg.UniqueViolationError:
        inserted = await conn.fetch(_INSERT_EVENTS, *columns_of(records))
        return {(int(r["partition"]), int(r["offset"])) for r in inserted}
    return {(e.partition, e.offset) for e in events}


def _duplicate(event: LoggedEvent) -> Unusable:
    env = event.envelope
    return Unusable(
        partition=event.partition,
        offset=event.offset,
        reason=f"duplicate: run {env.run_id} seq {env.seq} was already projected from another"
        " record; the first one is kept",
        raw=event.raw,
    )


async def _load_views(conn: Any, events: Sequence[LoggedEvent]) -> dict[str, RunView]:
    """The stored state of the batch's runs: their rows, their open interrupts and every
    interrupt an event of the batch names. No row lock is needed: a run lives in one
    partition, and the partition's position row is locked.

    A run whose first event here is its seq 0 has nothing stored yet, so it is not looked
    up: most runs in a batch of a busy log are such.
    """
    first_seq: dict[str, int] = {}
    for event in events:
        first_seq.setdefault(event.envelope.run_id, event.envelope.seq)
    run_ids = [run_id for run_id, seq in first_seq.items() if seq != 0]
    if not run_ids:
        return {}
    interrupt_ids = list(
        {
            interrupt_id
            for e in events
            if first_seq[e.envelope.run_id] != 0 and (interrupt_id := _interrupt_of(e))
        }
    )
    runs = await conn.fetch(
        f"SELECT {RUN_COLUMNS} FROM cs_runs WHERE run_id = ANY($1::text[])", run_ids
    )
    interrupts = await conn.fetch(
        f"SELECT {INTERRUPT_COLUMNS} FROM cs_interrupts"
        " WHERE run_id = ANY($1::text[]) AND status = 'open'"
        f" UNION ALL SELECT {INTERRUPT_COLUMNS} FROM cs_interrupts"
        " WHERE interrupt_id = ANY($2::text[])",
        run_ids,
        interrupt_ids,
    )
    by_run: dict[str, dict[str, InterruptRow]] = {}
    for record in interrupts:  # an open interrupt that an event names comes twice: same row
        row = interrupt_from(record)
        by_run.setdefault(row.run_id, {})[row.interrupt_id] = row
    views = {
        r.run_id: RunView(run=r, interrupts=by_run.pop(r.run_id, {})) for r in map(run_from, runs)
    }
    for run_id, known in by_run.items():  # interrupts of runs whose row is missing
        views[run_id] = RunView(interrupts=known)
    return views


def _interrupt_of(event: LoggedEvent) -> str | None:
    interrupt_id: str | None = getattr(event.envelope.payload, "interrupt_id", None)
    return interrupt_id


def _upsert_sql(table: str, key: str) -> str:
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMN_TYPES[table] if c != key)
    return (
        f"INSERT INTO {table} ({column_list(table)}) {select_unnest(table)}"
        f" ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )


def _insert_sql(table: str) -> str:
    return (
        f"INSERT INTO {table} ({column_list(table)}) {select_unnest(table)} ON CONFLICT DO NOTHING"
    )


_INSERT_EVENTS = (
    f"INSERT INTO cs_events ({EVENT_COLUMNS}) {select_unnest('cs_events')}"
    ' ON CONFLICT (run_id, seq) DO NOTHING RETURNING "partition", "offset"'
)
_EVENT_COPY_COLUMNS = list(COLUMN_TYPES["cs_events"])
_AUDIT_COPY_COLUMNS = list(COLUMN_TYPES["cs_audit"])
_UPSERT_RUNS = _upsert_sql("cs_runs", "run_id")
_UPSERT_INTERRUPTS = _upsert_sql("cs_interrupts", "interrupt_id")
_INSERT_ERRORS = _insert_sql("cs_projection_errors")


async def _execute(conn: Any, sql: str, params: tuple[list[Any], ...] | None) -> None:
    if params is not None:
        await conn.execute(sql, *params)


# -- errors -------------------------------------------------------------------------------------


def _classified(error: BaseException, what: str) -> StoreUnavailable | UnstorableBatch:
    """Data the server or driver refuses is poison; anything else is worth a retry."""
    sqlstate = getattr(error, "sqlstate", None) or ""
    message = f"{what}: {type(error).__name__}: {error}"
    if sqlstate[:2] in _POISON_SQLSTATE_CLASSES or isinstance(error, asyncpg.DataError):
        return UnstorableBatch(f"{message} (sqlstate {sqlstate or 'client'})")
    return StoreUnavailable(message)


@asynccontextmanager
async def _transient(what: str) -> AsyncIterator[None]:
    """Connection trouble becomes `StoreUnavailable`, anything else from asyncpg
    `ProjectionsError`: no asyncpg type leaves this module."""
    try:
        yield
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as error:
        classified = _classified(error, what)
        if isinstance(classified, StoreUnavailable):
            raise classified from error
        raise ProjectionsError(str(classified)) from error


def _where(conditions: Sequence[tuple[str, object]]) -> tuple[str, list[object]]:
    """` WHERE a = $1 AND ...` for the conditions whose value is not None, and the values."""
    clauses: list[str] = []
    args: list[object] = []
    for template, value in conditions:
        if value is not None:
            args.append(value)
            clauses.append(template.format(f"${len(args)}"))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args
