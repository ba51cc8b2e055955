"""The event-log contract: every adapter of `engine.log.port` passes these tests.

Group tests poll every member while they wait: the in-memory twin moves partitions at
`poll`, Kafka moves them in the background; both settle the same way. Offsets are only
compared for non-transactional appends: on Kafka, transaction markers and aborted records
occupy offsets too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from aiokafka import TopicPartition  # noqa: TID251  (the Kafka adapter's own)

from engine.errors import ConfigurationError, Fenced, TransientLogError
from engine.log.kafka import KafkaLog, early
from engine.log.kafka import admin as kafka_admin
from engine.log.memory import MemoryLog
from engine.log.port import EventLog, GroupMember, Outgoing, Position, Record, Topics, partition_for
from engine.log.postgres import PostgresLog
from tests.contracts.conftest import Connect, started
from tests.helpers import eventually

PARTITIONS = 4  # as the `log` fixture ensures them
ALL = frozenset(range(PARTITIONS))
SETTLE_S = 20.0


class Listener:
    """Records what it hears and checks the port's promise: no partition assigned twice,
    none revoked that was not held."""

    def __init__(self, starts: Mapping[int, int] | None = None) -> None:
        self.starts = dict(starts or {})
        self.held: set[int] = set()
        self.assigned: list[frozenset[int]] = []
        self.revoked: list[frozenset[int]] = []

    async def on_assigned(self, partitions: frozenset[int]) -> Mapping[int, int]:
        assert not self.held & partitions, f"assigned again: {self.held & partitions}"
        self.held |= partitions
        self.assigned.append(partitions)
        return {p: self.starts[p] for p in partitions if p in self.starts}

    async def on_revoked(self, partitions: frozenset[int]) -> None:
        assert partitions <= self.held, f"revoked but not held: {partitions - self.held}"
        self.held -= partitions
        self.revoked.append(partitions)


class Worker:
    """A group member, its listener and every record it polled."""

    def __init__(
        self, log: EventLog, group: str, topic: str, starts: Mapping[int, int] | None = None
    ) -> None:
        self.listener = Listener(starts)
        self.member: GroupMember = log.member(group, topic, self.listener)
        self.polled: list[Record] = []

    async def start(self) -> Worker:
        await self.member.start()
        return self

    async def step(self) -> None:
        self.polled += await self.member.poll(0.05)

    def offsets(self, partition: int) -> list[int]:
        return [r.offset for r in self.polled if r.partition == partition]


async def settled(*workers: Worker) -> None:
    """Poll all workers until they split every partition, each holding some, and each
    listener agrees with its member."""

    async def split() -> bool:
        for worker in workers:
            await worker.step()
        owned = [worker.member.assigned for worker in workers]
        return (
            all(owned)
            and sum(len(o) for o in owned) == PARTITIONS
            and frozenset().union(*owned) == ALL
            and all(w.listener.held == w.member.assigned for w in workers)
        )

    await eventually(split, timeout=SETTLE_S, message="partitions split among the members")


async def polled(worker: Worker, count: int) -> None:
    async def enough() -> bool:
        await worker.step()
        return len(worker.polled) >= count

    await eventually(enough, timeout=SETTLE_S, message=f"{count} records polled")


async def resumes_at(log: EventLog, group: str, topics: Topics, partition: int, at: int) -> None:
    """A new member of `group` starts `partition` at `at`: the group position committed."""
    member = await Worker(log, group, topics.commands).start()
    try:
        await polled(member, 1)
        assert member.offsets(partition) == [at]
    finally:
        await member.member.stop()


async def read_all(log: EventLog, topic: str, partition: int, start: int = 0) -> list[Record]:
    return [record async for record in log.read(topic, partition, start)]


def keys_of(keys: list[str], partition: int) -> list[str]:
    return [key for key in keys if partition_for(key, PARTITIONS) == partition]


def values(records: list[Record]) -> list[bytes]:
    return [record.value for record in records]


def command(topics: Topics, key: str, value: bytes, partition: int | None = None) -> Outgoing:
    return Outgoing(topics.commands, key, value, partition=partition)


def event(topics: Topics, partition: int, value: bytes) -> Outgoing:
    return Outgoing(topics.runs, f"run-{partition}", value, partition=partition)


# Appending and reading.


async def test_offsets_are_contiguous_from_zero_in_append_order(
    log: EventLog, topics: Topics
) -> None:
    first = await log.publish([command(topics, "k", b"%d" % i, partition=2) for i in range(5)])
    second = await log.publish([command(topics, "k", b"%d" % i, partition=2) for i in (5, 6, 7)])

    assert first + second == [Position(topics.commands, 2, offset) for offset in range(8)]
    records = await read_all(log, topics.commands, 2)
    assert [r.offset for r in records] == list(range(8))
    assert values(records) == [b"%d" % i for i in range(8)]
    assert await log.end_offset(topics.commands, 2) == 8
    assert await log.end_offset(topics.commands, 3) == 0


async def test_key_picks_the_partition_with_murmur2(log: EventLog, topics: Topics) -> None:
    keys = [f"run-{i}" for i in range(40)]

    positions = await log.publish([command(topics, key, key.encode()) for key in keys])

    assert [p.partition for p in positions] == [partition_for(k, PARTITIONS) for k in keys]
    for partition in range(PARTITIONS):  # contiguous per partition, in append order
        mine = [p.offset for p in positions if p.partition == partition]
        assert mine == list(range(len(mine)))
        records = await read_all(log, topics.commands, partition)
        assert [r.key for r in records] == keys_of(keys, partition)


async def test_records_keep_key_value_and_headers(log: EventLog, topics: Topics) -> None:
    sent = Outgoing(topics.dlq, "run-7", b"\x00payload", partition=1, headers=(("why", b"bad"),))

    await log.publish([sent])

    [record] = await read_all(log, topics.dlq, 1)
    assert (record.topic, record.partition, record.offset) == (topics.dlq, 1, 0)
    assert (record.key, record.value, record.headers) == ("run-7", b"\x00payload", sent.headers)
    assert record.header("why") == b"bad"
    assert record.timestamp_ms > 0


async def test_read_without_follow_ends_at_the_end_offset_of_the_call(
    log: EventLog, topics: Topics
) -> None:
    await log.publish([command(topics, "k", b"old-%d" % i, partition=0) for i in range(3)])

    seen: list[Record] = []
    async for record in log.read(topics.commands, 0, 0):
        if not seen:  # appended while reading: after the end as of the call
            await log.publish([command(topics, "k", b"new", partition=0)])
        seen.append(record)

    assert values(seen) == [b"old-0", b"old-1", b"old-2"]
    assert [r.offset for r in await read_all(log, topics.commands, 0, start=2)] == [2, 3]
    assert await read_all(log, topics.commands, 0, start=4) == []


async def test_read_with_follow_receives_records_appended_later(
    log: EventLog, topics: Topics
) -> None:
    await log.publish([command(topics, "k", b"before", partition=3)])

    async with contextlib.aclosing(log.read(topics.commands, 3, 0, follow=True)) as stream:
        async with asyncio.timeout(SETTLE_S):
            first = await anext(stream)
        later = asyncio.create_task(anext(stream))
        await log.publish([command(topics, "k", b"after", partition=3)])
        async with asyncio.timeout(SETTLE_S):
            second = await later

    assert (first.offset, first.value) == (0, b"before")
    assert (second.offset, second.value) == (1, b"after")


async def test_concurrent_appends_reach_a_follower_in_order_without_gaps(
    connect: Connect, log: EventLog, topics: Topics
) -> None:
    other = connect()  # a second process appending to the same partition
    await other.start()
    try:
        batches = 20

        async def append(by: EventLog, name: bytes) -> None:
            for i in range(batches):
                await by.publish(
                    [command(topics, "k", b"%s-%d-%d" % (name, i, j), 0) for j in (0, 1)]
                )

        total = batches * 2 * 2
        seen: list[Record] = []
        async with contextlib.aclosing(log.read(topics.commands, 0, 0, follow=True)) as stream:
            writers = asyncio.gather(append(log, b"a"), append(other, b"b"))
            async with asyncio.timeout(SETTLE_S):
                while len(seen) < total:
                    seen.append(await anext(stream))
            await writers
    finally:
        await other.close()

    assert [r.offset for r in seen] == list(range(total))
    for name in (b"a", b"b"):  # each writer's records in its own order
        mine = [r.value for r in seen if r.value.startswith(name)]
        assert mine == [b"%s-%d-%d" % (name, i, j) for i in range(batches) for j in (0, 1)]


async def test_a_new_connection_sees_the_records_and_the_group_position(
    connect: Connect, log: EventLog, topics: Topics
) -> None:
    group = f"{topics.prefix}.g"
    await log.publish([command(topics, "k", b"c%d" % i, partition=3) for i in range(4)])
    a = await Worker(log, group, topics.commands).start()
    await settled(a)
    await polled(a, 4)
    await a.member.commit(3, [event(topics, 3, b"e0")], 3)
    await a.member.stop()

    restarted = connect()  # as after a restart of the process
    await restarted.start()
    try:
        assert await restarted.partition_count(topics.runs) == PARTITIONS
        assert values(await read_all(restarted, topics.runs, 3)) == [b"e0"]
        assert await restarted.end_offset(topics.commands, 3) == 4
        await resumes_at(restarted, group, topics, 3, 3)
    finally:
        await restarted.close()


# Topics.


async def test_ensure_topics_refuses_commands_and_runs_not_co_partitioned(
    log: EventLog, topics: Topics
) -> None:
    await log.ensure_topics(topics, PARTITIONS)  # again, same count: nothing to do

    with pytest.raises(ConfigurationError, match="partitions"):
        await log.ensure_topics(topics, PARTITIONS * 2)
    for topic in topics.all:
        assert await log.partition_count(topic) == PARTITIONS


# Groups.


async def test_a_lone_member_gets_every_partition(log: EventLog, topics: Topics) -> None:
    worker = await Worker(log, f"{topics.prefix}.g", topics.commands).start()
    try:
        await settled(worker)
        assert worker.listener.held == ALL
    finally:
        await worker.member.stop()
    assert worker.listener.held == set()  # stopping revokes


async def test_two_members_split_the_partitions_and_the_listeners_hear_it(
    log: EventLog, topics: Topics
) -> None:
    group = f"{topics.prefix}.g"
    a = await Worker(log, group, topics.commands).start()
    await settled(a)
    b = await Worker(log, group, topics.commands).start()
    try:
        await settled(a, b)
        assert a.member.assigned.isdisjoint(b.member.assigned)
        assert b.member.assigned <= frozenset().union(*a.listener.revoked)
    finally:
        await b.member.stop()
    await settled(a)  # b's partitions come back
    await a.member.stop()


async def test_a_member_polls_committed_records_in_offset_order(
    log: EventLog, topics: Topics
) -> None:
    keys = [f"run-{i}" for i in range(20)]
    await log.publish([command(topics, key, key.encode()) for key in keys])
    worker = await Worker(log, f"{topics.prefix}.g", topics.commands).start()
    try:
        await polled(worker, len(keys))
    finally:
        await worker.member.stop()

    for partition in range(PARTITIONS):
        mine = [r for r in worker.polled if r.partition == partition]
        assert [r.offset for r in mine] == list(range(len(mine)))
        assert [r.key for r in mine] == keys_of(keys, partition)


async def test_commit_appends_and_moves_the_group_position_together(
    log: EventLog, topics: Topics
) -> None:
    group = f"{topics.prefix}.g"
    await log.publish([command(topics, "k", b"c%d" % i, partition=1) for i in range(3)])
    a = await Worker(log, group, topics.commands).start()
    await settled(a)
    await polled(a, 3)

    positions = await a.member.commit(1, [event(topics, 1, b"e0"), event(topics, 1, b"e1")], 2)

    assert [(p.topic, p.partition) for p in positions] == [(topics.runs, 1)] * 2
    assert values(await read_all(log, topics.runs, 1)) == [b"e0", b"e1"]
    await a.member.stop()

    await resumes_at(log, group, topics, 1, 2)  # after the commit


async def test_the_listener_chooses_where_a_partition_starts(log: EventLog, topics: Topics) -> None:
    group = f"{topics.prefix}.g"
    await log.publish([command(topics, "k", b"c%d" % i, partition=1) for i in range(3)])
    a = await Worker(log, group, topics.commands).start()
    await settled(a)
    await polled(a, 3)
    await a.member.commit(1, [], 3)
    await a.member.stop()

    b = await Worker(log, group, topics.commands, starts={1: 1}).start()
    try:
        await polled(b, 2)
        assert b.offsets(1) == [1, 2]
    finally:
        await b.member.stop()


async def test_seek_rereads_a_partition(log: EventLog, topics: Topics) -> None:
    await log.publish([command(topics, "k", b"c%d" % i, partition=0) for i in range(2)])
    worker = await Worker(log, f"{topics.prefix}.g", topics.commands).start()
    try:
        await settled(worker)
        await polled(worker, 2)
        await worker.member.seek(0, 0)
        await polled(worker, 4)
        assert worker.offsets(0) == [0, 1, 0, 1]
    finally:
        await worker.member.stop()


async def test_a_commit_for_a_lost_partition_is_fenced_and_invisible(
    log: EventLog, topics: Topics
) -> None:
    group = f"{topics.prefix}.g"
    a = await Worker(log, group, topics.commands).start()
    await settled(a)
    b = await Worker(log, group, topics.commands).start()
    try:
        await settled(a, b)
        lost = min(b.member.assigned)

        with pytest.raises(Fenced):
            await a.member.commit(lost, [event(topics, lost, b"stale")], 1)

        await b.member.commit(lost, [event(topics, lost, b"owner")], 1)
        assert values(await read_all(log, topics.runs, lost)) == [b"owner"]
    finally:
        await a.member.stop()
        await b.member.stop()


async def test_a_failed_commit_leaves_nothing_visible(log: EventLog, topics: Topics) -> None:
    group = f"{topics.prefix}.g"
    await log.publish([command(topics, "k", b"c%d" % i, partition=0) for i in range(3)])
    a = await Worker(log, group, topics.commands).start()
    await settled(a)
    bad = Outgoing(topics.runs, "run-0", b"bad", partition=PARTITIONS + 5)

    with pytest.raises(ConfigurationError, match="partition"):
        await a.member.commit(0, [event(topics, 0, b"aborted"), bad], 3)

    assert await read_all(log, topics.runs, 0) == []
    await a.member.commit(0, [event(topics, 0, b"kept")], 1)  # the member goes on
    assert values(await read_all(log, topics.runs, 0)) == [b"kept"]
    await a.member.stop()

    b = await Worker(log, group, topics.commands).start()  # position 1, not the aborted 3
    try:
        await polled(b, 2)
        assert b.offsets(0) == [1, 2]
    finally:
        await b.member.stop()


# Identity: positions kept outside the log are only comparable under one identity.


async def test_a_topic_has_one_identity_for_every_connection_to_its_log(
    connect: Connect, log: EventLog, topics: Topics
) -> None:
    other = connect()  # another process on the same log
    await other.start()
    try:
        runs = await log.log_id(topics.runs)

        assert runs == await log.log_id(topics.runs) == await other.log_id(topics.runs)
        assert await log.log_id(topics.commands) not in (runs, "")
        assert topics.runs not in (runs, await other.log_id(topics.commands))
    finally:
        await other.close()


async def test_the_same_topic_in_another_memory_log_is_another_topic(topics: Topics) -> None:
    first, second = MemoryLog(), MemoryLog()
    for log in (first, second):
        await log.ensure_topics(topics, PARTITIONS)

    assert await first.log_id(topics.runs) != await second.log_id(topics.runs)


# Kafka only.


@pytest.mark.kafka
async def test_kafka_clients_are_configured_for_safety(kafka_bootstrap: str) -> None:
    configs = KafkaLog(kafka_bootstrap).effective_configs()

    for producer in ("publisher", "transactional_producer"):
        assert configs[producer]["acks"] == "all"
        assert configs[producer]["enable_idempotence"] is True
    for consumer in ("group_consumer", "reader"):
        assert configs[consumer]["isolation_level"] == "read_committed"
        assert configs[consumer]["enable_auto_commit"] is False
    assert configs["group_consumer"]["auto_offset_reset"] == "earliest"
    # Readers start where they are told: a start outside the log is an error, not a jump.
    assert configs["reader"]["auto_offset_reset"] == "none"
    # A transaction covers one step; the broker's cap (15 minutes) must never be reached.
    timeout_ms = configs["transactional_producer"]["transaction_timeout_ms"]
    assert isinstance(timeout_ms, int)
    assert 0 < timeout_ms <= 15 * 60 * 1000
    # Every safety setting is passed explicitly (none left to aiokafka's weak defaults).
    explicit = {
        "publisher": {"acks", "enable_idempotence"},
        "transactional_producer": {"acks", "enable_idempotence", "transaction_timeout_ms"},
        "group_consumer": {"isolation_level", "enable_auto_commit", "auto_offset_reset"},
        "reader": {"isolation_level", "enable_auto_commit", "auto_offset_reset"},
    }
    for role, names in explicit.items():
        assert names <= configs[role].keys(), (role, names - configs[role].keys())


@pytest.mark.kafka
async def test_kafka_topics_keep_runs_forever_and_compact_checkpoints(
    kafka_bootstrap: str, fresh_prefix: str
) -> None:
    topics = Topics(fresh_prefix)
    log = KafkaLog(kafka_bootstrap)
    await log.start()
    try:
        await log.ensure_topics(topics, PARTITIONS)
    finally:
        await log.close()
    runs = await kafka_admin.topic_configs(kafka_bootstrap, topics.runs)
    checkpoints = await kafka_admin.topic_configs(kafka_bootstrap, topics.checkpoints)

    assert runs["retention.ms"] == "-1"
    assert runs["cleanup.policy"] == "delete"
    assert checkpoints["cleanup.policy"] == "compact"


async def zombie_and_owner(
    log: KafkaLog, topics: Topics, group: str, before: Sequence[Outgoing] = ()
) -> tuple[Worker, Worker]:
    """A member whose group session ended (as when a process stalls past session.timeout.ms)
    while its transactional producers live on and it still believes it owns everything, and
    the member that owns everything since. `before`: records the zombie committed on
    partition 0 while it was the owner, one commit each; it then waited for its producers to
    begin their next transactions ahead."""
    await log.ensure_topics(topics, PARTITIONS)
    zombie = await Worker(log, group, topics.commands).start()
    await settled(zombie)
    for record in before:
        await zombie.member.commit(0, [record], None)
    producers = zombie.member._producers[0].producers if before else ()  # type: ignore[attr-defined]
    for producer in producers[: len(before)]:
        await eventually(lambda p=producer: begun_ahead(p, group), timeout=SETTLE_S)
    await zombie.member._consumer.stop()  # type: ignore[attr-defined]
    owner = await Worker(log, group, topics.commands).start()
    await settled(owner)
    return zombie, owner


@pytest.mark.kafka
@pytest.mark.parametrize("turn", [0, 1], ids=["first producer", "its twin"])
async def test_kafka_zombie_with_a_live_producer_is_fenced_by_the_broker(
    kafka_bootstrap: str, fresh_prefix: str, turn: int
) -> None:
    """A partition's two transactional producers take turns: the new owner fences both."""
    topics = Topics(fresh_prefix)
    log = KafkaLog(kafka_bootstrap, heartbeat_interval_ms=250)
    await log.start()
    try:
        zombie, owner = await zombie_and_owner(log, topics, f"{fresh_prefix}.g")
        assert zombie.member.assigned == ALL
        zombie.member._producers[0].turn = turn  # type: ignore[attr-defined]

        with pytest.raises(Fenced):
            await zombie.member.commit(0, [event(topics, 0, b"zombie")], 1)

        await owner.member.commit(0, [event(topics, 0, b"owner")], 1)
        assert values(await read_all(log, topics.runs, 0)) == [b"owner"]
    finally:
        await log.close()


def begun_ahead(producer: Any, group: str) -> bool:
    """Its next transaction is open and has registered the group (and its partitions before)."""
    return bool(early.begun(producer)) and producer._txn_manager._txn_consumer_group == group


def calls_by_id(producers: Sequence[Any], method: str) -> list[str]:
    """The transactional id of each producer, each time `method` is called on it."""
    calls: list[str] = []
    for producer in producers:
        real = getattr(producer, method)

        async def spy(*args: Any, real: Any = real, producer: Any = producer) -> Any:
            calls.append(producer._txn_manager.transactional_id)
            return await real(*args)

        setattr(producer, method, spy)
    return calls


@pytest.mark.kafka
async def test_kafka_commits_take_turns_between_a_partitions_two_producers(
    kafka_bootstrap: str, fresh_prefix: str
) -> None:
    """Back-to-back commits alternate between the partition's two transactional ids, and
    records and group position come out as if one producer had written them all. Once a
    commit is done, both producers begin their next transactions ahead, registered with the
    partitions written and the group (engine/log/kafka/early.py), so only the first commit
    begins its own."""
    topics = Topics(fresh_prefix)
    group = f"{fresh_prefix}.g"
    async with started(KafkaLog(kafka_bootstrap, heartbeat_interval_ms=250), topics) as log:
        await log.publish([command(topics, "k", b"c%d" % i, partition=0) for i in range(7)])
        a = await Worker(log, group, topics.commands).start()
        await settled(a)
        pair = a.member._producers[0]  # type: ignore[attr-defined]
        ids = [p._txn_manager.transactional_id for p in pair.producers]
        assert ids == [f"{group}.{topics.commands}.0", f"{group}.{topics.commands}.0.b"]
        used = calls_by_id(pair.producers, "commit_transaction")
        begins = calls_by_id(pair.producers, "begin_transaction")
        written = {TopicPartition(topics.runs, 0), TopicPartition(topics.runs, 1)}

        for n in range(6):
            await a.member.commit(0, [event(topics, 0, b"e%d" % n), event(topics, 1, b"x")], n + 1)
            done = pair.producers[n % 2]
            await eventually(lambda done=done: begun_ahead(done, group), timeout=SETTLE_S)
            assert done._txn_manager.txn_partitions == written

        assert used == ids * 3
        assert begins == ids[:1]  # the twin's first transaction was begun ahead too
        assert values(await read_all(log, topics.runs, 0)) == [b"e%d" % n for n in range(6)]
        assert values(await read_all(log, topics.runs, 1)) == [b"x"] * 6
        await a.member.stop()
        await resumes_at(log, group, topics, 0, 6)  # after the last commit


@pytest.mark.kafka
async def test_kafka_partition_whose_second_producer_cannot_start_has_neither(
    kafka_bootstrap: str, fresh_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both producers or neither: a partition served by one would leave a zombie's other id
    unfenced. Its commit then asks for a new assignment, as when a lone producer failed."""
    from engine.log.kafka import clients

    async def refuse_the_twin(client: object, timeout_s: float) -> None:
        txn = getattr(client, "_txn_manager", None)  # the group's consumer starts here too
        if txn is not None and txn.transactional_id.endswith(".0.b"):
            await clients.close_quietly(client, "transactional_producer")
            raise TransientLogError("could not connect to Kafka: refused by the test")
        await clients.start_or_close(client, timeout_s)

    monkeypatch.setattr("engine.log.kafka.member.start_or_close", refuse_the_twin)
    topics = Topics(fresh_prefix)
    async with started(KafkaLog(kafka_bootstrap, heartbeat_interval_ms=250), topics) as log:
        a = await Worker(log, f"{fresh_prefix}.g", topics.commands).start()
        await settled(a)
        producers = a.member._producers  # type: ignore[attr-defined]
        assert 0 not in producers
        assert sorted(producers) == sorted(ALL - {0})

        with pytest.raises(TransientLogError, match="rejoining"):
            await a.member.commit(0, [event(topics, 0, b"e")], None)
        await a.member.stop()
        assert values(await read_all(log, topics.runs, 0)) == []


@pytest.mark.kafka
async def test_kafka_zombie_fenced_while_it_fills_a_transaction_is_fenced_not_crashed(
    kafka_bootstrap: str, fresh_prefix: str
) -> None:
    """The broker's fencing can reach the sender in the background, while the commit still
    sends records (adding the first record's partition): aiokafka then refuses the next send
    as "not in transaction". Found by the zombie scenario, where it stopped the worker."""
    from engine.log.kafka.clients import transaction_error

    topics = Topics(fresh_prefix)
    log = KafkaLog(kafka_bootstrap, heartbeat_interval_ms=250)
    await log.start()
    try:
        zombie, owner = await zombie_and_owner(log, topics, f"{fresh_prefix}.g")
        pair = zombie.member._producers[0]  # type: ignore[attr-defined]
        producer = pair.producers[pair.turn]
        real_send, sends = producer.send, 0

        async def second_send_after_the_sender_met_the_fencing(
            *args: object, **kw: object
        ) -> object:
            nonlocal sends
            sends += 1
            if sends == 2:  # the interleaving the zombie met, made certain
                await eventually(lambda: transaction_error(producer) is not None, timeout=30)
            return await real_send(*args, **kw)

        producer.send = second_send_after_the_sender_met_the_fencing
        with pytest.raises(Fenced):
            await zombie.member.commit(0, [event(topics, 0, b"z"), event(topics, 1, b"z")], None)
        assert sends == 2
        assert 0 not in zombie.member._producers  # type: ignore[attr-defined]

        await owner.member.commit(0, [event(topics, 0, b"owner")], 1)
        assert values(await read_all(log, topics.runs, 0)) == [b"owner"]
        assert values(await read_all(log, topics.runs, 1)) == []
    finally:
        await log.close()


@pytest.mark.kafka
async def test_kafka_member_fenced_with_no_new_owner_rejoins_and_serves_its_partition_again(
    kafka_bootstrap: str, fresh_prefix: str
) -> None:
    """The coordinator can end a transaction and bump the epoch by itself (a timeout, a
    coordinator that moved): the member is fenced though the group still gives it the
    partition. It must rejoin for a new producer, not keep the partition unserved."""
    from aiokafka import AIOKafkaProducer  # noqa: TID251

    topics = Topics(fresh_prefix)
    group = f"{fresh_prefix}.g"
    async with started(KafkaLog(kafka_bootstrap, heartbeat_interval_ms=250), topics) as log:
        member = await Worker(log, group, topics.commands).start()
        await settled(member)
        # The epoch bump, from outside the group: the same transactional id initialised again.
        bump = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, transactional_id=f"{group}.{topics.commands}.0"
        )
        await bump.start()
        await bump.stop()
        with pytest.raises(Fenced):
            await member.member.commit(0, [event(topics, 0, b"fenced")], 1)

        async def served_again() -> bool:
            await member.step()
            try:
                await member.member.commit(0, [event(topics, 0, b"again")], 1)
            except (Fenced, TransientLogError):
                return False
            return True

        await eventually(served_again, timeout=SETTLE_S, message="partition 0 served again")
        assert member.member.assigned == ALL
        assert values(await read_all(log, topics.runs, 0)) == [b"again"]


@pytest.mark.kafka
async def test_a_kafka_topic_created_again_has_another_identity(
    kafka_bootstrap: str, fresh_prefix: str
) -> None:
    # Deleting a topic is below the port (no adapter does it): the admin client directly.
    from aiokafka.admin import AIOKafkaAdminClient  # noqa: TID251

    topics = Topics(fresh_prefix)
    log = KafkaLog(kafka_bootstrap)
    await log.start()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await log.ensure_topics(topics, PARTITIONS)
        before = await log.log_id(topics.runs)
        await admin.delete_topics([topics.runs])

        async def gone() -> bool:
            return topics.runs not in await admin.list_topics()

        await eventually(gone, timeout=SETTLE_S, message="topic deleted")
        with pytest.raises(ConfigurationError, match="does not exist"):
            await log.log_id(topics.runs)
        await log.ensure_topics(topics, PARTITIONS)

        after = await log.log_id(topics.runs)
    finally:
        await admin.close()
        await log.close()

    assert before.startswith("kafka:")
    assert after.startswith("kafka:")
    assert before.split(":")[1] == after.split(":")[1]  # the same cluster...
    assert before != after  # ...but another topic: its offsets started over


# PostgreSQL only.


@pytest.mark.postgres
async def test_postgres_logs_in_two_schemas_are_two_logs(pg_url: str, fresh_prefix: str) -> None:
    topics = Topics(fresh_prefix)
    ids = []
    for schema in (f"{fresh_prefix}_a", f"{fresh_prefix}_b"):
        log = PostgresLog(pg_url, schema=schema)
        await log.start()
        try:
            await log.ensure_topics(topics, PARTITIONS)
            ids.append(await log.log_id(topics.runs))
            with pytest.raises(ConfigurationError, match="does not exist"):
                await log.log_id(f"{fresh_prefix}.unknown")
        finally:
            await log.close()

    assert ids[0] != ids[1]


@pytest.mark.postgres
async def test_postgres_member_whose_lease_expired_is_fenced_then_hears_it(
    pg_url: str, fresh_prefix: str
) -> None:
    topics = Topics(fresh_prefix)
    group = f"{fresh_prefix}.g"
    log = PostgresLog(pg_url, schema=fresh_prefix, session_timeout_s=1.0, heartbeat_interval_s=0.25)
    await log.start()
    try:
        await log.ensure_topics(topics, PARTITIONS)
        zombie = await Worker(log, group, topics.commands).start()
        await settled(zombie)
        # The process stalls: no heartbeats, no polls; it still believes it owns everything.
        zombie.member._heartbeats.cancel()  # type: ignore[attr-defined]
        owner = await Worker(log, group, topics.commands).start()
        await settled(owner)  # after the zombie's lease expired, the owner has everything
        assert zombie.member.assigned == ALL

        with pytest.raises(Fenced):
            await zombie.member.commit(0, [event(topics, 0, b"zombie")], 1)

        await owner.member.commit(0, [event(topics, 0, b"owner")], 1)
        assert values(await read_all(log, topics.runs, 0)) == [b"owner"]
        await settled(zombie, owner)  # it wakes: revoked first, then rejoins for a share
        assert zombie.listener.revoked[0] == ALL
    finally:
        await log.close()
