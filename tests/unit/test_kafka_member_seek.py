"""Where a newly assigned partition starts (KafkaMember._seek_committed) without a broker.

A partition the group never consumed used to be left to aiokafka's own position reset, which
asks the leader it last knew for the earliest offset and, refused, asks the same node again
without refreshing its metadata: after a paused broker came back the failover suite saw such
a partition stay unread, silently, for the rest of the test (its fetcher task sleeping in
`_update_fetch_positions`, the partition without a position). The member now looks the
offset up itself, through the lookup that refreshes metadata, and seeks there."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

# The adapter's own client: these tests drive aiokafka's offset lookup with a fake network.
from aiokafka.consumer.fetcher import Fetcher, OffsetResetStrategy  # noqa: TID251
from aiokafka.errors import KafkaTimeoutError  # noqa: TID251
from aiokafka.structs import TopicPartition  # noqa: TID251

from engine.log.kafka.member import KafkaMember

TOPIC = "commands"
NOT_LEADER = 6


class _Cluster:
    """Metadata that names a stale leader (node 1) until it is refreshed."""

    def __init__(self) -> None:
        self.refreshed = 0

    def leader_for_partition(self, tp: Any) -> int:
        return 2 if self.refreshed else 1


class _Client:
    """Node 1 no longer leads (a broker back from a pause); node 2 does."""

    def __init__(self) -> None:
        self.cluster = _Cluster()
        self.asked: list[int] = []

    async def _maybe_wait_metadata(self) -> None:
        return None

    def force_metadata_update(self) -> Any:
        self.cluster.refreshed += 1
        return None

    def add_topic(self, topic: str) -> None:
        return None

    async def send(self, node_id: int, request: Any) -> Any:
        self.asked.append(node_id)
        ((topic, partitions),) = request._topics
        answers = [
            (p, NOT_LEADER, -1, -1) if node_id == 1 else (p, 0, -1, 0) for p, *_ in partitions
        ]
        return SimpleNamespace(API_VERSION=1, topics=[(topic, answers)])


def _fetcher(client: _Client) -> Any:
    fetcher = Fetcher.__new__(Fetcher)  # no background fetch routine: only the lookups
    fetcher._client = client
    fetcher._retry_backoff = 0.001
    fetcher._isolation_level = 1
    return fetcher


class _Consumer:
    def __init__(self, committed: dict[int, int | None], fetcher: Any) -> None:
        self._committed = committed
        self._fetcher = fetcher
        self.seeks: dict[int, int] = {}
        self.rejoins = 0
        self._coordinator = SimpleNamespace(request_rejoin=self._rejoin)

    def _rejoin(self) -> None:
        self.rejoins += 1

    async def committed(self, tp: Any) -> int | None:
        return self._committed[tp.partition]

    async def beginning_offsets(self, partitions: list[Any]) -> dict[Any, int]:
        result: dict[Any, int] = await self._fetcher.beginning_offsets(partitions, 1_000)
        return result

    def seek(self, tp: Any, offset: int) -> None:
        self.seeks[tp.partition] = offset


def _member(consumer: _Consumer, session_timeout_ms: int = 10_000) -> KafkaMember:
    kafka: Any = SimpleNamespace(
        _config=lambda role: {
            "transaction_timeout_ms": 60_000,
            "session_timeout_ms": session_timeout_ms,
        },
    )
    member = KafkaMember(kafka, "g", TOPIC, listener=SimpleNamespace())  # type: ignore[arg-type]
    member._consumer = consumer
    return member


async def test_a_partition_never_consumed_starts_at_its_earliest_offset_looked_up_anew() -> None:
    client = _Client()
    consumer = _Consumer({2: None, 5: 24}, _fetcher(client))

    await _member(consumer)._seek_committed(consumer, frozenset({2, 5}))

    assert consumer.seeks == {2: 0, 5: 24}  # 2 has a position: fetched, not left to a reset
    assert client.cluster.refreshed >= 1  # the stale leader's refusal refreshed the metadata
    assert client.asked[0] == 1
    assert client.asked[-1] == 2
    assert consumer.rejoins == 0


async def test_an_earliest_offset_that_cannot_be_looked_up_rejoins() -> None:
    class _Away(_Consumer):
        async def beginning_offsets(self, partitions: list[Any]) -> dict[Any, int]:
            raise KafkaTimeoutError("Failed to get offsets by times in 1000 ms")

    consumer = _Away({2: None}, fetcher=None)
    member = _member(consumer)

    await member._seek_committed(consumer, frozenset({2}))

    assert consumer.seeks == {}
    assert consumer.rejoins == 1
    assert member._rejoining


async def test_an_earliest_offset_lookup_that_outlasts_half_the_session_rejoins() -> None:
    """Heartbeats wait for the assignment callback: a lookup that hangs would get the member
    evicted from the group, so it gives up at half the session timeout and rejoins."""

    class _Hanging(_Consumer):
        async def beginning_offsets(self, partitions: list[Any]) -> dict[Any, int]:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    consumer = _Hanging({2: None}, fetcher=None)
    member = _member(consumer, session_timeout_ms=100)

    async with asyncio.timeout(5):
        await member._seek_committed(consumer, frozenset({2}))

    assert consumer.seeks == {}
    assert consumer.rejoins == 1


async def test_aiokafka_own_reset_asks_the_stale_leader_again_without_refreshing() -> None:
    """Why the member does not leave it to aiokafka (0.14): its fetcher resets a position
    with the leader its metadata names, and a refusal neither refreshes that metadata nor
    changes whom the next attempt asks. Should this fail, aiokafka fixed it."""
    client = _Client()
    fetcher = _fetcher(client)
    tp = TopicPartition(TOPIC, 2)
    state = SimpleNamespace(
        has_valid_position=False,
        awaiting_reset=True,
        reset_strategy=OffsetResetStrategy.EARLIEST,
        reset_to=lambda offset: setattr(state, "has_valid_position", True),
    )
    assignment = SimpleNamespace(state_value=lambda _: state)

    for _ in range(3):  # as its fetch routine does, with the leader its metadata names
        node = client.cluster.leader_for_partition(tp)
        await fetcher._update_fetch_positions(assignment, node, [tp])

    assert client.asked == [1, 1, 1]
    assert client.cluster.refreshed == 0
    assert state.has_valid_position is False
