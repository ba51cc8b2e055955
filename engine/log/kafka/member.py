"""A consumer-group member with two transactional producers per assigned partition (I/O).

aiokafka has no KIP-447, so the transactional ids are per partition ("<group>.<topic>.<n>"
and "<group>.<topic>.<n>.b"): the new owner's InitProducerId fences a zombie. The two take
turns, so a commit never begins while its producer's last transaction still has markers to
write (the coordinator refuses that, and the refusal costs a retry). Once a partition is
quiet, both begin their next transactions ahead and register what it wrote lately
(early.py). Producers are created eagerly on assignment, both or neither, before the group
position is read, and never re-created outside one (a zombie doing so would fence the
rightful owner): a broken producer is dropped with its twin and the member rejoins.
Rebalances are eager; the listener hears `on_assigned` from `poll`, not from aiokafka's
callback, so a long restore does not stop heartbeats. docs/kafka-internals.md has the whole
argument and the aiokafka reports (#1098, #1004, #1017) this is shaped around.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalOperation, KafkaError

from engine.errors import ConfigurationError, Fenced, LogError, TransientLogError
from engine.log.kafka import early, txn_backoff
from engine.log.kafka.clients import (
    CLOSE_TIMEOUT_S,
    FENCING_ERRORS,
    REFUSED_ERRORS,
    TERMINAL_ERRORS,
    check_partition,
    close_quietly,
    refused,
    send,
    start_or_close,
    to_record,
    transaction_error,
)
from engine.log.port import AssignmentListener, Outgoing, Position, Record

if TYPE_CHECKING:
    from engine.log.kafka.log import KafkaLog

__all__ = ["KafkaMember"]

log = structlog.get_logger("engine.log.kafka")

_POLL_GRACE_S = 0.5
_QUIET_S = 0.02
"""How long a partition has had no commit before its producers begin their next
transactions ahead."""
_KEPT_READY_S = 300.0
"""How long after a partition's last commit its producers keep their next transactions begun
ahead (renewing them): each renewal writes an abort marker to the partitions registered."""

txn_backoff.install()  # a transaction refused while the last one ends is asked again soon


class KafkaMember:
    """One member of a consumer group over one topic, with two transactional producers per
    assigned partition that take turns (created eagerly on assignment; see the module
    docstring)."""

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
        self._producers: dict[int, _Pair] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._fenced: set[int] = set()
        self._failure: BaseException | None = None
        self._rebalancing = asyncio.Lock()
        self._rejoining = False
        self._renewal: asyncio.Task[None] | None = None
        self._quiet: dict[int, asyncio.TimerHandle] = {}
        timeout_ms = kafka._config("transactional_producer")["transaction_timeout_ms"]
        self._renew_after_s = timeout_ms / 4000  # well before the coordinator's own timeout
        session_ms = kafka._config("group_consumer")["session_timeout_ms"]
        self._lookup_s = session_ms / 2000  # heartbeats wait for the assignment callback
        self._log = log.bind(group=group, topic=topic)

    @property
    def assigned(self) -> frozenset[int]:
        return self._assigned

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(**self._kafka._config("group_consumer"), group_id=self._group)
        await start_or_close(consumer, self._kafka._timeouts[1])
        consumer.subscribe([self._topic], listener=self._bridge)
        self._consumer = consumer
        self._renewal = asyncio.create_task(self._keep_renewed())

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        for armed in self._quiet.values():
            armed.cancel()
        self._quiet.clear()
        renewal, self._renewal = self._renewal, None
        if renewal is not None:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
        await self._revoke()  # aiokafka does not call the listener on stop
        await close_quietly(consumer, "group_consumer")
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
            to_record(message)
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
            pair = self._producer_for(partition)
            if not records and consumed is None:
                return []
            producer = pair.take()
            where = f"{self._topic}[{partition}]"
            phase = _Phase()
            try:
                async with asyncio.timeout(self._kafka._timeouts[0]):
                    positions = await self._transaction(
                        producer, partition, records, consumed, phase
                    )
            except FENCING_ERRORS as error:
                self._fence(partition, producer)
                raise Fenced(f"{where} is owned by another member") from error
            except (ConfigurationError, *TERMINAL_ERRORS, *REFUSED_ERRORS) as error:
                await self._abort_or_drop(partition, producer, phase)
                if isinstance(error, ConfigurationError):
                    raise
                if isinstance(error, REFUSED_ERRORS):
                    raise refused(error) from error
                raise ConfigurationError(f"Kafka refused a record: {error!r}") from error
            except TimeoutError as error:
                self._drop(partition, producer, "commit_timed_out")
                raise TransientLogError(f"commit on {where} timed out") from error
            except (IllegalOperation, AssertionError) as error:
                # The sender ended the transaction while we filled it (aiokafka then refuses
                # the next send, or asserts): its own error says whether we were fenced.
                cause = transaction_error(producer)
                if isinstance(cause, FENCING_ERRORS):
                    self._fence(partition, producer)
                    raise Fenced(f"{where} is owned by another member") from cause
                self._drop(partition, producer, "transaction_ended_in_background")
                raise TransientLogError(f"commit on {where} failed: {cause or error!r}") from error
            except (KafkaError, OSError) as error:
                await self._abort_or_drop(partition, producer, phase)
                raise TransientLogError(f"commit on {where} failed: {error!r}") from error
            except BaseException:  # cancelled, or a bug in the client: its state is unknown
                self._drop(partition, producer, "commit_interrupted")
                raise
            pair.wrote(positions)
            self._when_quiet(partition)
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
        if not early.begun(producer):
            await producer.begin_transaction()
        if consumed is not None:  # first, and awaited: see #1098 / #1004 above
            tp = TopicPartition(self._topic, partition)
            await producer.send_offsets_to_transaction({tp: consumed}, self._group)
        futures: list[Any] = []
        known: dict[str, Any] = {}
        for out in records:  # a bad record aborts the ones sent before it
            await check_partition(producer, out, known)
            futures.append(await send(producer, out))
        phase.committing = True
        await producer.commit_transaction()
        metadata = await asyncio.gather(*futures)
        return [Position(meta.topic, meta.partition, meta.offset) for meta in metadata]

    def _when_quiet(self, partition: int) -> None:
        """Begin the partition's next transactions ahead once no commit has followed this
        one for a moment: registering while a commit runs would only compete with it for
        the coordinator (a refund's second transaction follows its first within a
        millisecond), and back to back there is nothing to gain."""
        armed = self._quiet.pop(partition, None)
        if armed is not None:
            armed.cancel()
        loop = asyncio.get_running_loop()
        self._quiet[partition] = loop.call_later(_QUIET_S, self._begin_ahead, partition)

    def _begin_ahead(self, partition: int) -> None:
        """Each producer of the partition not in a transaction begins its next one, registered
        with the partitions its commits wrote lately and the group (early.py says why)."""
        self._quiet.pop(partition, None)
        pair = self._producers.get(partition)
        if pair is None or not pair.written or self._lock(partition).locked():
            return  # revoked, or nothing committed yet, or a commit runs (it arms again)
        for producer in pair.producers:
            try:
                if not early.begun(producer):
                    early.begin(producer, pair.written, self._group)
            except Exception as error:  # the next commit meets it (or begins as usual)
                self._log.warning("begin_ahead_failed", partition=partition, error=repr(error))

    async def _keep_renewed(self) -> None:
        """Renew transactions begun ahead before the coordinator times them out (which would
        fence their producer), for _KEPT_READY_S after their partition's last commit; after
        that they are aborted and the next commit begins its own."""
        while True:
            await asyncio.sleep(self._renew_after_s / 2)
            for partition in list(self._producers):
                try:
                    await self._renew(partition)
                except Exception as error:  # a bug: logged, and the loop goes on
                    self._log.error("renewal_failed", partition=partition, error=repr(error))

    async def _renew(self, partition: int) -> None:
        lock = self._lock(partition)
        if lock.locked():  # a commit or a revocation has it: looked at again next time
            return
        async with lock:
            pair = self._producers.get(partition)
            if pair is None:
                return
            now = time.monotonic()
            again = now - pair.committed_at < _KEPT_READY_S
            for producer in pair.producers:
                since = early.begun_at(producer)
                if since is None or now - since < self._renew_after_s:
                    continue
                try:
                    async with asyncio.timeout(CLOSE_TIMEOUT_S):
                        await early.renew(producer, again=again)
                except FENCING_ERRORS:
                    self._fence(partition, producer)
                    return
                except Exception as error:  # its state is unknown: a new one, by a rejoin
                    self._log.warning("renewal_failed", partition=partition, error=repr(error))
                    self._drop(partition, producer, "renewal_failed")
                    return

    def _lock(self, partition: int) -> asyncio.Lock:
        return self._locks.setdefault(partition, asyncio.Lock())

    def _producer_for(self, partition: int) -> _Pair:
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
        """Stop writing with a fenced producer, and rejoin. A newer producer with our id means
        the group moved the partition (the rejoin confirms it), but the coordinator also ends
        a transaction by itself (a timeout, a coordinator that moved) and then the partition
        is still ours: only a new assignment brings it a new producer (docs/kafka-internals.md,
        "Errors of a commit")."""
        self._log.warning("producer_fenced", partition=partition)
        self._fenced.add(partition)
        self._forget(partition, producer)
        self._rejoin()

    async def _abort_or_drop(self, partition: int, producer: Any, phase: _Phase) -> None:
        if not phase.committing:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await producer.abort_transaction()
                return
            except Exception as error:  # the producer is broken; replaced below
                self._log.warning("abort_failed", partition=partition, error=repr(error))
        self._drop(partition, producer, "transaction_state_unknown")

    def _drop(self, partition: int, producer: Any, reason: str) -> None:
        """Forget a producer in an unknown state and rejoin to get a new one (never re-create
        it here: if this member were a zombie, that would fence the rightful owner)."""
        self._log.warning("producer_dropped", partition=partition, reason=reason)
        self._forget(partition, producer)
        self._rejoin()

    def _forget(self, partition: int, producer: Any) -> None:
        """Close a producer and its twin: a partition has both or neither (its other id
        would otherwise stay unfenced by this member's next assignment's own)."""
        pair = self._producers.get(partition)
        if pair is not None and producer in pair.producers:
            del self._producers[partition]
            for each in pair.producers:
                self._kafka._close_in_background(each, "transactional_producer")
        else:
            self._kafka._close_in_background(producer, "transactional_producer")

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
                    pair = self._producers.pop(partition, None)
                if pair is not None:
                    await pair.close()

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
            await stale.close()
        producers = [self._new_producer(partition, suffix) for suffix in _TWINS]
        started = await asyncio.gather(
            *(start_or_close(p, self._kafka._timeouts[1]) for p in producers),
            return_exceptions=True,
        )
        failed = [error for error in started if error is not None]
        if not failed:
            self._producers[partition] = _Pair((producers[0], producers[1]))
            return
        await _Pair((producers[0], producers[1])).close()  # both or neither
        for error in failed:  # a refused configuration, a cancellation: raised as before
            if not isinstance(error, LogError):
                raise error
        # Not connected: a commit on this partition will rejoin for another try.
        self._log.warning("producer_start_failed", partition=partition, error=str(failed[0]))

    def _new_producer(self, partition: int, suffix: str) -> Any:
        config = self._kafka._config("transactional_producer")
        config["client_id"] = f"{config['client_id']}-{partition}{suffix}"
        transactional_id = f"{self._group}.{self._topic}.{partition}{suffix}"
        producer = AIOKafkaProducer(**config, transactional_id=transactional_id)
        early.install(producer)
        return producer

    async def _seek_committed(self, consumer: Any, partitions: frozenset[int]) -> None:
        """Seek to the group position as read now, after our producers fenced any zombie:
        no late commit of one can slip past the position we start from (aiokafka fetched
        its own copy before)."""
        ordered = sorted(partitions)
        committed = await asyncio.gather(
            *(consumer.committed(TopicPartition(self._topic, p)) for p in ordered)
        )
        unread = []
        for partition, offset in zip(ordered, committed, strict=True):
            tp = TopicPartition(self._topic, partition)
            if offset is not None:
                consumer.seek(tp, offset)
            else:
                unread.append(tp)
        if unread:
            await self._seek_earliest(consumer, unread)

    async def _seek_earliest(self, consumer: Any, unread: list[Any]) -> None:
        """A partition the group never consumed starts at its earliest record, looked up here
        and not left to aiokafka's position reset. That one asks the leader its metadata
        names and, refused, asks the same node again without refreshing the metadata (its
        error lines are retriable: DEBUG for their first minute): after a paused broker came
        back such a partition stayed unread until the metadata's next refresh five minutes
        later (tests/unit/test_kafka_member_seek.py). `beginning_offsets` refreshes the
        metadata and asks again. It runs in the assignment callback, before aiokafka
        resumes heartbeats: if it cannot answer within half the session timeout, the member
        rejoins to try again rather than be evicted from the group."""
        try:
            async with asyncio.timeout(self._lookup_s):
                earliest = await consumer.beginning_offsets(unread)
        except (KafkaError, TimeoutError) as error:
            self._log.warning(
                "earliest_offset_unknown",
                partitions=[tp.partition for tp in unread],
                error=repr(error),
            )
            self._rejoin()
            return
        for tp in unread:
            consumer.seek(tp, earliest[tp])


# The second id ends in a letter: "<group>.<topic>.<n>" ends in digits, so no other
# partition's or topic's id can equal it.
_TWINS = ("", ".b")


@dataclass(slots=True)
class _Pair:
    """A partition's two transactional producers, used in turn: each one's last transaction
    has had a whole commit's time to have its markers written before it begins another."""

    producers: tuple[Any, Any]
    turn: int = 0
    written: dict[Any, None] = field(default_factory=dict)
    """The partitions its commits wrote, the latest last: a step's kinds write different
    ones (a start, a decision, a tool's result), and each producer's next transaction
    registers them all ahead."""
    committed_at: float = 0.0

    def wrote(self, positions: Sequence[Position]) -> None:
        written = self.written
        for position in positions:
            tp = TopicPartition(position.topic, position.partition)
            written.pop(tp, None)
            written[tp] = None  # the latest last
        while len(written) > early.MAX_PARTITIONS:
            del written[next(iter(written))]
        self.committed_at = time.monotonic()

    def take(self) -> Any:
        producer = self.producers[self.turn]
        self.turn ^= 1
        return producer

    async def close(self) -> None:
        await asyncio.gather(*(close_quietly(p, "transactional_producer") for p in self.producers))


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
