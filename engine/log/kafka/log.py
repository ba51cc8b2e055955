"""The Kafka adapter of the event-log port: `KafkaLog`, one per process (I/O).

`publish` uses one shared idempotent producer (acks=all); `read` a consumer of its own per
call (read_committed, stops at the last stable offset unless it follows); group members
(`KafkaMember`) commit through per-partition transactional producers. A process reads its
own transactional writes (it waits for the markers before reading a partition it committed
to). Why each of these, and the aiokafka reports designed around: docs/kafka-internals.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, OffsetOutOfRangeError

from engine.errors import ConfigurationError, TransientLogError
from engine.log.kafka import admin, identity
from engine.log.kafka.clients import (
    REFUSED_ERRORS,
    TERMINAL_ERRORS,
    check_partition,
    close_quietly,
    drain,
    refused,
    send,
    start_or_close,
    to_record,
)
from engine.log.kafka.config import ClientTimings, client_configs
from engine.log.kafka.connection import Connection
from engine.log.kafka.member import KafkaMember
from engine.log.kafka.plan import Replication, plan
from engine.log.kafka.security import client_security
from engine.log.port import AssignmentListener, Outgoing, Position, Record, Topics
from engine.log.routing import PartitionMap
from engine.log.routing_log import record_partition_map

__all__ = ["KafkaLog"]

log = structlog.get_logger("engine.log.kafka")

_READ_POLL_MS = 500
_VISIBLE_BACKOFF_S = 0.002
_VISIBLE_BACKOFF_MAX_S = 0.05
_COUNT_TTL_S = 30.0
"""How long a partition count is trusted: `countersign topics repartition` may add some."""


class KafkaLog:
    """The event log on a Kafka cluster; one per process, shared by everything in it."""

    def __init__(
        self,
        bootstrap: str | Connection,
        *,
        client_id: str = "countersign",
        linger_ms: int = 0,
        max_batch_bytes: int = 16_384,
        fetch_max_wait_ms: int = 20,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 1_000,
        max_poll_interval_ms: int = 60_000,
        request_timeout_ms: int = 30_000,
        transaction_timeout_ms: int = 60_000,
        metadata_max_age_ms: int = 300_000,
        commit_timeout_s: float = 30.0,
        connect_timeout_s: float = 30.0,
        replication_factor: int | None = None,
        min_insync_replicas: int | None = None,
    ) -> None:
        """`bootstrap`: an address, or a `Connection` with TLS/SASL. `replication_factor` and
        `min_insync_replicas` apply to topics this log creates (default: RF = min(3, brokers),
        min ISR = RF - 1 when RF > 1)."""
        self._connection = Connection.of(bootstrap)
        self.bootstrap = self._connection.bootstrap
        self._replication = (replication_factor, min_insync_replicas)
        self._commit_timeout_s = commit_timeout_s
        self._connect_timeout_s = connect_timeout_s
        timings = ClientTimings(
            client_id=client_id,
            linger_ms=linger_ms,
            max_batch_bytes=max_batch_bytes,
            fetch_max_wait_ms=fetch_max_wait_ms,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            max_poll_interval_ms=max_poll_interval_ms,
            request_timeout_ms=request_timeout_ms,
            transaction_timeout_ms=transaction_timeout_ms,
            metadata_max_age_ms=metadata_max_age_ms,
        )
        self._configs = client_configs(
            self.bootstrap, timings, client_security(self._connection.security)
        )
        self._publisher: Any = None
        self._publisher_lock = asyncio.Lock()
        self._offsets: Any = None
        self._partition_counts: dict[str, tuple[int, float]] = {}
        """Partition count per topic, and when it was read (partitions may be added)."""
        self._members: set[KafkaMember] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._unconfirmed: dict[tuple[str, int], int] = {}
        """Last offset committed per partition by this process, not yet seen visible."""

    @property
    def connection(self) -> Connection:
        """Where and how this log connects (for the admin calls of the same deployment)."""
        return self._connection

    def effective_configs(self) -> dict[str, dict[str, object]]:
        """The settings each kind of client is created with (publisher, transactional
        producer, group consumer, reader), as passed to aiokafka."""
        return {role: dict(config) for role, config in self._configs.items()}

    async def start(self) -> None:
        try:
            await admin.wait_until_ready(self._connection, self._connect_timeout_s)
        except TimeoutError as error:
            raise TransientLogError(str(error)) from error
        offsets = AIOKafkaConsumer(**self._configs["reader"])
        await start_or_close(offsets, self._connect_timeout_s)
        self._offsets = offsets
        # The publisher starts at the first publish: a principal that may not write (a
        # projector, a reader) cannot init an idempotent producer.

    async def close(self) -> None:
        for member in list(self._members):
            await member.stop()
        async with self._publisher_lock:
            publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await close_quietly(publisher, "publisher")
        if self._offsets is not None:
            await close_quietly(self._offsets, "offsets_reader")
            self._offsets = None
        await drain(self._background)

    async def ensure_topics(self, topics: Topics, partitions: int) -> None:
        names = [*topics.all, topics.routing]
        counts = await self._call_admin(admin.partition_counts(self._connection, names))
        for name in (topics.commands, topics.runs):
            if name in counts and counts[name] != partitions:
                raise ConfigurationError(
                    f"topic {name} has {counts[name]} partitions, expected {partitions}: the "
                    "commands and runs topics must be co-partitioned (after `countersign topics "
                    f"repartition`, set COUNTERSIGN_PARTITIONS={counts[name]})"
                )
        missing = [name for name in names if name not in counts]
        if not missing:
            return
        replication = await self.replication()
        specs = [spec for spec in plan(topics, partitions, replication) if spec.name in missing]
        created = await self._call_admin(admin.apply(self._connection, specs))
        log.info("topics_created", topics=created, replication_factor=replication.factor)
        if topics.routing in created:  # the era the deployment starts in
            await record_partition_map(self, topics, PartitionMap.single(partitions))

    async def replication(self) -> Replication:
        """The replication of topics this log creates: as configured, else by cluster size."""
        factor, min_insync = self._replication
        brokers = 0 if factor else await self._call_admin(admin.broker_count(self._connection))
        return Replication.for_cluster(brokers, factor=factor, min_insync=min_insync)

    async def partition_count(self, topic: str) -> int:
        now = time.monotonic()
        count, read_at = self._partition_counts.get(topic, (0, 0.0))
        if not count or now - read_at > _COUNT_TTL_S:
            counts = await self._call_admin(admin.partition_counts(self._connection, [topic]))
            if topic not in counts:
                raise ConfigurationError(f"topic {topic} does not exist")
            count = counts[topic]
            self._partition_counts[topic] = (count, now)
        return count

    async def log_id(self, topic: str) -> str:
        """`kafka:<cluster id>:<topic id>`: a topic created again gets another one."""
        try:
            return str(await self._call_admin(identity.topic_identity(self._connection, topic)))
        except identity.UnknownTopicError as error:
            raise ConfigurationError(str(error)) from error

    async def _call_admin(self, call: Any) -> Any:
        try:
            return await call
        except admin.TopicPartitionMismatchError as error:
            raise ConfigurationError(str(error)) from error
        except admin.TopicCreationError as error:
            raise ConfigurationError(str(error)) from error
        except REFUSED_ERRORS as error:
            raise refused(error) from error
        except (KafkaError, OSError) as error:  # TimeoutError is an OSError
            raise TransientLogError(f"Kafka admin request failed: {error!r}") from error

    async def publish(self, records: Sequence[Outgoing]) -> list[Position]:
        if not records:
            return []
        producer = await self._ensure_publisher()
        try:
            known: dict[str, Any] = {}
            for out in records:
                await check_partition(producer, out, known)
            futures = [await send(producer, out) for out in records]
            metadata = await asyncio.gather(*futures)
        except ConfigurationError:
            raise
        except TERMINAL_ERRORS as error:
            raise ConfigurationError(f"Kafka refused a record: {error!r}") from error
        except REFUSED_ERRORS as error:
            raise refused(error) from error
        except (KafkaError, OSError) as error:
            await self._drop_publisher(producer)
            raise TransientLogError(f"publish failed, outcome unknown: {error!r}") from error
        return [Position(meta.topic, meta.partition, meta.offset) for meta in metadata]

    async def _ensure_publisher(self) -> Any:
        async with self._publisher_lock:
            if self._publisher is None:
                producer = AIOKafkaProducer(**self._configs["publisher"])
                await start_or_close(producer, self._connect_timeout_s)
                self._publisher = producer
            return self._publisher

    async def _drop_publisher(self, producer: Any) -> None:
        """#1017: a failed idempotent producer may be dead for good; use a new one next time."""
        async with self._publisher_lock:
            if self._publisher is producer:
                self._publisher = None
        log.warning("publisher_dropped")
        self._close_in_background(producer, "publisher")

    def _close_in_background(self, client: Any, role: str) -> None:
        task = asyncio.create_task(close_quietly(client, role))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _until_visible(self, positions: Sequence[Position]) -> None:
        """Wait until read_committed readers see `positions`: the broker writes a
        transaction's markers only after it acknowledged the commit, so without this a
        reader could miss records just committed (no read-your-writes).

        The commit is done by then: if visibility cannot be confirmed, that is logged,
        not raised (a caller retrying a "failed" commit would append twice)."""
        try:
            async with asyncio.timeout(self._commit_timeout_s):
                await self._poll_visible(positions)
        except (KafkaError, OSError) as error:  # TimeoutError is an OSError
            log.warning("commit_visibility_unconfirmed", error=repr(error))

    async def _poll_visible(self, positions: Sequence[Position]) -> None:
        waiting: dict[tuple[str, int], int] = {}
        for position in positions:
            key = (position.topic, position.partition)
            waiting[key] = max(waiting.get(key, -1), position.offset)
        backoff = _VISIBLE_BACKOFF_S
        while waiting:
            tps = [TopicPartition(topic, partition) for topic, partition in waiting]
            ends = await self._offsets.end_offsets(tps)
            waiting = {
                (tp.topic, tp.partition): waiting[(tp.topic, tp.partition)]
                for tp in tps
                if ends[tp] <= waiting[(tp.topic, tp.partition)]
            }
            if waiting:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _VISIBLE_BACKOFF_MAX_S)

    def _committed(self, positions: Sequence[Position]) -> None:
        """Remember what this process committed, so that its own next read sees it."""
        for position in positions:
            key = (position.topic, position.partition)
            self._unconfirmed[key] = max(self._unconfirmed.get(key, -1), position.offset)

    async def _confirm(self, topic: str, partition: int) -> None:
        """Read-your-writes: before reading a partition this process committed to, wait
        until those records are visible (transaction markers are written after the commit
        is acknowledged). Paid by the next reader, not by every commit."""
        offset = self._unconfirmed.pop((topic, partition), None)
        if offset is not None:
            await self._until_visible([Position(topic, partition, offset)])

    async def end_offset(self, topic: str, partition: int) -> int:
        await self._confirm(topic, partition)
        tp = TopicPartition(topic, partition)
        try:
            ends = await self._offsets.end_offsets([tp])
        except (KafkaError, OSError) as error:
            raise TransientLogError(f"end offset of {topic}[{partition}]: {error!r}") from error
        return int(ends[tp])

    async def read(
        self, topic: str, partition: int, start: int, *, follow: bool = False
    ) -> AsyncIterator[Record]:
        await self._confirm(topic, partition)
        end = None if follow else await self.end_offset(topic, partition)
        if end is not None and start >= end:
            return
        tp = TopicPartition(topic, partition)
        consumer = AIOKafkaConsumer(**self._configs["reader"])
        await start_or_close(consumer, self._connect_timeout_s)
        try:
            consumer.assign([tp])
            consumer.seek(tp, start)
            while end is None or await consumer.position(tp) < end:
                batches = await consumer.getmany(tp, timeout_ms=_READ_POLL_MS)
                for message in batches.get(tp, ()):
                    if end is not None and message.offset >= end:
                        return
                    yield to_record(message)
        except OffsetOutOfRangeError as error:
            raise ConfigurationError(f"offset {start} is outside {topic}[{partition}]") from error
        except REFUSED_ERRORS as error:
            raise refused(error) from error
        except (KafkaError, OSError) as error:
            raise TransientLogError(f"reading {topic}[{partition}] failed: {error!r}") from error
        finally:
            await close_quietly(consumer, "reader")

    def member(self, group: str, topic: str, listener: AssignmentListener) -> KafkaMember:
        member = KafkaMember(self, group, topic, listener)
        self._members.add(member)
        return member

    # For KafkaMember.
    def _config(self, role: str) -> dict[str, Any]:
        return dict(self._configs[role])

    @property
    def _timeouts(self) -> tuple[float, float]:
        return self._commit_timeout_s, self._connect_timeout_s

    def _forget(self, member: KafkaMember) -> None:
        self._members.discard(member)
