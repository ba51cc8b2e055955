"""The PostgreSQL adapter's connection pool, its error mapping and schema names (I/O).

Every part of the store (`store_writer`, `store_reads`, `store_insights`, `store_schema`)
works through a `Database`: asyncpg's objects and errors stay in these modules. Callers get
`StoreUnavailable` (retry), `UnstorableBatch` (poison: split the batch) or, for anything else
PostgreSQL refuses, `ProjectionsError`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg

from projections.errors import ProjectionsError, StoreUnavailable, UnstorableBatch
from projections.store_columns import Table

R = TypeVar("R")

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_POISON_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})  # data, integrity, program limits
_CONNECTION_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


def schema_name(name: object, where: str = "schema name") -> str:
    """`name` if it is a plain lower-case identifier (it is quoted into SQL), else ValueError."""
    if not isinstance(name, str) or not _SCHEMA_NAME.fullmatch(name):
        raise ValueError(f"{where} {name!r} is not a plain lower-case identifier")
    return name


class Database:
    """A pool of connections whose search_path is `schema`."""

    def __init__(self, pool: Any, schema: str) -> None:
        self._pool = pool
        self.schema = schema_name(schema)

    @classmethod
    async def connect(cls, url: str, *, schema: str, min_size: int, max_size: int) -> Database:
        schema_name(schema)
        async with transient("connect"):
            pool = await asyncpg.create_pool(
                url,
                min_size=min_size,
                max_size=max_size,
                server_settings={"search_path": schema, "application_name": "countersign"},
            )
        return cls(pool, schema)

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def transaction(self, what: str) -> AsyncIterator[Any]:
        """A connection in a transaction; errors mapped as for any read."""
        async with transient(what), self._pool.acquire() as conn, conn.transaction():
            yield conn

    @asynccontextmanager
    async def connection(self, what: str) -> AsyncIterator[Any]:
        async with transient(what), self._pool.acquire() as conn:
            yield conn

    @asynccontextmanager
    async def writing(self, what: str) -> AsyncIterator[Any]:
        """A connection in a transaction for a batch: refused data is `UnstorableBatch`."""
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                yield conn
        except _CONNECTION_ERRORS as error:
            raise classified(error, what) from error
        except (ValueError, OverflowError, TypeError, RecursionError) as error:
            # A value we cannot convert (RecursionError: JSON nested past what can be encoded).
            raise UnstorableBatch(f"{what}: {type(error).__name__}: {error}") from error

    async def fetch(self, sql: str, *args: object) -> list[Any]:
        async with transient("read"):
            return list(await self._pool.fetch(sql, *args))

    async def fetchval(self, sql: str, *args: object) -> Any:
        async with transient("read"):
            return await self._pool.fetchval(sql, *args)

    async def execute(self, sql: str, *args: object) -> None:
        async with transient("write"):
            await self._pool.execute(sql, *args)

    async def rows(self, table: Table[R], sql: str, *args: object) -> list[R]:
        """The records `sql` fetches, as `table`'s rows."""
        return [table.from_record(record) for record in await self.fetch(sql, *args)]

    async def select(self, table: Table[R], query: tuple[str, Sequence[object]]) -> list[R]:
        sql, args = query
        return await self.rows(table, sql, *args)


def classified(error: BaseException, what: str) -> StoreUnavailable | UnstorableBatch:
    """Data the server or driver refuses is poison; anything else is worth a retry."""
    sqlstate = getattr(error, "sqlstate", None) or ""
    message = f"{what}: {type(error).__name__}: {error}"
    if sqlstate[:2] in _POISON_SQLSTATE_CLASSES or isinstance(error, asyncpg.DataError):
        return UnstorableBatch(f"{message} (sqlstate {sqlstate or 'client'})")
    return StoreUnavailable(message)


@asynccontextmanager
async def transient(what: str) -> AsyncIterator[None]:
    """Connection trouble becomes `StoreUnavailable`, anything else from asyncpg
    `ProjectionsError`: no asyncpg type leaves the adapter."""
    try:
        yield
    except _CONNECTION_ERRORS as error:
        found = classified(error, what)
        if isinstance(found, StoreUnavailable):
            raise found from error
        raise ProjectionsError(str(found)) from error


class StorePart:
    """One protocol's worth of the store, over a shared `Database` (see `store.py`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def schema(self) -> str:
        return self._db.schema
