"""The PostgreSQL store folds a batch while PostgreSQL takes its events index rows
(`projections.store_writer._copying`): the overlap ends on every way out with the batch
written whole or not at all, and the connection free for the next batch."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest

import projections.store_writer as store_writer
from projections import ProjectionStore
from projections.batch import LoggedEvent
from projections.fold import Folded, RunView
from tests.contracts.test_projection_store_contract import TOPIC, waiting_run

pytestmark = pytest.mark.postgres


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[ProjectionStore]:
    # One connection: a connection left busy by a COPY would fail the next batch outright.
    store = await ProjectionStore.connect(
        pg_url, schema=f"t_{uuid.uuid4().hex[:12]}", min_size=1, max_size=1
    )
    await store.migrate()
    yield store
    await store.close()


def batch(count: int) -> list[LoggedEvent]:
    return [e for n in range(count) for e in waiting_run(f"r{n}", first_offset=2 * n)]


async def indexed(store: ProjectionStore) -> int:
    """How many events the index holds, of the runs `batch` makes."""
    found = await store.fetch_events_of([f"r{n}" for n in range(200)])
    return sum(len(events) for events in found.values())


async def test_built_is_set_before_the_batch_is_committed(store: ProjectionStore) -> None:
    built = asyncio.Event()
    applying = asyncio.create_task(store.apply("core", TOPIC, batch(50), built=built))

    await asyncio.wait_for(built.wait(), 5)
    assert not applying.done()  # what is left is PostgreSQL's work: the statements, the commit
    applied = await applying

    assert (applied.events, applied.positions) == (100, {0: 100})
    assert await indexed(store) == 100


async def test_a_fold_that_fails_during_the_copy_writes_nothing_and_frees_the_connection(
    store: ProjectionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(views: object, events: Sequence[LoggedEvent]) -> Folded:
        raise RuntimeError("the fold failed")

    monkeypatch.setattr(store_writer, "fold", failing)
    with pytest.raises(RuntimeError, match="the fold failed"):
        await store.apply("core", TOPIC, batch(50))
    monkeypatch.undo()

    assert await indexed(store) == 0
    assert (await store.apply("core", TOPIC, batch(50))).events == 100


@pytest.mark.parametrize("when", ["folding", "after the fold"])
async def test_a_batch_cancelled_during_the_copy_writes_nothing_and_frees_the_connection(
    store: ProjectionStore, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    reached = asyncio.Event()
    real_fold = store_writer.fold

    def fold(views: dict[str, RunView], events: Sequence[LoggedEvent]) -> Folded:
        if when == "folding":
            reached.set()
            raise asyncio.CancelledError  # as a cancellation delivered inside the body
        return real_fold(views, events)

    monkeypatch.setattr(store_writer, "fold", fold)
    built = asyncio.Event()
    applying = asyncio.create_task(store.apply("core", TOPIC, batch(200), built=built))
    if when == "after the fold":
        await asyncio.wait_for(built.wait(), 5)  # the COPY may still be in flight
        applying.cancel()
    else:
        await asyncio.wait_for(reached.wait(), 5)
    with pytest.raises(asyncio.CancelledError):
        await applying
    monkeypatch.undo()

    assert await indexed(store) == 0
    assert (await store.apply("core", TOPIC, batch(200))).events == 400


async def test_an_event_already_indexed_fails_the_copy_and_the_batch_is_written_again(
    store: ProjectionStore,
) -> None:
    first = batch(3)
    await store.apply("core", TOPIC, first[:2])
    again = [
        LoggedEvent(
            envelope=e.envelope, partition=1, offset=e.offset, hash=e.hash, raw=e.raw
        )  # the same events from other records: the COPY meets them
        for e in first[:2]
    ]
    built = asyncio.Event()

    applied = await store.apply("core", TOPIC, [*again, *first[2:]], built=built)

    assert (applied.events, applied.duplicates) == (4, 2)
    assert built.is_set()
    assert await indexed(store) == 6
