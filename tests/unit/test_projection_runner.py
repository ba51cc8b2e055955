"""The projector's loop with the in-memory log and a fake store: seeking, retries, poison."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from structlog.testing import capture_logs

from engine.log.memory import MemoryLog
from engine.log.port import Outgoing
from events.codec import Codec
from events.envelope import GENESIS_HASH, EventEnvelope, hash_encoded
from events.run_events import RunStarted, ToolCallCompleted
from projections import (
    Applied,
    Backoff,
    BatchItem,
    LoggedEvent,
    Projector,
    StoreUnavailable,
    UnstorableBatch,
    Unusable,
)
from projections.event_record import index_record
from tests.helpers import eventually

TOPIC = "u.runs"
CODEC = Codec()
FAST = Backoff(first=0.001, max=0.01)


class FakeStore:
    """Keeps positions and applied items like the real store; can refuse on demand."""

    def __init__(self, positions: dict[int, int] | None = None) -> None:
        self.stored = dict(positions or {})
        self.items: list[BatchItem] = []
        self.calls = 0
        self.unavailable = 0  # refuse this many applies as if PostgreSQL were away
        self.poison: set[int] = set()  # offsets whose events PostgreSQL "refuses"

    async def positions(self, projection: str, topic: str) -> dict[int, int]:
        return dict(self.stored)

    async def apply(
        self,
        projection: str,
        topic: str,
        items: Sequence[BatchItem],
        *,
        built: asyncio.Event | None = None,
    ) -> Applied:
        self.calls += 1
        if self.unavailable:
            self.unavailable -= 1
            raise StoreUnavailable("simulated: connection refused")
        fresh = [i for i in items if i.offset >= self.stored.get(i.partition, 0)]
        if any(isinstance(i, LoggedEvent) and i.offset in self.poison for i in fresh):
            raise UnstorableBatch("simulated: value out of range")
        self.items += fresh
        for item in fresh:
            self.stored[item.partition] = item.offset + 1
        return Applied(events=len(fresh), skipped=len(items) - len(fresh))


def encoded(run_id: str, count: int) -> list[bytes]:
    out, prev = [], GENESIS_HASH
    for seq in range(count):
        payload = (
            RunStarted(input={}, requested_by="u", command_id="c")
            if seq == 0
            else ToolCallCompleted(call=seq, result=seq)
        )
        data = CODEC.encode(
            EventEnvelope(
                event_id=f"{run_id}/{seq}",
                run_id=run_id,
                seq=seq,
                occurred_at_us=seq,
                agent="a",
                agent_version="1",
                causation_id="",
                correlation_id="",
                prev_hash=prev,
                payload=payload,
            )
        )
        prev = hash_encoded(data)
        out.append(data)
    return out


async def one_partition_log(values: Sequence[bytes]) -> MemoryLog:
    log = MemoryLog(default_partitions=1)
    await log.publish([Outgoing(TOPIC, "run", v) for v in values])
    return log


async def run_until(projector: Projector, done: object) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    try:
        await eventually(done, timeout=5)  # type: ignore[arg-type]
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


def projector(log: MemoryLog, store: FakeStore, max_records: int = 100) -> Projector:
    return Projector(
        log, store, TOPIC, "g", CODEC, max_records=max_records, poll_timeout_s=0.05, backoff=FAST
    )


async def test_it_starts_at_the_positions_stored_with_the_rows() -> None:
    log = await one_partition_log(encoded("run", 6))
    store = FakeStore(positions={0: 4})

    await run_until(projector(log, store), lambda: store.stored[0] == 6)

    assert [i.offset for i in store.items] == [4, 5]


async def test_an_undecodable_record_becomes_an_error_item_and_is_logged() -> None:
    values = encoded("run", 3)
    log = await one_partition_log([values[0], b"\x00junk", *values[1:]])
    store = FakeStore()

    with capture_logs() as logs:
        await run_until(projector(log, store), lambda: store.stored.get(0) == 4)

    bad = [i for i in store.items if isinstance(i, Unusable)]
    assert [(i.offset, i.raw) for i in bad] == [(1, b"\x00junk")]
    assert bad[0].reason.startswith("undecodable: not an Avro")
    (entry,) = [e for e in logs if e["event"] == "projection_record_undecodable"]
    assert (entry["log_level"], entry["partition"], entry["offset"]) == ("error", 0, 1)
    assert [i.offset for i in store.items if isinstance(i, LoggedEvent)] == [0, 2, 3]


async def test_a_refused_batch_is_split_until_the_one_refused_event_is_stored_as_error() -> None:
    log = await one_partition_log(encoded("run", 16))
    store = FakeStore()
    store.poison = {11}

    await run_until(projector(log, store), lambda: store.stored.get(0) == 16)

    assert [i.offset for i in store.items] == list(range(16))
    (bad,) = [i for i in store.items if isinstance(i, Unusable)]
    assert bad.offset == 11
    assert bad.reason.startswith("unstorable: simulated: value out of range")
    assert store.calls <= 2 * 5 + 2  # a bisection, not one apply per event


async def test_an_unavailable_store_is_retried_with_the_same_batch() -> None:
    log = await one_partition_log(encoded("run", 5))
    store = FakeStore()
    store.unavailable = 3

    with capture_logs() as logs:
        await run_until(projector(log, store), lambda: store.stored.get(0) == 5)

    assert [i.offset for i in store.items] == list(range(5))
    retries = [e for e in logs if e["event"] == "projection_store_unavailable"]
    assert [e["retry_in_s"] for e in retries] == [0.001, 0.002, 0.004]


async def test_stopping_while_the_store_is_away_ends_the_loop_without_applying() -> None:
    log = await one_partition_log(encoded("run", 5))
    store = FakeStore()
    store.unavailable = 10**9
    stop = asyncio.Event()
    task = asyncio.create_task(projector(log, store).run(stop))
    await eventually(lambda: store.calls >= 3)

    stop.set()
    await asyncio.wait_for(task, 5)

    assert store.items == []
    assert store.stored == {}


async def test_lag_counts_records_past_the_stored_positions() -> None:
    log = MemoryLog(default_partitions=2)
    await log.publish([Outgoing(TOPIC, "x", v, partition=0) for v in encoded("x", 5)])
    await log.publish([Outgoing(TOPIC, "y", v, partition=1) for v in encoded("y", 2)])

    lag = await projector(log, FakeStore(positions={0: 3})).lag()

    assert lag == {0: 2, 1: 2}


@pytest.mark.parametrize("max_records", [1, 3, 100])
async def test_every_record_is_applied_once_in_order_whatever_the_batch_size(
    max_records: int,
) -> None:
    log = await one_partition_log(encoded("run", 12))
    store = FakeStore()

    await run_until(projector(log, store, max_records), lambda: store.stored.get(0) == 12)

    assert [i.offset for i in store.items] == list(range(12))


class MovingStore:
    """Two copies of the read models, as after a rebuild: writes go to `live`, and
    `relocated()` says once when the pointer has moved to the other copy."""

    def __init__(self, first: FakeStore, second: FakeStore) -> None:
        self.live = first
        self.second = second
        self.move = False

    async def positions(self, projection: str, topic: str) -> dict[int, int]:
        return await self.live.positions(projection, topic)

    async def apply(
        self,
        projection: str,
        topic: str,
        items: Sequence[BatchItem],
        *,
        built: asyncio.Event | None = None,
    ) -> Applied:
        return await self.live.apply(projection, topic, items, built=built)

    async def relocated(self) -> bool:
        if not self.move:
            return False
        self.move, self.live = False, self.second
        return True


@pytest.mark.parametrize("second_at", [0, 5, 10], ids=["behind", "mid", "ahead"])
async def test_after_a_switch_it_carries_on_from_the_new_copys_positions(second_at: int) -> None:
    values = encoded("run", 12)
    log = await one_partition_log(values[:8])
    first, second = FakeStore(), FakeStore(positions={0: second_at})
    moving = MovingStore(first, second)
    stop = asyncio.Event()
    task = asyncio.create_task(projector(log, moving, max_records=3).run(stop))  # type: ignore[arg-type]
    await eventually(lambda: first.stored.get(0) == 8)

    moving.move = True
    await log.publish([Outgoing(TOPIC, "run", v) for v in values[8:]])
    await eventually(lambda: second.stored.get(0) == 12)
    stop.set()
    await asyncio.wait_for(task, 5)

    assert [i.offset for i in second.items] == list(range(second_at, 12))  # no gap, no double
    assert first.stored[0] == 8  # nothing written to the old copy after the switch


class CountingCodec(Codec):
    def __init__(self) -> None:
        super().__init__()
        self.decoded = 0

    def decode_event(self, *args: Any, **kwargs: Any) -> EventEnvelope:
        self.decoded += 1
        return super().decode_event(*args, **kwargs)


class SteppedStore(FakeStore):
    """Each apply waits to be told it is built, then to be told it is done."""

    def __init__(self) -> None:
        super().__init__()
        self.build = asyncio.Event()
        self.finish = asyncio.Event()
        self.started = 0

    async def apply(
        self,
        projection: str,
        topic: str,
        items: Sequence[BatchItem],
        *,
        built: asyncio.Event | None = None,
    ) -> Applied:
        self.started += 1
        await self.build.wait()
        assert built is not None
        built.set()
        await self.finish.wait()
        return await super().apply(projection, topic, items)


async def test_the_next_batch_is_decoded_once_the_one_in_flight_is_built() -> None:
    log = await one_partition_log(encoded("run", 6))
    codec, store = CountingCodec(), SteppedStore()
    stop = asyncio.Event()
    task = asyncio.create_task(
        Projector(log, store, TOPIC, "g", codec, max_records=3, poll_timeout_s=0.05).run(stop)
    )
    try:
        await eventually(lambda: store.started == 1, timeout=5)
        await asyncio.sleep(0.1)  # the second batch is polled, and must wait
        assert codec.decoded == 3

        store.build.set()  # the first batch now only waits for the database
        await eventually(lambda: codec.decoded == 6, timeout=5)
        assert store.stored == {}  # decoded while the first batch was still being written

        store.finish.set()
        await eventually(lambda: store.stored.get(0) == 6, timeout=5)
    finally:
        stop.set()
        store.build.set()
        store.finish.set()
        await asyncio.wait_for(task, 5)


class AheadStore(FakeStore):
    indexes_ahead = True


@pytest.mark.parametrize("store", [FakeStore(), AheadStore()], ids=["plain", "indexes ahead"])
async def test_events_carry_their_index_record_only_for_a_store_that_takes_it(
    store: FakeStore,
) -> None:
    log = await one_partition_log(encoded("run", 3))

    await run_until(projector(log, store), lambda: store.stored.get(0) == 3)

    events = [i for i in store.items if isinstance(i, LoggedEvent)]
    if isinstance(store, AheadStore):
        assert [e.index_record for e in events] == [
            index_record(e.envelope, e.partition, e.offset, e.hash, e.raw) for e in events
        ]
    else:
        assert [e.index_record for e in events] == [None, None, None]
