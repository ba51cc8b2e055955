"""Rebuild a projection without downtime: a fresh copy beside the live one, then a switch.

1. A new schema `<home>_<projection>_<UTC time>` gets the tables and views.
2. A projector in its own consumer group fills it from offset 0 (queries keep reading the
   live copy meanwhile).
3. Once it is within `max_lag` records of the end of every partition, the home schema's
   pointer and `cs_v_*` views switch to it in one transaction.
4. It keeps projecting for `grace_s` more seconds, while the deployment's projectors (each
   following the pointer through a `LiveStore`) notice the switch and carry on from the new
   copy's positions; both may write meanwhile: positions are row-locked, so each record is
   applied once.
5. The previous copy is dropped if asked and if it is not the home schema (which holds the
   pointer: its old tables stay, unread).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from engine.log.port import EventLog
from events.codec import Codec
from events.json import JsonObject
from projections.runner import Projector
from projections.store import ProjectionStore

PROJECTIONS = ("core",)
"""The projections a rebuild knows: `core` is every table and view of this package."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Rebuilt:
    projection: str
    schema: str
    previous: str
    events: int
    seconds: float
    dropped_previous: bool

    def to_json(self) -> JsonObject:
        return {
            "projection": self.projection,
            "schema": self.schema,
            "previous": self.previous,
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "dropped_previous": self.dropped_previous,
        }


def new_schema_name(home: str, projection: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S%f")
    return f"{home[:30]}_{projection}_{stamp}"


async def rebuild(
    log: EventLog,
    url: str,
    topic: str,
    codec: Codec,
    *,
    group: str,
    home: str = "public",
    projection: str = "core",
    max_lag: int = 100,
    grace_s: float = 3.0,
    drop_previous: bool = False,
    schema: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Rebuilt:
    """Build `projection` again from offset 0 in a new schema and make it the live copy."""
    if projection not in PROJECTIONS:
        raise ValueError(f"unknown projection {projection!r}; one of {', '.join(PROJECTIONS)}")
    started = time.monotonic()
    target = schema or new_schema_name(home, projection)
    home_store = await ProjectionStore.connect(url, schema=home, max_size=1)
    store = await ProjectionStore.connect(url, schema=target)
    try:
        await home_store.migrate()
        await store.migrate()
        stop = asyncio.Event()
        ends = {p: await log.end_offset(topic, p) for p in range(await log.partition_count(topic))}
        projector = Projector(log, store, topic, f"{group}.rebuild.{target}", codec, projection)
        task = asyncio.create_task(projector.run(stop))
        try:
            await _until_caught_up(projector, store, topic, ends, task, max_lag, progress)
            previous = await home_store.switch_live(projection, target)
            await _grace(task, grace_s)
        finally:
            stop.set()
            await task
        events = sum((await store.positions(projection, topic)).values())
        dropped = False
        if drop_previous and previous not in (home, target):
            await home_store.drop_schema(previous)
            dropped = True
    finally:
        await store.close()
        await home_store.close()
    return Rebuilt(
        projection=projection,
        schema=target,
        previous=previous,
        events=events,
        seconds=time.monotonic() - started,
        dropped_previous=dropped,
    )


async def _until_caught_up(
    projector: Projector,
    store: ProjectionStore,
    topic: str,
    ends: dict[int, int],
    task: asyncio.Task[None],
    max_lag: int,
    progress: Callable[[int], None] | None,
) -> None:
    """Until the copy holds everything the log held when the rebuild began and is within
    `max_lag` records of its end now."""
    while True:
        if task.done():
            task.result()  # raises what stopped it
            raise RuntimeError("the rebuild projector stopped before it caught up")
        lag = sum((await projector.lag()).values())
        if progress is not None:
            progress(lag)
        positions = await store.positions(projector.name, topic)
        if lag <= max_lag and all(positions.get(p, 0) >= end for p, end in ends.items()):
            return
        await asyncio.sleep(0.2)


async def _grace(task: asyncio.Task[None], seconds: float) -> None:
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if done:
        task.result()
