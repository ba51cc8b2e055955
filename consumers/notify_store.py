"""The notifier's ledger in PostgreSQL (I/O, asyncpg): `consumers.notify_ledger.Ledger`.

Two tables in a schema of their own (default `countersign_notify`), in the projections'
database: positions per approvals partition and deliveries keyed by their id. `record` is one
transaction (deliveries inserted `ON CONFLICT DO NOTHING`, cancellations, the position);
`claim` leases due rows with `FOR UPDATE SKIP LOCKED`, so notifiers sharing the ledger never
take the same delivery at once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from consumers.notify_ledger import Entry
from consumers.notify_plan import Delivery
from projections.store_db import schema_name

_SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS "{schema}";
CREATE TABLE IF NOT EXISTS "{schema}".positions (
    topic text NOT NULL, partition integer NOT NULL, next_offset bigint NOT NULL,
    PRIMARY KEY (topic, partition));
CREATE TABLE IF NOT EXISTS "{schema}".deliveries (
    id text PRIMARY KEY, interrupt_id text NOT NULL, run_id text NOT NULL,
    channel text NOT NULL, kind text NOT NULL, due_at timestamptz NOT NULL,
    message jsonb NOT NULL, status text NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0, lease_until timestamptz, owner text NOT NULL DEFAULT '',
    last_error text NOT NULL DEFAULT '', sent_at timestamptz);
CREATE INDEX IF NOT EXISTS deliveries_due_idx
    ON "{schema}".deliveries (due_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_interrupt_idx ON "{schema}".deliveries (interrupt_id);
"""
_COLUMNS = (
    "id, interrupt_id, run_id, channel, kind, due_at, message, status, attempts, lease_until,"
    " owner, last_error, sent_at"
)
_LOCK = 0x63735F6E6F7469  # migrations from several notifiers at once


class PostgresLedger:
    def __init__(self, pool: Any, schema: str) -> None:
        self._pool = pool
        self._schema = schema

    @classmethod
    async def connect(cls, url: str, *, schema: str = "countersign_notify") -> PostgresLedger:
        schema_name(schema, "notification ledger schema")  # it is quoted into SQL
        pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
        ledger = cls(pool, schema)
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            await conn.execute(_SCHEMA_SQL.format(schema=schema))
        return ledger

    async def close(self) -> None:
        await self._pool.close()

    @property
    def _t(self) -> str:
        return f'"{self._schema}"'

    async def positions(self, topic: str) -> dict[int, int]:
        rows = await self._pool.fetch(
            f"SELECT partition, next_offset FROM {self._t}.positions WHERE topic = $1", topic
        )
        return {int(r["partition"]): int(r["next_offset"]) for r in rows}

    async def record(
        self,
        topic: str,
        partition: int,
        next_offset: int,
        deliveries: Sequence[Delivery],
        closes: Sequence[str],
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            if deliveries:
                await conn.executemany(
                    f"INSERT INTO {self._t}.deliveries (id, interrupt_id, run_id, channel, kind,"
                    " due_at, message) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)"
                    " ON CONFLICT (id) DO NOTHING",
                    [_row(d) for d in deliveries],
                )
            if closes:
                await conn.execute(
                    f"UPDATE {self._t}.deliveries SET status = 'cancelled'"
                    " WHERE interrupt_id = ANY($1::text[]) AND status = 'pending'"
                    " AND (kind = 'request' OR kind LIKE 'reminder-%')",
                    list(set(closes)),
                )
            await conn.execute(
                f"INSERT INTO {self._t}.positions (topic, partition, next_offset)"
                " VALUES ($1, $2, $3) ON CONFLICT (topic, partition)"
                " DO UPDATE SET next_offset = EXCLUDED.next_offset",
                topic,
                partition,
                next_offset,
            )

    async def claim(self, owner: str, now: datetime, lease: timedelta, limit: int) -> list[Entry]:
        rows = await self._pool.fetch(
            f"UPDATE {self._t}.deliveries SET lease_until = $2, owner = $3,"
            " attempts = attempts + 1 WHERE id IN (SELECT id FROM"
            f" {self._t}.deliveries WHERE status = 'pending' AND due_at <= $1"
            " AND (lease_until IS NULL OR lease_until <= $1) ORDER BY due_at, id LIMIT $4"
            f" FOR UPDATE SKIP LOCKED) RETURNING {_COLUMNS}",
            now,
            now + lease,
            owner,
            limit,
        )
        return sorted((_entry(r) for r in rows), key=lambda e: (e.delivery.due_at, e.delivery.id))

    async def sent(self, delivery_id: str, owner: str, at: datetime) -> bool:
        done = await self._pool.execute(
            f"UPDATE {self._t}.deliveries SET status = 'sent', sent_at = $3, lease_until = NULL"
            " WHERE id = $1 AND owner = $2 AND status = 'pending'",
            delivery_id,
            owner,
            at,
        )
        return bool(done == "UPDATE 1")

    async def retry(
        self, delivery_id: str, owner: str, at: datetime, error: str, *, permanent: bool = False
    ) -> None:
        await self._pool.execute(
            f"UPDATE {self._t}.deliveries SET due_at = $3, lease_until = NULL, last_error = $4,"
            " status = $5 WHERE id = $1 AND owner = $2 AND status = 'pending'",
            delivery_id,
            owner,
            at,
            error[:500],
            "failed" if permanent else "pending",
        )

    async def entries(self, interrupt_id: str | None = None) -> list[Entry]:
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM {self._t}.deliveries"
            " WHERE $1::text IS NULL OR interrupt_id = $1 ORDER BY id",
            interrupt_id,
        )
        return [_entry(r) for r in rows]


def _row(d: Delivery) -> tuple[object, ...]:
    return (d.id, d.interrupt_id, d.run_id, d.channel, d.kind, d.due_at, json.dumps(d.message))


def _entry(row: Any) -> Entry:
    message = json.loads(row["message"])
    delivery = Delivery(
        id=str(row["id"]),
        interrupt_id=str(row["interrupt_id"]),
        run_id=str(row["run_id"]),
        channel=str(row["channel"]),
        kind=str(row["kind"]),
        due_at=row["due_at"],
        message=message if isinstance(message, dict) else {},
    )
    return Entry(
        delivery=delivery,
        status=row["status"],
        attempts=int(row["attempts"]),
        lease_until=row["lease_until"],
        owner=str(row["owner"]),
        last_error=str(row["last_error"]),
        sent_at=row["sent_at"],
    )
