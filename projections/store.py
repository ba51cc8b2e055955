"""The PostgreSQL store of the core projections: one object with every part (I/O).

Each part is its own module and implements one protocol: `store_writer` (`ProjectionWriter`,
`LogBound`), `store_reads` (`ReadModel`, `PositionSource`, `VerifySource`), `store_insights`
(`InsightSource`) and `store_schema` (migration and the live pointer). They share one
connection pool (`store_db`). asyncpg is imported by these `store_*` modules only.
"""

from __future__ import annotations

from projections.store_db import Database
from projections.store_insights import PostgresInsights
from projections.store_reads import PostgresReads
from projections.store_schema import PostgresSchema
from projections.store_writer import PostgresWriter

__all__ = ["ProjectionStore"]


class ProjectionStore(PostgresWriter, PostgresReads, PostgresInsights, PostgresSchema):
    """The core read models in one PostgreSQL schema; `connect`, then `migrate` once."""

    @classmethod
    async def connect(
        cls, url: str, *, schema: str = "public", min_size: int = 1, max_size: int = 4
    ) -> ProjectionStore:
        """A pool of connections to `url` whose tables live in `schema`."""
        db = await Database.connect(url, schema=schema, min_size=min_size, max_size=max_size)
        return cls(db)

    async def close(self) -> None:
        await self._db.close()
