"""A worker's transaction on Kafka: as aiokafka runs it, and in the fewest round trips.

    .venv/bin/python bench/transactions.py [--rounds 300] [--brokers 1|3] [--gap-ms 0]
        [--retry-ms 3] [--kafka-version 3.9.1|4.1.1] [--broker-setting KEY=VALUE ...]

Every step a worker commits is one transaction that writes its records and the consumed
offset of the commands topic (engine/log/kafka/member.py). This times that transaction, one
after another (or each after --gap-ms idle, as a decision that finds its worker idle),
several ways on the same broker (its own, in a temporary directory; or
COUNTERSIGN_KAFKA_BOOTSTRAP), in alternating blocks so the machine's load falls on each alike:

- aiokafka: begin, send_offsets_to_transaction, send, commit, as the worker does, with the
  worker's producer settings; with the worker's tuning of aiokafka's retries
  (engine/log/kafka/txn_backoff.py) and without it, in turn. aiokafka's
  sender issues one transaction request at a time: AddOffsetsToTxn, TxnOffsetCommit,
  AddPartitionsToTxn, Produce, EndTxn, five round trips in sequence. Also tuned with two
  producers taking turns, and the same with each producer's next transaction begun and
  registered as soon as it has committed (engine/log/kafka/early.py): what the worker does.
- by hand, in sequence: the same five requests on aiokafka's client, awaited one by one (so
  what the next way saves is the overlap, not aiokafka's own overhead).
- by hand, overlapped: AddPartitionsToTxn, AddOffsetsToTxn, then Produce to the partition's
  leader and TxnOffsetCommit to the group coordinator at once, then EndTxn: four round trips
  in sequence. That is the protocol's minimum on Kafka 3.9 without retries: the transaction
  coordinator takes one change of a transaction at a time (a second, sent while the first is
  written, is refused as CONCURRENT_TRANSACTIONS); AddPartitionsToTxn refuses the internal
  `__consumer_offsets` partition (TOPIC_AUTHORIZATION_FAILED), so the offsets' registration
  cannot ride with the records'; and a Produce sent while AddOffsetsToTxn is being written
  fails its partition's verification with the coordinator (KIP-890, NOT_ENOUGH_REPLICAS to
  this client). KIP-890's second part (Kafka 4.0) lets Produce and TxnOffsetCommit
  register themselves: two round trips.
- transactions v2 by hand, on a broker that has them (Kafka 4.0+, `transaction.version=2`
  finalized; `--kafka-version 4.1.1` starts one): InitProducerId v5 once, then Produce v12
  and TxnOffsetCommit v5 at once, then EndTxn v5, whose answer gives the epoch the next
  transaction uses (bench/txn_v2.py; aiokafka has none of these versions). Also the same
  three requests one after another, since the coordinator still registers one partition of
  a transaction at a time and refuses the other meanwhile.

Also the round trip itself (a Metadata request). Then checks that every transaction of
every way is visible to a read_committed consumer and that the group's committed offset is
the last one written: a way that lost a write is reported, not timed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient, ConnectionGroup, CoordinationType
from aiokafka.errors import (
    ConcurrentTransactions,
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    KafkaError,
    NotEnoughReplicasError,
    for_code,
)
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.protocol.transaction import (
    AddOffsetsToTxnRequest,
    AddPartitionsToTxnRequest,
    EndTxnRequest,
    InitProducerIdRequest,
    TxnOffsetCommitRequest,
)
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import OffsetAndMetadata

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import txn_v2  # noqa: E402
from broker import kafka  # noqa: E402

from countersign import local_kafka  # noqa: E402
from engine.log.kafka import early, txn_backoff  # noqa: E402
from engine.log.kafka.config import ClientTimings, client_configs  # noqa: E402

# The hand-made ways retry a refusal after the same 3 ms as the worker's producers
# (--retry-ms changes it).
RETRY_S = txn_backoff.SOON_S
VALUE = b"x" * 300  # about one run event
# A Produce or TxnOffsetCommit whose partition's registration with the transaction
# coordinator meets the last transaction's end still being written: sent again unchanged.
# The broker says so as NOT_ENOUGH_REPLICAS or COORDINATOR_LOAD_IN_PROGRESS to clients
# older than transactions v2, and may say CONCURRENT_TRANSACTIONS to newer ones.
RETRIED = (
    NotEnoughReplicasError,
    CoordinatorNotAvailableError,
    CoordinatorLoadInProgressError,
    ConcurrentTransactions,
)


def java_hash(text: str) -> int:
    """Java's String.hashCode, which places a group on a `__consumer_offsets` partition."""
    h = 0
    for char in text:
        h = (31 * h + ord(char)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def offsets_partition(group: str, partitions: int) -> int:
    return (java_hash(group) & 0x7FFFFFFF) % partitions


def check(response: Any, what: str) -> None:
    """Raise the first error a response carries (at whatever depth its API puts it)."""
    for code in txn_v2.error_codes(response):
        raise for_code(code)(f"{what}: {response}")


async def coordinator(client: AIOKafkaClient, kind: Any, key: str) -> int:
    """The coordinator's node, once the broker has made its internal topic."""
    deadline = time.monotonic() + 60
    while True:
        try:
            node: int = await client.coordinator_lookup(kind, key)
            return node
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


class HandMade:
    """A transactional producer written against aiokafka's client, one request per call."""

    def __init__(self, bootstrap: str, topic: str, group: str, txn_id: str) -> None:
        self.topic, self.group, self.txn_id = topic, group, txn_id
        self.clients = [AIOKafkaClient(bootstrap_servers=bootstrap) for _ in range(2)]
        self.producer_id = self.epoch = -1
        self.sequence = 0
        self.written = 0
        self.spent: dict[str, list[float]] = {}
        self.retries: dict[str, int] = {}
        self.retry_s = RETRY_S

    async def timed(self, name: str, request: Awaitable[Any]) -> Any:
        started = time.perf_counter()
        try:
            return await request
        finally:
            self.spent.setdefault(name, []).append(time.perf_counter() - started)

    async def start(self) -> None:
        for client in self.clients:
            await client.bootstrap()
        client = self.clients[0]
        client.add_topic(self.topic)
        client.add_topic("__consumer_offsets")
        await client.force_metadata_update()
        self.txn_node = await coordinator(client, CoordinationType.TRANSACTION, self.txn_id)
        self.group_node = await coordinator(client, CoordinationType.GROUP, self.group)
        leader = client.cluster.leader_for_partition(TopicPartition(self.topic, 0))
        assert leader is not None
        self.leader: int = leader
        offsets = await client._wait_on_metadata("__consumer_offsets")
        self.offsets_tp = offsets_partition(self.group, len(offsets))
        response = await self._txn(self._init_producer(), client)
        self.producer_id, self.epoch = response.producer_id, response.producer_epoch

    def _init_producer(self) -> Any:
        return InitProducerIdRequest(self.txn_id, 60_000)

    async def close(self) -> None:
        for client in self.clients:
            await client.close()

    async def _txn(self, request: Any, client: AIOKafkaClient | None = None) -> Any:
        """A request to the transaction coordinator, asked again while the last
        transaction's markers are being written (as every client does)."""
        while True:
            response = await (client or self.clients[0]).send(
                self.txn_node, request, group=ConnectionGroup.COORDINATION
            )
            try:
                check(response, type(request).__name__)
                return response
            except ConcurrentTransactions:
                name = type(request).__name__
                self.retries[name] = self.retries.get(name, 0) + 1
                await asyncio.sleep(self.retry_s)

    def _add_partitions(self) -> Any:
        topics = [(self.topic, [0])]
        return AddPartitionsToTxnRequest(self.txn_id, self.producer_id, self.epoch, topics)

    def _add_offsets(self) -> Any:
        return AddOffsetsToTxnRequest(self.txn_id, self.producer_id, self.epoch, self.group)

    def _batch(self) -> bytes:
        builder = DefaultRecordBatchBuilder(
            2,
            0,
            is_transactional=1,
            producer_id=self.producer_id,
            producer_epoch=self.epoch,
            base_sequence=self.sequence,
            batch_size=1 << 20,
        )
        builder.append(0, timestamp=int(time.time() * 1000), key=b"run", value=VALUE, headers=[])
        return bytes(builder.build())

    async def _produce(self) -> None:
        request = ProduceRequest(self.txn_id, -1, 30_000, [(self.topic, [(0, self._batch())])])
        # Sent again unchanged (same sequence: the broker keeps one copy) while its partition's
        # verification with the coordinator meets a change in flight (KIP-890).
        await self._retrying(lambda: self.clients[0].send(self.leader, request), "Produce")
        self.sequence += 1

    async def _commit_offset(self, offset: int) -> None:
        request = TxnOffsetCommitRequest(
            self.txn_id,
            self.group,
            self.producer_id,
            self.epoch,
            [(self.topic, [(0, offset, "")])],
        )
        await self._retrying(
            lambda: self.clients[1].send(
                self.group_node, request, group=ConnectionGroup.COORDINATION
            ),
            "TxnOffsetCommit",
        )

    async def _retrying(self, send: Callable[[], Awaitable[Any]], what: str) -> None:
        while True:
            try:
                check(await send(), what)
                return
            except RETRIED as error:
                name = f"{what} {type(error).__name__}"
                self.retries[name] = self.retries.get(name, 0) + 1
                await asyncio.sleep(self.retry_s)

    async def _end(self) -> None:
        await self._txn(EndTxnRequest(self.txn_id, self.producer_id, self.epoch, True))
        self.written += 1

    async def in_sequence(self, offset: int) -> None:
        await self.timed("AddOffsetsToTxn", self._txn(self._add_offsets()))
        await self.timed("TxnOffsetCommit", self._commit_offset(offset))
        await self.timed("AddPartitionsToTxn", self._txn(self._add_partitions()))
        await self.timed("Produce", self._produce())
        await self.timed("EndTxn", self._end())

    async def overlapped(self, offset: int) -> None:
        await self.register()
        await self.registered(offset)

    async def register(self) -> None:
        """Add the records' partition and the group to the next transaction."""
        await self._txn(self._add_partitions())
        await self._txn(self._add_offsets())

    async def registered(self, offset: int) -> None:
        """The rest of a transaction that `register` began beforehand (while idle)."""
        await asyncio.gather(self._produce(), self._commit_offset(offset))
        await self._end()


class HandMadeV2(HandMade):
    """Transactions v2 (Kafka 4.0+): Produce v12 and TxnOffsetCommit v5 add their partitions
    to the transaction themselves, at once; EndTxn v5 gives the next epoch."""

    def __init__(self, bootstrap: str, topic: str, group: str, txn_id: str) -> None:
        super().__init__(bootstrap, topic, group, txn_id)
        self.bumps = 0  # new epochs adopted from EndTxn answers

    def _init_producer(self) -> Any:
        return txn_v2.InitProducerIdV5(self.txn_id, 60_000)

    def _adopt(self, producer_id: int, epoch: int) -> None:
        if (producer_id, epoch) != (self.producer_id, self.epoch):
            self.sequence = 0  # a new epoch's batches start again at sequence 0
            self.bumps += 1
        self.producer_id, self.epoch = producer_id, epoch

    async def _produce(self) -> None:
        request = txn_v2.ProduceV12(self.txn_id, self.topic, 0, self._batch())
        await self._retrying(lambda: self.clients[0].send(self.leader, request), "Produce")
        self.sequence += 1

    async def _commit_offset(self, offset: int) -> None:
        producer = (self.producer_id, self.epoch)
        request = txn_v2.TxnOffsetCommitV5(
            self.txn_id, self.group, producer, (self.topic, 0, offset)
        )
        await self._retrying(
            lambda: self.clients[1].send(
                self.group_node, request, group=ConnectionGroup.COORDINATION
            ),
            "TxnOffsetCommit",
        )

    async def _end(self) -> None:
        producer = (self.producer_id, self.epoch)
        response = await self._txn(txn_v2.EndTxnV5(self.txn_id, producer, True))
        self._adopt(response.producer_id, response.producer_epoch)
        self.written += 1

    async def two_round_trips(self, offset: int) -> None:
        produce = self.timed("Produce", self._produce())
        commit = self.timed("TxnOffsetCommit", self._commit_offset(offset))
        await self.timed("Produce ∥ TxnOffsetCommit", asyncio.gather(produce, commit))
        await self.timed("EndTxn", self._end())

    async def three_round_trips(self, offset: int) -> None:
        await self.timed("Produce", self._produce())
        await self.timed("TxnOffsetCommit", self._commit_offset(offset))
        await self.timed("EndTxn", self._end())


async def transactions_v2(client: AIOKafkaClient) -> str | None:
    """Why the broker cannot run transactions v2, or None when it can."""
    answer = await client.send(client.get_random_node(), txn_v2.ApiVersionsV3())
    level = txn_v2.finalized_features(answer).get(txn_v2.TRANSACTION_VERSION, 0)
    versions = txn_v2.max_versions(answer)
    needed = {"Produce": (0, 12), "TxnOffsetCommit": (28, 5), "EndTxn": (26, 5)}
    missing = [f"{name} v{v}" for name, (key, v) in needed.items() if versions.get(key, -1) < v]
    if level < 2 or missing:
        return f"transaction.version {level} finalized, lacks {missing or 'nothing'}"
    return None


def count_requests(producer: AIOKafkaProducer, counts: dict[str, int]) -> None:
    """Count the requests the producer's client sends, by name (a refused one is sent again)."""
    client = producer.client
    original = client.send

    async def send(node_id: int, request: Any, **kwargs: Any) -> Any:
        name = type(request).__name__.removesuffix("Request")
        counts[name] = counts.get(name, 0) + 1
        return await original(node_id, request, **kwargs)

    client.send = send  # type: ignore[method-assign]


async def with_aiokafka(
    producer: AIOKafkaProducer, topic: str, group: str, offset: int, *, ahead: bool = False
) -> None:
    """One transaction as the worker's member makes it; `ahead`: the producer then begins
    its next one at once, registered with the partition and the group (early.py)."""
    if not early.begun(producer):
        await producer.begin_transaction()
    await producer.send_offsets_to_transaction(
        {TopicPartition(topic, 0): OffsetAndMetadata(offset, "")}, group
    )
    sent = await producer.send(topic, VALUE, key=b"run", partition=0)
    await producer.commit_transaction()
    await sent
    if ahead:
        early.begin(producer, [TopicPartition(topic, 0)], group)


async def round_trip(client: AIOKafkaClient, node: int) -> None:
    await client.send(node, MetadataRequest([]))


async def committed(bootstrap: str, topic: str) -> int:
    """Records of `topic` a read_committed consumer sees."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        seen = 0
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            seen += sum(len(records) for records in batch.values())
        return seen
    finally:
        await consumer.stop()


async def committed_offset(bootstrap: str, topic: str, group: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, 0))
    finally:
        await consumer.stop()


def summary(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (
        f"  {name:<34} p50 {statistics.median(ms):6.2f} ms   p99 {p99:6.2f} ms   "
        f"mean {statistics.fmean(ms):6.2f} ms   ({len(ms)})"
    )


AIOKAFKA_WAYS = ("tuned", "as is", "pair", "ahead")  # with and without the worker's tuning
# "pair": two transactional producers on one partition, taking turns, so a transaction never
# begins while its own producer's last one still has markers to write. "ahead": the same, and
# each producer begins its next transaction as soon as it has committed (the worker's way).
PAIRED = ("pair", "ahead")
V2_WAYS = ("v2", "v2 sequence")  # on a broker with transactions v2 only
LABELS = {
    "tuned": "aiokafka, worker's tuning",
    "as is": "aiokafka as is",
    "pair": "aiokafka, tuned, 2 producers in turn",
    "ahead": "the same, next one begun ahead",
    "sequence": "by hand, 5 in sequence",
    "overlap": "by hand, overlapped (4 in sequence)",
    "registered": "by hand, registered while idle (2)",
    "v2": "by hand, transactions v2 (2 in sequence)",
    "v2 sequence": "by hand, transactions v2 (3 in sequence)",
    "round trip": "one round trip (Metadata)",
}


REQUESTS = {"sequence": 5, "overlap": 5, "registered": 5, "v2": 3, "v2 sequence": 3}


def load() -> str:
    return " ".join(f"{figure:.2f}" for figure in os.getloadavg())


class Ways:
    """The ways a transaction is timed, each on its own topic, group and transactional id."""

    def __init__(self, bootstrap: str, *, v2: bool, idle: bool) -> None:
        self.bootstrap = bootstrap
        tag = uuid.uuid4().hex[:6]
        # Registering while idle is only a way when there is idle time to hide it in.
        hand = ("sequence", "overlap", *(("registered",) if idle else ()))
        hand = (*hand, *V2_WAYS) if v2 else hand
        ways = (*AIOKAFKA_WAYS, *hand)
        self.topics = {way: f"txn-{way.replace(' ', '-')}-{tag}" for way in ways}
        self.groups = {way: f"g-{topic}" for way, topic in self.topics.items()}
        self.offsets = dict.fromkeys(ways, 0)
        self.sent = {way: dict[str, int]() for way in AIOKAFKA_WAYS}
        self.producers: dict[str, AIOKafkaProducer] = {}
        self.hand = {
            way: (HandMadeV2 if way in V2_WAYS else HandMade)(
                bootstrap, self.topics[way], self.groups[way], f"x-{self.topics[way]}"
            )
            for way in hand
        }
        self.client = AIOKafkaClient(bootstrap_servers=bootstrap)

    async def start(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(topic, 1, 1) for topic in self.topics.values()])
        await admin.close()
        await self.client.bootstrap()
        settings = client_configs(self.bootstrap, ClientTimings(client_id="bench"))
        for way in (*AIOKAFKA_WAYS, *(f"{paired} b" for paired in PAIRED)):
            base = way.removesuffix(" b")
            producer = AIOKafkaProducer(
                **settings["transactional_producer"],
                transactional_id=f"x-{self.topics[base]}{'-b' if way != base else ''}",
            )
            if base == "ahead":
                early.install(producer)
            await producer.start()
            self.producers[way] = producer
            count_requests(producer, self.sent[base])
        for made in self.hand.values():
            await asyncio.wait_for(made.start(), 60)

    async def stop(self) -> None:
        for producer in self.producers.values():
            await producer.stop()
        for made in self.hand.values():
            await made.close()
        await self.client.close()

    async def once(self, way: str) -> None:
        if way == "round trip":
            return await round_trip(self.client, self.hand["overlap"].leader)
        self.offsets[way] += 1
        offset = self.offsets[way]
        if way == "sequence":
            return await self.hand[way].in_sequence(offset)
        if way == "overlap":
            return await self.hand[way].overlapped(offset)
        if way == "registered":
            return await self.hand[way].registered(offset)
        if way in V2_WAYS:
            hand = self.hand[way]
            assert isinstance(hand, HandMadeV2)
            if way == "v2":
                return await hand.two_round_trips(offset)
            return await hand.three_round_trips(offset)
        if way == "as is":
            txn_backoff.restore()
        else:
            txn_backoff.install()
        base = way
        if way in PAIRED and offset % 2:
            way = f"{way} b"
        producer = self.producers[way]
        topic = self.topics[base]
        return await with_aiokafka(
            producer, topic, self.groups[base], offset, ahead=base == "ahead"
        )


async def bench(bootstrap: str, rounds: int, block: int, gap_s: float, retry_s: float) -> None:
    probe = AIOKafkaClient(bootstrap_servers=bootstrap)
    await probe.bootstrap()
    without_v2 = await transactions_v2(probe)
    await probe.close()
    print(f"load average {load()} at the start")
    if without_v2:
        print(f"transactions v2: not on this broker ({without_v2}); not timed")
    ways = Ways(bootstrap, v2=without_v2 is None, idle=gap_s > 0)
    for made in ways.hand.values():
        made.retry_s = retry_s
    await ways.start()
    times = {way: list[float]() for way in LABELS if way in ways.offsets or way == "round trip"}
    warm = 20
    for way in times:  # connections, metadata, the first transaction's registration
        for _ in range(warm):
            if way == "registered":
                await ways.hand[way].register()
            await ways.once(way)
    for counts in ways.sent.values():
        counts.clear()
    for made in ways.hand.values():
        made.spent.clear()
        made.retries.clear()
    for _ in range(0, rounds, block):
        for way in times:
            for _ in range(block):
                if way == "registered":  # as soon as the last one ended, not timed
                    await ways.hand[way].register()
                if gap_s:  # idle: the last transaction's markers are written meanwhile
                    await asyncio.sleep(gap_s)
                started = time.perf_counter()
                await ways.once(way)
                times[way].append(time.perf_counter() - started)
    await ways.stop()
    after = f"each after {gap_s * 1000:.0f} ms idle" if gap_s else "back to back"
    print(
        f"one transaction = one record of {len(VALUE)} B + the consumed offset, {after}, "
        f"{bootstrap}:"
    )
    for way, spent in times.items():
        print(summary(LABELS[way], spent))
    print("  requests a transaction:")
    for way in AIOKAFKA_WAYS:
        counts = ways.sent[way]
        each = ", ".join(f"{name} {n / len(times[way]):.2f}" for name, n in counts.items())
        print(f"    {LABELS[way]}: {each}")
    for way, made in ways.hand.items():
        print(f"    {LABELS[way]}: {REQUESTS[way]} + retries {made.retries or 'none'}")
        if isinstance(made, HandMadeV2):  # the coordinator bumps the epoch at every end
            print(
                f"      new producer epochs adopted: {made.bumps} for {made.written} ends "
                f"(producer {made.producer_id}, epoch now {made.epoch})"
            )
    for way, made in ways.hand.items():
        if made.spent:
            each = "   ".join(
                f"{name} {statistics.median(t) * 1000:.2f}" for name, t in made.spent.items()
            )
            print(f"  each step, {LABELS[way]} (p50, retries included): {each} ms")
    print(f"load average {load()} at the end")
    expected = warm + rounds
    for way, topic in ways.topics.items():
        seen = await committed(bootstrap, topic)
        offset = await committed_offset(bootstrap, topic, ways.groups[way])
        last = ways.offsets[way]
        verdict = "ok" if seen == expected and offset == last else "LOST OR EXTRA"
        print(
            f"  check {way:<8} committed records {seen:,} of {expected:,}, "
            f"group offset {offset} (last written {last}): {verdict}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=300, help="transactions timed per way")
    parser.add_argument("--block", type=int, default=25, help="transactions per block")
    parser.add_argument("--brokers", type=int, default=1, help="nodes of the broker it starts")
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=0.0,
        help="idle time before each timed transaction (a decision arriving at an idle worker)",
    )
    parser.add_argument(
        "--retry-ms",
        type=float,
        default=RETRY_S * 1000,
        help="the hand-made ways' wait before sending a refused request again",
    )
    parser.add_argument(
        "--broker-setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of the broker it starts (e.g. add.partitions.to.txn.retry.backoff.ms=1)",
    )
    parser.add_argument(
        "--kafka-version",
        default=local_kafka.KAFKA_VERSION,
        help="Kafka release of the broker it starts (4.0+ adds the transactions v2 way)",
    )
    args = parser.parse_args()
    if args.block < 1 or args.rounds < args.block:
        parser.error("--block must be at least 1 and --rounds at least --block")
    if not 0 <= args.gap_ms <= 10_000 or not 0 <= args.retry_ms <= 1000:
        parser.error("--gap-ms must be between 0 and 10000, --retry-ms between 0 and 1000")
    args.rounds -= args.rounds % args.block
    try:
        settings = local_kafka.checked_settings(
            dict(setting.partition("=")[::2] for setting in args.broker_setting)
        )
    except local_kafka.LocalKafkaError as error:
        parser.error(f"--broker-setting takes KEY=VALUE: {error}")
    started = kafka(args.brokers, name="bench-txn", version=args.kafka_version, settings=settings)
    with started as (bootstrap, _):
        gap_s, retry_s = args.gap_ms / 1000, args.retry_ms / 1000
        asyncio.run(bench(bootstrap, args.rounds, args.block, gap_s, retry_s))


if __name__ == "__main__":
    main()
