"""Sanity checks of the in-memory event log (the shared contract suite lives in tests/contracts)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from engine.errors import ConfigurationError, Fenced
from engine.log.memory import MemoryLog
from engine.log.port import Outgoing, Topics, partition_for

TOPICS = Topics("t")
POLL_S = 0.05


class Listener:
    """Records assignment changes; starts every partition at the group's committed position."""

    def __init__(self) -> None:
        self.assigned: list[frozenset[int]] = []
        self.revoked: list[frozenset[int]] = []

    async def on_assigned(self, partitions: frozenset[int]) -> Mapping[int, int]:
        self.assigned.append(partitions)
        return {}

    async def on_revoked(self, partitions: frozenset[int]) -> None:
        self.revoked.append(partitions)


async def _log(partitions: int = 2) -> MemoryLog:
    log = MemoryLog()
    await log.start()
    await log.ensure_topics(TOPICS, partitions)
    return log


def _out(value: bytes, partition: int = 0, key: str = "k") -> Outgoing:
    return Outgoing(TOPICS.runs, key, value, partition=partition)


async def _read_all(log: MemoryLog, partition: int, start: int = 0) -> list[bytes]:
    return [record.value async for record in log.read(TOPICS.runs, partition, start)]


async def test_publish_then_read_keeps_order_and_contiguous_offsets() -> None:
    log = await _log()
    positions = await log.publish([_out(b"a"), _out(b"b"), _out(b"x", partition=1), _out(b"c")])

    assert [(p.partition, p.offset) for p in positions] == [(0, 0), (0, 1), (1, 0), (0, 2)]
    records = [r async for r in log.read(TOPICS.runs, 0, 0)]
    assert [r.value for r in records] == [b"a", b"b", b"c"]
    assert [r.offset for r in records] == [0, 1, 2]
    assert await _read_all(log, 0, start=1) == [b"b", b"c"]
    assert await log.end_offset(TOPICS.runs, 0) == 3
    assert await log.end_offset(TOPICS.runs, 1) == 1


async def test_publish_without_partition_uses_the_key_partitioner() -> None:
    log = await _log(partitions=4)
    [position] = await log.publish([Outgoing(TOPICS.runs, "run-42", b"v")])

    assert position.partition == partition_for("run-42", 4)


async def test_ensure_topics_refuses_commands_and_runs_that_are_not_co_partitioned() -> None:
    log = await _log(partitions=2)

    await log.ensure_topics(TOPICS, 2)  # a second call is a no-op
    with pytest.raises(ConfigurationError, match="partitions"):
        await log.ensure_topics(TOPICS, 3)


async def test_group_member_polls_records_of_its_partitions() -> None:
    log = await _log()
    await log.publish([_out(b"a"), _out(b"b", partition=1)])
    listener = Listener()
    member = log.member("g", TOPICS.runs, listener)
    await member.start()

    records = await member.poll(POLL_S)

    assert member.assigned == frozenset({0, 1})
    assert listener.assigned == [frozenset({0, 1})]
    assert sorted((r.partition, r.value) for r in records) == [(0, b"a"), (1, b"b")]
    assert await member.poll(0) == []
    await log.publish([_out(b"c")])
    assert [r.value for r in await member.poll(POLL_S)] == [b"c"]
    await member.stop()


async def test_commit_appends_and_records_the_consumed_position() -> None:
    log = await _log()
    await log.publish([_out(b"cmd-0"), _out(b"cmd-1")])
    member = log.member("g", TOPICS.runs, Listener())
    await member.start()
    await member.poll(POLL_S)

    positions = await member.commit(0, [_out(b"evt", partition=1)], consumed=2)

    assert [(p.partition, p.offset) for p in positions] == [(1, 0)]
    assert await member.committed() == {0: 2}
    assert await _read_all(log, 1) == [b"evt"]
    await member.stop()


async def test_a_second_member_takes_over_after_the_first_stops() -> None:
    log = await _log()
    await log.publish([_out(b"a0"), _out(b"a1"), _out(b"b0", partition=1)])
    first_listener, second_listener = Listener(), Listener()
    first = log.member("g", TOPICS.runs, first_listener)
    second = log.member("g", TOPICS.runs, second_listener)
    await first.start()
    await first.poll(POLL_S)
    await first.commit(0, [], consumed=1)  # a0 done, a1 not yet
    await second.start()
    assert second.assigned == frozenset()  # nothing moves until the owner lets go

    await first.stop()
    records = await second.poll(POLL_S)

    assert first_listener.revoked == [frozenset({0, 1})]
    assert second.assigned == frozenset({0, 1})
    assert sorted((r.partition, r.value) for r in records) == [(0, b"a1"), (1, b"b0")]
    with pytest.raises(Fenced):
        await first.commit(0, [_out(b"zombie", partition=1)], consumed=2)
    assert b"zombie" not in await _read_all(log, 1)
    await second.stop()


class Hanging(Listener):
    """A listener that never finishes taking its partitions (its store is away)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()

    async def on_assigned(self, partitions: frozenset[int]) -> Mapping[int, int]:
        self.entered.set()
        await asyncio.Event().wait()
        return {}


async def test_a_member_cancelled_while_joining_leaves_nothing_behind() -> None:
    log = await _log()
    await log.publish([_out(b"a0"), _out(b"b0", partition=1)])
    hanging = Hanging()
    joining = asyncio.create_task(log.member("g", TOPICS.runs, hanging).start())
    await asyncio.wait_for(hanging.entered.wait(), 5)
    joining.cancel()
    with pytest.raises(asyncio.CancelledError):
        await joining

    second = log.member("g", TOPICS.runs, Listener())
    await second.start()
    records = await second.poll(POLL_S)

    assert second.assigned == frozenset({0, 1})  # before: the half-joined member kept them
    assert sorted((r.partition, r.value) for r in records) == [(0, b"a0"), (1, b"b0")]
    await second.stop()


async def test_partitions_split_between_two_live_members() -> None:
    log = await _log(partitions=4)
    first = log.member("g", TOPICS.runs, Listener())
    second = log.member("g", TOPICS.runs, Listener())
    await first.start()
    await second.start()

    await first.poll(0)  # the owner gives up what is now the other member's
    await second.poll(0)

    assert first.assigned | second.assigned == frozenset(range(4))
    assert not first.assigned & second.assigned
    assert first.assigned
    assert second.assigned
    await first.stop()
    await second.stop()


async def test_seek_re_reads_from_an_offset() -> None:
    log = await _log()
    await log.publish([_out(b"a"), _out(b"b")])
    member = log.member("g", TOPICS.runs, Listener())
    await member.start()
    await member.poll(POLL_S)

    await member.seek(0, 1)

    assert [r.value for r in await member.poll(POLL_S)] == [b"b"]
    await member.stop()
