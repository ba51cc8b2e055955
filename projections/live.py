"""Following the live pointer: where queries read and projectors write after a rebuild.

A deployment is configured with one home schema (`public` by default). Its
`cs_projection_live` row names the schema that holds the live copy (none: the home schema
itself). `countersign projections rebuild` builds a fresh copy beside it and moves the
pointer; `connect_live` opens the copy it names now, and a `LiveStore` given to a
`Projector` notices the move (checking at most every `check_every_s`) and carries on in the
new copy from the positions stored there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from projections.batch import Applied, BatchItem
from projections.errors import StoreUnavailable
from projections.store import ProjectionStore


async def connect_live(
    url: str, *, home: str = "public", projection: str = "core", max_size: int = 4
) -> ProjectionStore:
    """A store on the schema that holds `projection`'s live copy now (for queries)."""
    pointer = await ProjectionStore.connect(url, schema=home, max_size=1)
    try:
        await pointer.migrate()
        schema = await pointer.live_schema(projection)
    finally:
        await pointer.close()
    return await ProjectionStore.connect(url, schema=schema, max_size=max_size)


class LiveStore:
    """A `ProjectionWriter` (and `LogBound`, `IndexesAhead`) that follows the home schema's
    pointer (see the module doc): positions and their log are those of the copy written to
    now."""

    indexes_ahead = True

    def __init__(
        self,
        url: str,
        home: ProjectionStore,
        live: ProjectionStore,
        *,
        projection: str,
        check_every_s: float,
        max_size: int,
    ) -> None:
        self._url = url
        self._home = home
        self._live = live
        self._projection = projection
        self._check_every_s = check_every_s
        self._max_size = max_size
        self._next_check = time.monotonic() + check_every_s

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        home: str = "public",
        projection: str = "core",
        check_every_s: float = 1.0,
        max_size: int = 4,
    ) -> LiveStore:
        pointer = await ProjectionStore.connect(url, schema=home, max_size=1)
        try:
            await pointer.migrate()
            live = await ProjectionStore.connect(
                url, schema=await pointer.live_schema(projection), max_size=max_size
            )
        except BaseException:
            await pointer.close()
            raise
        return cls(
            url,
            pointer,
            live,
            projection=projection,
            check_every_s=check_every_s,
            max_size=max_size,
        )

    @property
    def schema(self) -> str:
        """The schema written to now."""
        return self._live.schema

    @property
    def store(self) -> ProjectionStore:
        return self._live

    async def positions(self, projection: str, topic: str) -> dict[int, int]:
        return await self._live.positions(projection, topic)

    async def apply(
        self,
        projection: str,
        topic: str,
        items: Sequence[BatchItem],
        *,
        built: asyncio.Event | None = None,
    ) -> Applied:
        return await self._live.apply(projection, topic, items, built=built)

    async def log_binding(self, projection: str, topic: str) -> str | None:
        return await self._live.log_binding(projection, topic)

    async def bind_log(self, projection: str, topic: str, log_id: str) -> str:
        return await self._live.bind_log(projection, topic, log_id)

    async def relocated(self) -> bool:
        """True once when the pointer has moved: later writes go to the new copy, whose
        positions the caller must seek to. Never raises for an unreachable database."""
        now = time.monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + self._check_every_s
        try:
            target = await self._home.live_schema(self._projection)
            if target == self._live.schema:
                return False
            moved = await ProjectionStore.connect(self._url, schema=target, max_size=self._max_size)
        except StoreUnavailable:
            return False
        previous, self._live = self._live, moved
        await previous.close()
        return True

    async def close(self) -> None:
        await self._live.close()
        await self._home.close()
