"""The Kafka adapter of the event-log port (aiokafka); aiokafka's objects never leave this module.

Every client setting is explicit (aiokafka's defaults are the weak ones) and
`KafkaLog.effective_configs()` shows them: producers are idempotent with `acks=all`; consumers
read committed records only (`read_committed`), never auto-commit, and a group with no
committed position starts at the earliest record.

- `publish` uses one shared idempotent, non-transactional producer; the partition is the
  explicit one or murmur2 of the key (aiokafka's default partitioner, equal to `partition_for`).
- `read` uses a consumer of its own (no group), assigned to one partition; without `follow` it
  stops at the last stable offset as of the call. Transaction markers and aborted records
  occupy offsets, so "done" means the position reached that offset, not that a record with
  offset end-1 arrived. A start outside the partition's range is an error, not a silent jump.
- `KafkaMember` is a group consumer plus ONE transactional producer per assigned partition,
  `transactional.id = "<group>.<topic>.<partition>"`: aiokafka has no KIP-447, so per-partition
  ids are what fences a zombie (the new owner's InitProducerId bumps the epoch).
- Read-your-writes within a process: the broker writes a transaction's markers after it
  acknowledged the commit, so a `read` or `end_offset` of a partition this process committed
  to first waits until those records are visible. The commit itself does not wait (the
  worker's hot path never reads back what it wrote); readers in other processes see the
  records moments later, as with any Kafka consumer. Offsets of transactional writes are not
  contiguous (markers and aborted records take offsets too); only non-transactional
  appends are.

Producers are created EAGERLY on assignment, before the listener hears of it and before the
group position is read: a zombie is fenced at once on takeover, its open transaction is
aborted or completed by then, so the committed position we read (and seek to) is final.
A transactional producer is never re-created outside an assignment: a zombie that did so
would fence the rightful owner and write under the newest epoch. So when a producer breaks,
the member drops it and rejoins the group; the next assignment brings a fresh producer, and
commits on that partition raise `TransientLogError` meanwhile.

Kafka rebalances are eager: every rebalance revokes all of a member's partitions and then
assigns the new set. The listener hears exactly that, so no two members ever hold one
partition (all revocations finish before any assignment). `on_revoked` runs inside the
rebalance (keep it quick); `on_assigned` runs from the next `poll`, while the new partitions
stay paused: aiokafka calls its assignment callback before it resumes heartbeats, so a long
`on_assigned` there (a replay) would get the member evicted. Exceptions raised by
`on_revoked` are re-raised from the next `poll` (aiokafka would only log them).

Errors of `commit` (see `engine.errors`):
- `Fenced`: the broker fenced the producer (ProducerFenced, InvalidProducerEpoch,
  InvalidProducerIdMapping, InvalidTxnState), or the partition is not assigned to us.
- `ConfigurationError`: a record names a partition the topic does not have, or is too large;
  the transaction is aborted and the producer kept.
- `TransientLogError`: anything else (connection, timeout, a broken producer); the
  transaction is aborted where that is safe, otherwise the producer is dropped.
Known aiokafka reports designed around:
- #1098 (KeyError in the sender after repeated `send_offsets_to_transaction`): one
  transaction at a time per producer (a lock per partition), at most one offsets call per
  transaction, sent and awaited BEFORE the records (the ordering that avoids the related
  race of #1004), with a fresh dict each time; if the sender still dies, its error is a
  KafkaError, the producer is dropped and the member rejoins.
- #1017 (OutOfOrderSequenceNumber after a broker restart leaves an idempotent producer
  dead): any failure of the shared publisher drops it and the next `publish` creates a new
  one; a transactional producer that fails this way is replaced through a rejoin as above.
- Abort is attempted only while the transaction is still being filled and the commit did
  not time out: aborting after a timeout or during commit hits assertions in aiokafka's
  transaction manager (pending offsets, invalid state transition), so there the producer
  is dropped instead; the next InitProducerId for the id aborts whatever it left open.
Two aiokafka internals are touched, both here only: `consumer._coordinator.request_rejoin()`
(see `KafkaMember._rejoin`) and a producer's `_txn_manager._transaction_waiter` (to mark a
fenced producer's error as seen, see `_close_quietly`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    InvalidTxnState,
    KafkaError,
    MessageSizeTooLargeError,
    OffsetOutOfRangeError,
    ProducerFenced,
    RecordTooLargeError,
)

from engine.errors import ConfigurationError, Fenced, LogError, TransientLogError
from engine.log import kafka_admin
from engine.log.port import AssignmentListener, Outgoing, Position, Record, Topics

__all__ = ["KafkaLog", "KafkaMember"]

log = structlog.get_logger(__name__)

_FENCING_ERRORS = (ProducerFenced, InvalidProducerEpoch, InvalidProducerIdMapping, InvalidTxnState)
_TERMINAL_ERRORS = (RecordTooLargeError, MessageSizeTooLargeError)
_CLOSE_TIMEOUT_S = 5.0
_READ_POLL_MS = 500
_POLL_GRACE_S = 0.5
_VISIBLE_BACKOFF_S = 0.002
_VISIBLE_BACKOFF_MAX_S = 0.05


class KafkaLog:
    """The event log on a Kafka cluster; one per process, shared by everything in it."""

    def __init__(
        self,
        bootstrap: str,
        *,
        client_id: str = "countersign",
        linger_ms: int = 2,
        max_batch_bytes: int = 16_384,
        fetch_max_wait_ms: int = 20,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 1_000,
        max_poll_interval_ms: int = 60_000,
        request_timeout_ms: int = 30_000,
        transaction_timeout_ms: int = 60_000,
        commit_timeout_s: float = 30.0,
        connect_timeout_s: float = 30.0,
    ) -> None:
        self.bootstrap = bootstrap
        self._commit_timeout_s = commit_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._configs = _client_configs(
            bootstrap,
            client_id=client_id,
            linger_ms=linger_ms,
            max_batch_bytes=max_batch_bytes,
            fetch_max_wait_ms=fetch_max_wait_ms,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            max_poll_interval_ms=max_poll_interval_ms,
            request_timeout_ms=request_timeout_ms,
            transaction_timeout_ms=transaction_timeout_ms,
        )
        self._publisher: Any = None
        self._publisher_lock = asyncio.Lock()
        self._offsets: Any = None
        self._partition_counts: dict[str, int] = {}
        self._members: set[KafkaMember] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._unconfirmed: dict[tuple[str, int], int] = {}
        """Last offset committed per partition by this process, not yet seen visible."""

    def effective_configs(self) -> dict[str, dict[str, object]]:
        """The settings each kind of client is created with (publisher, transactional
        producer, group consumer, reader), as passed to aiokafka."""
        return {role: dict(config) for role, config in self._configs.items()}

    async def start(self) -> None:
        try:
            await kafka_admin.wait_until_ready(self.bootstrap, self._connect_timeout_s)
        except TimeoutError as error:
            raise TransientLogError(str(error)) from error
        offsets = AIOKafkaConsumer(**self._configs["reader"])
        await _start_or_close(offsets, self._connect_timeout_s)
        self._offsets = offsets
        await self._ensure_publisher()

    async def close(self) -> None:
        for member in list(self._members):
            await member.stop()
        async with self._publisher_lock:
            publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await _close_quietly(publisher, "publisher")
        if self._offsets is not None:
            await _close_quietly(self._offsets, "offsets_reader")
            self._offsets = None
        await _drain(self._background)

    async def ensure_topics(self, topics: Topics, partitions: int) -> None:
        counts = await self._call_admin(kafka_admin.partition_counts(self.bootstrap, topics.all))
        for name in (topics.commands, topics.runs):
            if name in counts and counts[name] != partitions:
                raise ConfigurationError(
                    f"topic {name} has {counts[name]} partitions, expected {partitions}: "
                    "the commands and runs topics must be co-partitioned"
                )
        missing = [name for name in topics.all if name not in counts]
        for names, config in _topic_configs(topics):
            wanted = {name: partitions for name in missing if name in names}
            if wanted:
                await self._call_admin(
                    kafka_admin.ensure_topics(self.bootstrap, wanted, config=config)
                )
        self._partition_counts.update({name: partitions for name in missing})

    async def partition_count(self, topic: str) -> int:
        count = self._partition_counts.get(topic)
        if count is None:
            counts = await self._call_admin(kafka_admin.partition_counts(self.bootstrap, [topic]))
            if topic not in counts:
                raise ConfigurationError(f"topic {topic} does not exist")
            count = self._partition_counts[topic] = counts[topic]
        return count

    async def log_id(self, topic: str) -> str:
        """`kafka:<cluster id>:<topic id>`: a topic created again gets another one."""
        try:
            return str(await self._call_admin(kafka_admin.topic_identity(self.bootstrap, topic)))
        except kafka_admin.UnknownTopicError as error:
            raise ConfigurationError(str(error)) from error

    async def _call_admin(self, call: Any) -> Any:
        try:
            return await call
        except kafka_admin.TopicPartitionMismatchError as error:
            raise ConfigurationError(str(error)) from error
        except kafka_admin.TopicCreationError as error:
            raise ConfigurationError(str(error)) from error
        except (KafkaError, OSError) as error:  # TimeoutError is an OSError
            raise TransientLogError(f"Kafka admin request failed: {error!r}") from error

    async def publish(self, records: Sequence[Outgoing]) -> list[Position]:
        if not records:
            return []
        producer = await self._ensure_publisher()
        try:
            known: dict[str, Any] = {}
            for out in records:
                await _check_partition(producer, out, known)
            futures = [await _send(producer, out) for out in records]
            metadata = await asyncio.gather(*futures)
        except ConfigurationError:
            raise
        except _TERMINAL_ERRORS as error:
            raise ConfigurationError(f"Kafka refused a record: {error!r}") from error
        except (KafkaError, OSError) as error:
            await self._drop_publisher(producer)
            raise TransientLogError(f"publish failed, outcome unknown: {error!r}") from error
        return [Position(meta.topic, meta.partition, meta.offset) for meta in metadata]

    async def _ensure_publisher(self) -> Any:
        async with self._publisher_lock:
            if self._publisher is None:
                producer = AIOKafkaProducer(**self._configs["publisher"])
                await _start_or_close(producer, self._connect_timeout_s)
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
        task = asyncio.create_task(_close_quietly(client, role))
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
        await _start_or_close(consumer, self._connect_timeout_s)
        try:
            consumer.assign([tp])
            consumer.seek(tp, start)
            while end is None or await consumer.position(tp) < end:
                batches = await consumer.getmany(tp, timeout_ms=_READ_POLL_MS)
                for message in batches.get(tp, ()):
                    if end is not None and message.offset >= end:
                        return
                    yield _to_record(message)
        except OffsetOutOfRangeError as error:
            raise ConfigurationError(f"offset {start} is outside {topic}[{partition}]") from error
        except (KafkaError, OSError) as error:
            raise TransientLogError(f"reading {topic}[{partition}] failed: {error!r}") from error
        finally:
            await _close_quietly(consumer, "reader")

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


class KafkaMember:
    """One member of a consumer group over one topic, with a transactional producer per
    assigned partition (created eagerly on assignment; see the module docstring)."""

    def __init__(
        self, kafka: KafkaLog, group: str, topic: str, listener: AssignmentListener
    ) -> None:
        self._kafka = kafka
        self._group = group
        self._topic = topic
        self._listener = listener
        self._consumer: Any = None
        self._bridge = _RebalanceBridge(self)
        self._assigned: frozenset[int] = frozenset()
        self._pending: frozenset[int] = frozenset()  # assigned, listener not told yet
        self._producers: dict[int, Any] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._fenced: set[int] = set()
        self._failure: BaseException | None = None
        self._rebalancing = asyncio.Lock()
        self._rejoining = False
        self._log = log.bind(group=group, topic=topic)

    @property
    def assigned(self) -> frozenset[int]:
        return self._assigned

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(**self._kafka._config("group_consumer"), group_id=self._group)
        await _start_or_close(consumer, self._kafka._timeouts[1])
        consumer.subscribe([self._topic], listener=self._bridge)
        self._consumer = consumer

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        await self._revoke()  # aiokafka does not call the listener on stop
        await _close_quietly(consumer, "group_consumer")
        self._kafka._forget(self)

    async def poll(self, timeout_s: float, max_records: int = 500) -> list[Record]:
        self._raise_failure()
        if self._consumer is None:
            raise LogError("poll on a member that is not started")
        await self._deliver_assignment()
        # getmany may wait past its timeout for a rebalance to finish: bound it, in a task of
        # its own so that a batch drained just as the bound expires is returned, not lost.
        fetch = asyncio.create_task(
            self._consumer.getmany(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        )
        try:
            done, _ = await asyncio.wait({fetch}, timeout=timeout_s + _POLL_GRACE_S)
        finally:
            if not fetch.done():
                fetch.cancel()
        if fetch not in done:  # still waiting for an assignment
            await asyncio.wait({fetch})
            self._raise_failure()
            return []
        try:
            batches = fetch.result()
        except KafkaError as error:
            raise TransientLogError(f"poll failed: {error!r}") from error
        self._raise_failure()
        return [
            _to_record(message)
            for tp in sorted(batches, key=lambda tp: tp.partition)
            for message in batches[tp]
        ]

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    async def seek(self, partition: int, offset: int) -> None:
        if self._consumer is None or partition not in self._assigned:
            self._log.debug("seek_ignored_not_assigned", partition=partition)
            return
        self._consumer.seek(TopicPartition(self._topic, partition), offset)

    async def commit(
        self, partition: int, records: Sequence[Outgoing], consumed: int | None
    ) -> list[Position]:
        async with self._lock(partition):
            producer = self._producer_for(partition)
            if not records and consumed is None:
                return []
            where = f"{self._topic}[{partition}]"
            phase = _Phase()
            try:
                async with asyncio.timeout(self._kafka._timeouts[0]):
                    positions = await self._transaction(
                        producer, partition, records, consumed, phase
                    )
            except _FENCING_ERRORS as error:
                self._fence(partition, producer)
                raise Fenced(f"{where} is owned by another member") from error
            except (ConfigurationError, *_TERMINAL_ERRORS) as error:
                await self._abort_or_drop(partition, producer, phase)
                if isinstance(error, ConfigurationError):
                    raise
                raise ConfigurationError(f"Kafka refused a record: {error!r}") from error
            except TimeoutError as error:
                self._drop(partition, producer, "commit_timed_out")
                raise TransientLogError(f"commit on {where} timed out") from error
            except (KafkaError, OSError) as error:
                await self._abort_or_drop(partition, producer, phase)
                raise TransientLogError(f"commit on {where} failed: {error!r}") from error
            except BaseException:  # cancelled, or a bug in the client: its state is unknown
                self._drop(partition, producer, "commit_interrupted")
                raise
        self._kafka._committed(positions)
        return positions

    async def _transaction(
        self,
        producer: Any,
        partition: int,
        records: Sequence[Outgoing],
        consumed: int | None,
        phase: _Phase,
    ) -> list[Position]:
        await producer.begin_transaction()
        if consumed is not None:  # first, and awaited: see #1098 / #1004 above
            tp = TopicPartition(self._topic, partition)
            await producer.send_offsets_to_transaction({tp: consumed}, self._group)
        futures: list[Any] = []
        known: dict[str, Any] = {}
        for out in records:  # a bad record aborts the ones sent before it
            await _check_partition(producer, out, known)
            futures.append(await _send(producer, out))
        phase.committing = True
        await producer.commit_transaction()
        metadata = await asyncio.gather(*futures)
        return [Position(meta.topic, meta.partition, meta.offset) for meta in metadata]

    def _lock(self, partition: int) -> asyncio.Lock:
        return self._locks.setdefault(partition, asyncio.Lock())

    def _producer_for(self, partition: int) -> Any:
        if partition in self._fenced or partition not in self._assigned:
            raise Fenced(f"{self._topic}[{partition}] is not assigned to this member")
        producer = self._producers.get(partition)
        if producer is None:
            self._rejoin()
            raise TransientLogError(
                f"no producer for {self._topic}[{partition}]; rejoining the group for a new one"
            )
        return producer

    def _fence(self, partition: int, producer: Any) -> None:
        self._log.warning("producer_fenced", partition=partition)
        self._fenced.add(partition)
        if self._producers.get(partition) is producer:
            del self._producers[partition]
        self._kafka._close_in_background(producer, "transactional_producer")

    async def _abort_or_drop(self, partition: int, producer: Any, phase: _Phase) -> None:
        if not phase.committing:
            try:
                async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                    await producer.abort_transaction()
                return
            except Exception as error:  # the producer is broken; replaced below
                self._log.warning("abort_failed", partition=partition, error=repr(error))
        self._drop(partition, producer, "transaction_state_unknown")

    def _drop(self, partition: int, producer: Any, reason: str) -> None:
        """Forget a producer in an unknown state and rejoin to get a new one (never re-create
        it here: if this member were a zombie, that would fence the rightful owner)."""
        self._log.warning("producer_dropped", partition=partition, reason=reason)
        if self._producers.get(partition) is producer:
            del self._producers[partition]
        self._kafka._close_in_background(producer, "transactional_producer")
        self._rejoin()

    def _rejoin(self) -> None:
        """Rejoin the group: revocation, then a new assignment with fresh producers.

        Through the coordinator, not by subscribing again: a new subscription swapped in
        while aiokafka's coordination routine awaits the coordinator (a broker restart)
        kills that routine with an AssertionError, and the consumer with it.
        """
        if self._consumer is not None and not self._rejoining:
            self._rejoining = True
            self._log.info("group_rejoin_requested")
            self._consumer._coordinator.request_rejoin()

    # Rebalance callbacks (through _RebalanceBridge) and their delivery to the listener.
    async def _revoke(self) -> None:
        async with self._rebalancing:
            lost, undelivered = self._assigned, self._pending
            self._pending = frozenset()
            if lost:
                self._log.info("partitions_revoked", partitions=sorted(lost))
                try:
                    await self._listener.on_revoked(lost)
                except Exception as error:  # aiokafka would only log it: re-raised by poll
                    self._failure = error
            self._assigned = frozenset()
            for partition in lost | undelivered:
                async with self._lock(partition):  # let a commit in flight finish
                    producer = self._producers.pop(partition, None)
                if producer is not None:
                    await _close_quietly(producer, "transactional_producer")

    async def _assign(self, partitions: frozenset[int]) -> None:
        """The part of an assignment that cannot wait: fence, then position. The partitions
        stay paused until `poll` has told the listener."""
        consumer = self._consumer
        if consumer is None:
            return
        async with self._rebalancing:
            self._log.info("partitions_assigned", partitions=sorted(partitions))
            consumer.pause(*self._tps(partitions))
            try:
                await asyncio.gather(*(self._start_producer(p) for p in partitions))
                await self._seek_committed(consumer, partitions)
            except Exception as error:  # a bug: re-raised by poll; commits will rejoin
                self._failure = error
            self._fenced -= partitions
            self._rejoining = False
            self._pending = partitions

    async def _deliver_assignment(self) -> None:
        """Tell the listener of its new partitions, from `poll`: aiokafka runs its assignment
        callback before it resumes heartbeats, so a long `on_assigned` there (a replay)
        would get the member evicted from the group."""
        async with self._rebalancing:
            gained, self._pending = self._pending, frozenset()
            consumer = self._consumer
            if not gained or consumer is None:
                return
            self._assigned = gained
            try:
                starts = await self._listener.on_assigned(gained)
                for partition in gained & starts.keys():
                    consumer.seek(TopicPartition(self._topic, partition), starts[partition])
            finally:
                consumer.resume(*self._tps(gained))

    def _tps(self, partitions: Iterable[int]) -> list[Any]:
        return [TopicPartition(self._topic, partition) for partition in sorted(partitions)]

    async def _start_producer(self, partition: int) -> None:
        stale = self._producers.pop(partition, None)
        if stale is not None:
            await _close_quietly(stale, "transactional_producer")
        config = self._kafka._config("transactional_producer")
        config["client_id"] = f"{config['client_id']}-{partition}"
        producer = AIOKafkaProducer(
            **config, transactional_id=f"{self._group}.{self._topic}.{partition}"
        )
        try:
            await _start_or_close(producer, self._kafka._timeouts[1])
        except LogError as error:  # commit on this partition will rejoin for another try
            self._log.warning("producer_start_failed", partition=partition, error=str(error))
            return
        self._producers[partition] = producer

    async def _seek_committed(self, consumer: Any, partitions: frozenset[int]) -> None:
        """Seek to the group position as read now, after our producers fenced any zombie:
        no late commit of one can slip past the position we start from (aiokafka fetched
        its own copy before)."""
        ordered = sorted(partitions)
        committed = await asyncio.gather(
            *(consumer.committed(TopicPartition(self._topic, p)) for p in ordered)
        )
        for partition, offset in zip(ordered, committed, strict=True):
            if offset is not None:  # else auto_offset_reset: the earliest record
                consumer.seek(TopicPartition(self._topic, partition), offset)


@dataclass(slots=True)
class _Phase:
    """How far a transaction got: abort is safe only before its commit was requested."""

    committing: bool = False


class _RebalanceBridge(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """aiokafka's listener interface, forwarded to the member (aiokafka awaits coroutines)."""

    def __init__(self, member: KafkaMember) -> None:
        self._member = member

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._member._revoke()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        topic = self._member._topic
        await self._member._assign(frozenset(tp.partition for tp in assigned if tp.topic == topic))


def _topic_configs(topics: Topics) -> list[tuple[frozenset[str], dict[str, str]]]:
    """Topic settings by kind. The runs topic is the source of truth: it never expires; nor
    does the run index.
    Checkpoints keep only the newest record per key (partition); short segments let the
    cleaner drop the old ones soon (it never cleans the active segment)."""
    special = {topics.runs, topics.checkpoints, topics.index, topics.agents}
    return [
        (frozenset({topics.runs}), {"retention.ms": "-1"}),
        # One record per run ever started (or agent version served), never expired: compaction
        # keeps every key's newest record.
        (frozenset({topics.index, topics.agents}), {"cleanup.policy": "compact"}),
        (
            frozenset({topics.checkpoints}),
            {
                "cleanup.policy": "compact",
                "segment.ms": str(15 * 60 * 1000),
                "min.cleanable.dirty.ratio": "0.5",
            },
        ),
        (frozenset(topics.all) - special, {}),
    ]


def _client_configs(
    bootstrap: str,
    *,
    client_id: str,
    linger_ms: int,
    max_batch_bytes: int,
    fetch_max_wait_ms: int,
    session_timeout_ms: int,
    heartbeat_interval_ms: int,
    max_poll_interval_ms: int,
    request_timeout_ms: int,
    transaction_timeout_ms: int,
) -> dict[str, dict[str, Any]]:
    common: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "request_timeout_ms": request_timeout_ms,
        "retry_backoff_ms": 100,
        "metadata_max_age_ms": 300_000,
        "connections_max_idle_ms": 540_000,
        "security_protocol": "PLAINTEXT",
    }
    publisher = {
        **common,
        "client_id": f"{client_id}-publisher",
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": linger_ms,
        "max_batch_size": max_batch_bytes,
        "max_request_size": 1_048_576,
        # A transaction's batch holds several events of one run (ids, agent, hashes repeat):
        # lz4 (through cramjam) shrinks the log for little CPU.
        "compression_type": "lz4",
    }
    transactional = {
        **publisher,
        "client_id": f"{client_id}-txn",
        "transaction_timeout_ms": transaction_timeout_ms,
        # A commit is one explicit batch: lingering only delays it. The next transaction's
        # AddPartitionsToTxn meets CONCURRENT_TRANSACTIONS while the previous markers are
        # written; retry it soon (the Java client backs off 20 ms there), not after 100 ms.
        "linger_ms": 0,
        "retry_backoff_ms": 10,
    }
    consumer = {
        **common,
        "isolation_level": "read_committed",
        "enable_auto_commit": False,
        "fetch_max_wait_ms": fetch_max_wait_ms,
        "fetch_min_bytes": 1,
        "fetch_max_bytes": 52_428_800,
        "max_partition_fetch_bytes": 1_048_576,
        "consumer_timeout_ms": 100,
        "check_crcs": True,
        "exclude_internal_topics": True,
    }
    group_consumer = {
        **consumer,
        "client_id": f"{client_id}-member",
        "auto_offset_reset": "earliest",
        "session_timeout_ms": session_timeout_ms,
        "heartbeat_interval_ms": heartbeat_interval_ms,
        "max_poll_interval_ms": max_poll_interval_ms,
        "rebalance_timeout_ms": max_poll_interval_ms,
        "partition_assignment_strategy": (RoundRobinPartitionAssignor,),
    }
    # Readers start where they are told; a start outside the log is an error, not a jump.
    reader = {**consumer, "client_id": f"{client_id}-reader", "auto_offset_reset": "none"}
    return {
        "publisher": publisher,
        "transactional_producer": transactional,
        "group_consumer": group_consumer,
        "reader": reader,
    }


async def _start_or_close(client: Any, timeout_s: float) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            await client.start()
    except (KafkaError, OSError) as error:
        await _close_quietly(client, type(client).__name__)
        raise TransientLogError(f"could not connect to Kafka: {error!r}") from error


async def _close_quietly(client: Any, role: str) -> None:
    """Close a client on the way out; a failure to close is logged, never raised."""
    # A fenced or broken producer keeps its error in a future nobody awaits; mark it seen,
    # or asyncio logs "Future exception was never retrieved" with the whole traceback.
    waiter = getattr(getattr(client, "_txn_manager", None), "_transaction_waiter", None)
    if isinstance(waiter, asyncio.Future) and waiter.done() and not waiter.cancelled():
        waiter.exception()
    try:
        async with asyncio.timeout(_CLOSE_TIMEOUT_S):
            await client.stop()
    except Exception as error:
        log.warning("kafka_client_close_failed", role=role, error=repr(error))


async def _drain(tasks: Iterable[asyncio.Task[None]]) -> None:
    pending = list(tasks)
    if pending:
        with contextlib.suppress(Exception):
            await asyncio.gather(*pending, return_exceptions=True)


async def _check_partition(producer: Any, out: Outgoing, known: dict[str, Any]) -> None:
    """Refuse a record for a partition its topic does not have (aiokafka only asserts)."""
    if out.partition is None:
        return
    if out.topic not in known:
        known[out.topic] = await producer.partitions_for(out.topic)
    if out.partition not in known[out.topic]:
        raise ConfigurationError(f"topic {out.topic} has no partition {out.partition}")


async def _send(producer: Any, out: Outgoing) -> Any:
    return await producer.send(
        out.topic,
        value=out.value,
        key=out.key.encode(),
        partition=out.partition,
        headers=list(out.headers),
    )


def _to_record(message: Any) -> Record:
    key: bytes | None = message.key
    return Record(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        # A key that is not UTF-8 must not stop the pipeline: the record still arrives.
        key=None if key is None else key.decode("utf-8", errors="replace"),
        value=message.value if message.value is not None else b"",
        timestamp_ms=message.timestamp,
        headers=tuple((name, value) for name, value in message.headers),
    )
