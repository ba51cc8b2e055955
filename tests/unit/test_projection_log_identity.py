"""Projections know their log: positions of another log, or past the end of this one, are
refused by the projector and flagged by `projections status` (in-memory log and store)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from structlog.testing import capture_logs

from engine.log.memory import MemoryLog
from engine.log.port import Outgoing
from events.codec import Codec
from events.envelope import hash_encoded
from projections import (
    Applied,
    BatchItem,
    ForeignLog,
    LoggedEvent,
    MemoryStore,
    Projector,
    Queries,
    Unusable,
    projection_status,
    verify,
)
from projections.log_identity import past_end, refusal
from tests.helpers import eventually
from tests.integration.projections_history import Call

TOPIC = "li.runs"
CODEC = Codec()
PARTITIONS = 2


async def log_with(calls: Sequence[Call]) -> MemoryLog:
    log = MemoryLog(default_partitions=PARTITIONS)
    for call in calls:
        await log.publish([Outgoing(TOPIC, call.run_id, data) for data in call.encoded()])
    return log


async def ends(log: MemoryLog) -> dict[int, int]:
    return {p: await log.end_offset(TOPIC, p) for p in range(PARTITIONS)}


async def project_all(log: MemoryLog, store: MemoryStore) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(Projector(log, store, TOPIC, "g", CODEC).run(stop))

    async def caught_up() -> bool:
        positions = await store.positions("core", TOPIC)
        return all(positions.get(p, 0) == end for p, end in (await ends(log)).items())

    try:
        await eventually(caught_up, message="projected")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def calls(prefix: str, count: int) -> list[Call]:
    return [Call(run_id=f"{prefix}{n}", outcome="approved") for n in range(count)]


# -- the projector ----------------------------------------------------------------------------


async def test_positions_from_one_log_are_refused_by_a_projector_on_another() -> None:
    store = MemoryStore(schema="public")
    first = await log_with(calls("k", 6))  # as the Kafka walk-through left it
    await project_all(first, store)
    before = await store.positions("core", TOPIC)
    second = await log_with(calls("p", 9))  # the embedded log: longer, offsets from 0 again

    with capture_logs() as logs, pytest.raises(ForeignLog) as refused:
        await asyncio.wait_for(Projector(second, store, TOPIC, "g", CODEC).run(asyncio.Event()), 10)

    message = str(refused.value)
    assert "projection core in schema public" in message
    assert "another log" in message
    assert "countersign projections rebuild core" in message
    assert "COUNTERSIGN_PROJECTION_SCHEMA" in message
    assert await first.log_id(TOPIC) in message
    assert await store.positions("core", TOPIC) == before  # nothing of the second log applied
    assert {r.run_id for r in await store.fetch_runs(None, 100)} == {f"k{n}" for n in range(6)}
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["projection_log_refused"]


async def test_the_first_start_binds_the_positions_and_a_restart_goes_on() -> None:
    store = MemoryStore()
    log = await log_with(calls("a", 3))

    await project_all(log, store)
    assert await store.log_binding("core", TOPIC) == await log.log_id(TOPIC)
    for call in calls("b", 3):
        await log.publish([Outgoing(TOPIC, call.run_id, data) for data in call.encoded()])
    await project_all(log, store)

    assert len(await store.fetch_runs(None, 100)) == 6


async def test_check_log_refuses_before_anything_is_started() -> None:
    store = MemoryStore()
    await store.bind_log("core", TOPIC, "kafka:another-cluster:some-topic-id")
    projector = Projector(await log_with([]), store, TOPIC, "g", CODEC)

    with pytest.raises(ForeignLog, match="kafka:another-cluster:some-topic-id"):
        await projector.check_log()


async def test_positions_kept_before_logs_had_identities_are_adopted_within_the_end() -> None:
    log = await log_with(calls("a", 4))
    store = MemoryStore()
    await _apply_first(log, store, records=5)  # positions with no log bound to them

    with capture_logs() as logs:
        await project_all(log, store)

    assert await store.log_binding("core", TOPIC) == await log.log_id(TOPIC)
    assert "projection_log_adopted" in [e["event"] for e in logs]
    assert len(await store.fetch_runs(None, 100)) == 4


async def test_positions_past_the_end_of_the_log_are_refused_even_unbound() -> None:
    long_log = await log_with(calls("a", 8))
    store = MemoryStore()
    await _apply_first(long_log, store, records=10**6)  # every record of the long log
    short_log = await log_with(calls("b", 1))

    with pytest.raises(ForeignLog, match="past the end of this log"):
        await Projector(short_log, store, TOPIC, "g", CODEC).check_log()

    assert await store.log_binding("core", TOPIC) is None  # refused before binding


async def test_a_copy_bound_to_another_log_is_refused_after_a_switch() -> None:
    log = await log_with(calls("a", 2))
    other = MemoryStore(schema="copy")
    await other.bind_log("core", TOPIC, "postgres:someone-else:li.runs")
    switching = Switching(MemoryStore(schema="home"), other)
    stop = asyncio.Event()
    task = asyncio.create_task(Projector(log, switching, TOPIC, "g", CODEC).run(stop))
    await eventually(lambda: switching.current.positions("core", TOPIC), message="projecting")

    switching.switch = True

    with pytest.raises(ForeignLog, match="schema copy"):
        await asyncio.wait_for(task, 10)
    assert await other.positions("core", TOPIC) == {}


class Switching:
    """A writer that moves to another copy when told (as `LiveStore` after a rebuild)."""

    def __init__(self, first: MemoryStore, then: MemoryStore) -> None:
        self.current = first
        self.then = then
        self.switch = False

    @property
    def schema(self) -> str:
        return self.current.schema

    async def positions(self, projection: str, topic: str) -> dict[int, int]:
        return await self.current.positions(projection, topic)

    async def apply(
        self,
        projection: str,
        topic: str,
        items: Sequence[BatchItem],
        *,
        built: asyncio.Event | None = None,
    ) -> Applied:
        return await self.current.apply(projection, topic, items, built=built)

    async def log_binding(self, projection: str, topic: str) -> str | None:
        return await self.current.log_binding(projection, topic)

    async def bind_log(self, projection: str, topic: str, log_id: str) -> str:
        return await self.current.bind_log(projection, topic, log_id)

    async def relocated(self) -> bool:
        if not self.switch or self.current is self.then:
            return False
        self.current = self.then
        return True


async def _apply_first(log: MemoryLog, store: MemoryStore, *, records: int) -> None:
    """Apply up to `records` of the log straight to the store, as a projector of an earlier
    version did: positions, no log bound."""
    for partition in range(PARTITIONS):
        found = [r async for r in log.read(TOPIC, partition, 0)][:records]
        if found:
            await store.apply("core", TOPIC, [_item(r.value, partition, r.offset) for r in found])


def _item(value: bytes, partition: int, offset: int) -> BatchItem:
    return LoggedEvent(
        envelope=CODEC.decode_event(value),
        partition=partition,
        offset=offset,
        hash=hash_encoded(value),
        raw=value,
    )


# -- status and verify ------------------------------------------------------------------------


async def test_status_flags_positions_of_another_log_and_past_its_end() -> None:
    store = MemoryStore()
    first = await log_with(calls("k", 6))
    await project_all(first, store)
    second = await log_with(calls("p", 1))

    status = await projection_status(second, store, TOPIC)

    assert status.foreign
    assert status.bound_log_id == await first.log_id(TOPIC)
    assert status.log_id == await second.log_id(TOPIC)
    assert status.lag == 0  # nothing to read, and still wrong: the flags say so
    beyond = [p.partition for p in status.partitions if p.past_end]
    assert beyond == [p for p, end in (await ends(second)).items() if end < (await ends(first))[p]]
    assert beyond  # six runs spread over two partitions, one run in the second log
    assert len(status.problems) == 1 + len(beyond)
    assert status.remedy is not None
    assert "countersign projections rebuild core" in status.remedy
    data = status.to_json()
    assert data["problems"] == list(status.problems)
    assert [p["past_end"] for p in data["partitions"]] == [  # type: ignore[union-attr, index]
        p.partition in beyond for p in status.partitions
    ]


async def test_status_of_positions_that_fit_the_log_has_no_problem() -> None:
    store = MemoryStore()
    log = await log_with(calls("k", 3))
    await project_all(log, store)

    status = await projection_status(log, store, TOPIC)

    assert (status.foreign, status.problems, status.remedy) == (False, (), None)
    assert not any(p.past_end for p in status.partitions)


async def test_status_counts_a_partition_the_log_does_not_have_as_past_the_end() -> None:
    store = MemoryStore()
    await store.apply("core", TOPIC, [_junk(partition=7, offset=3)])

    status = await projection_status(await log_with([]), store, TOPIC)

    (extra,) = [p for p in status.partitions if p.partition == 7]
    assert (extra.position, extra.end_offset, extra.past_end) == (4, 0, True)
    assert not status.foreign  # bound to no log: only the position gives it away


def _junk(partition: int, offset: int) -> BatchItem:
    return Unusable(partition=partition, offset=offset, reason="junk", raw=b"j")


async def test_verify_refuses_projections_of_another_log() -> None:
    store = MemoryStore()
    await project_all(await log_with(calls("k", 2)), store)

    with pytest.raises(ForeignLog, match="another log"):
        await verify(await log_with(calls("k", 2)), TOPIC, store, CODEC)

    assert await Queries(store).get_run("k0") is not None  # nothing was touched


# -- the pure rules ---------------------------------------------------------------------------


def test_past_end_names_each_partition_beyond_with_its_end() -> None:
    assert past_end({0: 5, 1: 2, 3: 1}, {0: 5, 1: 1, 2: 9}) == {1: (2, 1), 3: (1, 0)}
    assert past_end({}, {0: 3}) == {}


def test_the_refusal_says_what_to_do_and_shows_hostile_identities_harmlessly() -> None:
    fine = refusal(
        projection="core",
        schema="s",
        topic="t",
        log_id="a",
        bound="a",
        positions={0: 1},
        ends={0: 1},
    )
    assert fine is None
    hostile = "x\n\x1b[2J" + "y" * 10_000
    message = refusal(
        projection="core",
        schema="s",
        topic="t",
        log_id="a",
        bound=hostile,
        positions={},
        ends={},
    )
    assert message is not None
    assert "\n" not in message
    assert "\x1b" not in message
    assert len(message) < 800
