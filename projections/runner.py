"""The projector: reads the runs topic as a consumer group and keeps the read models current.

Exactly once by construction: the log positions live in PostgreSQL, written in the same
transaction as the rows (`ProjectionStore.apply`); on assignment the consumer seeks to them;
a record below them is skipped. The group's own committed offsets are never used. Positions
are bound to the log they were read from (`projections.log_identity`): before it joins the
group, the projector refuses (`ForeignLog`) positions of another log or past this one's end.

Nothing stops the projector but `stop`: an undecodable record is logged and stored in
`cs_projection_errors`; a batch PostgreSQL refuses is split until the one refused event is
found, which is stored as an error too; while PostgreSQL is unreachable the same batch is
retried with backoff (the consumer reads at most one batch ahead meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import structlog

from engine.log.port import EventLog, GroupMember, Record
from engine.telemetry import NO_METRICS, Metrics
from events.codec import Codec
from events.envelope import EventEnvelope, hash_encoded
from events.errors import DecodeError, NewerSchema
from projections.batch import Applied, BatchItem, LoggedEvent, Unusable
from projections.errors import (
    ForeignLog,
    NewerRelease,
    ProjectionsError,
    StoreUnavailable,
    UnstorableBatch,
)
from projections.event_record import index_record
from projections.log_identity import LogBound, refusal
from projections.waiting import until_set_or_done
from projections.watch import ProjectorWatch

T = TypeVar("T")
_REASON_LIMIT = 2000
_DECODE_SLICE = 40
MAX_RECORDS = 2000
"""The most records a poll takes, and so a batch written in one transaction. A batch pays
about ten round trips and a commit whatever its size: at 1,000 records they cost a quarter
of the throughput that 2,000 reach (docs/performance.md, "The projector, third round")."""


class ProjectionWriter(Protocol):
    """What the projector needs of a store; `ProjectionStore` is the PostgreSQL one."""

    async def positions(self, projection: str, topic: str) -> dict[int, int]: ...

    async def apply(
        self,
        projection: str,
        topic: str,
        items: Sequence[BatchItem],
        *,
        built: asyncio.Event | None = None,
    ) -> Applied:
        """Write `items`; set `built` once what is left is the database's work, not this
        process's (the projector then decodes the next batch)."""
        ...


@runtime_checkable
class Relocatable(Protocol):
    """A writer whose database schema can move (a rebuild switched the live copy):
    `LiveStore`. The projector then re-reads from the positions stored in the new copy."""

    async def relocated(self) -> bool: ...


@runtime_checkable
class IndexesAhead(Protocol):
    """A writer that takes each event's events index record built ahead
    (`LoggedEvent.index_record`): the projector builds it as it decodes, while the batch
    before is still being written, instead of on the batch's own way to PostgreSQL."""

    indexes_ahead: bool


@dataclass(frozen=True, slots=True)
class Backoff:
    """Retry delays: `first`, doubling up to `max` (seconds)."""

    first: float = 0.1
    max: float = 5.0


class Projector:
    """One member of the projection group `group` over the runs topic."""

    def __init__(
        self,
        log: EventLog,
        store: ProjectionWriter,
        topics_runs: str,
        group: str,
        codec: Codec,
        name: str = "core",
        *,
        max_records: int = MAX_RECORDS,
        poll_timeout_s: float = 0.5,
        backoff: Backoff = Backoff(),
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self._metrics = metrics
        self.watch = ProjectorWatch(metrics, log, store, name, topics_runs)
        """What `/livez`, `/readyz` and `/metrics` read (`projections.watch`)."""
        self._log = log
        self._store = store
        self._topic = topics_runs
        self._group = group
        self._codec = codec
        self.name = name
        self.stood_down: NewerRelease | None = None
        """Set when it met records of a newer release and stopped."""
        self._max_records = max_records
        self._poll_timeout_s = poll_timeout_s
        self._backoff = backoff
        self._stop = asyncio.Event()
        self._follows = store if isinstance(store, Relocatable) else None
        self._index_ahead = isinstance(store, IndexesAhead) and store.indexes_ahead
        self._logger = structlog.get_logger(__name__).bind(
            projection=name, topic=topics_runs, group=group
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Project until `stop` is set (or the task is cancelled); leaves the group on exit.

        Batches are applied one after the other, in order. The next one is polled while the
        previous one is being written, and decoded once that one is built and only waits
        for PostgreSQL: decoded earlier, the two would take turns on the same core and leave
        PostgreSQL idle at the end. Cancelling rolls back the batch in flight (it is read
        again from the stored positions by whoever owns the partition next).
        """
        self._stop = stop
        if not await self._patiently(self._check_log):
            return  # stopped while PostgreSQL was away
        member = self._log.member(self._group, self._topic, self)
        writing: asyncio.Task[bool] | None = None
        built = asyncio.Event()
        try:  # joining is inside: a projector stopped while it joins still leaves the group
            await member.start()
            self.watch.health.joined()
            self._logger.info("projector_started")
            while not stop.is_set():
                records = await member.poll(self._poll_timeout_s, self._max_records)
                self.watch.polled()
                if writing is not None:  # the batch in flight built (or over, or failed)
                    await until_set_or_done(built, writing)
                items = await self._decoded(records)
                if writing is not None and not await writing:
                    break  # stopped while PostgreSQL was away: read again from the positions
                writing = None
                if self._follows is not None and await self._follows.relocated():
                    await self._patiently(self._check_log)  # the new copy knows its log too
                    await self._seek_stored(member)
                    continue  # what was just polled is read again from the new positions
                built = asyncio.Event()
                writing = asyncio.create_task(self._apply(items, built)) if items else None
            if writing is not None:
                await writing
        except NewerRelease as newer:
            self.stood_down = newer
            self.watch.health.stood_down(str(newer))
            self._logger.error(
                "projector_stood_down",
                reason=str(newer),
                remedy="run the projector at the newer release (a rolling upgrade in progress?)",
            )
        finally:
            if writing is not None and not writing.done():
                writing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writing
            self.watch.health.left()
            await member.stop()
            self._logger.info("projector_stopped")

    async def check_log(self) -> None:
        """Raise `ForeignLog` unless the store's positions belong to this log (its first use
        binds them to it). `run` does this before joining the group; call it to refuse
        earlier, before starting anything beside the projector."""
        await self._check_log()

    async def _check_log(self) -> bool:
        store = self._store
        if not isinstance(store, LogBound):
            return True  # a writer without positions of its own (a wrapper in a test)
        log_id = await self._log.log_id(self._topic)
        bound = await store.log_binding(self.name, self._topic)
        positions = await store.positions(self.name, self._topic)
        ends = await _end_offsets(self._log, self._topic)  # after the positions: both grow
        self._refuse_unless_mine(log_id, bound, positions, ends)
        if bound is None:  # first use, or positions kept before logs had identities
            bound = await store.bind_log(self.name, self._topic, log_id)
            self._refuse_unless_mine(log_id, bound, positions, ends)  # another bound it first
            if positions:  # kept before logs had identities: trusted since they fit the log
                self._logger.warning("projection_log_adopted", log_id=log_id, positions=positions)
            else:
                self._logger.info("projection_log_bound", log_id=log_id)
        return True

    def _refuse_unless_mine(
        self, log_id: str, bound: str | None, positions: Mapping[int, int], ends: Mapping[int, int]
    ) -> None:
        reason = refusal(
            projection=self.name,
            schema=str(getattr(self._store, "schema", "?")),
            topic=self._topic,
            log_id=log_id,
            bound=bound,
            positions=positions,
            ends=ends,
        )
        if reason is not None:
            self._logger.error("projection_log_refused", log_id=log_id, bound=bound, reason=reason)
            raise ForeignLog(reason)

    async def lag(self) -> dict[int, int]:
        """Records not yet projected, per partition of the topic (end offset - position)."""
        stored = await self._store.positions(self.name, self._topic)
        count = await self._log.partition_count(self._topic)
        lag = {}
        for partition in range(count):
            end = await self._log.end_offset(self._topic, partition)
            lag[partition] = max(0, end - stored.get(partition, 0))
        return lag

    # -- AssignmentListener -------------------------------------------------------------------

    async def on_assigned(self, partitions: frozenset[int]) -> Mapping[int, int]:
        """Start each partition at the position stored with the rows (0 when none)."""
        stored = await self._stored_positions()
        if stored is None:
            return {}  # stopping anyway; apply skips whatever is below the positions
        starts = {p: stored.get(p, 0) for p in sorted(partitions)}
        self._logger.info("projection_partitions_assigned", positions=starts)
        return starts

    async def _stored_positions(self) -> dict[int, int] | None:
        """The stored positions, waiting while PostgreSQL is away; None if stopped first."""
        return await self._patiently(lambda: self._store.positions(self.name, self._topic))

    async def _patiently(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """`call()`, again after a pause while PostgreSQL is away; None if stopped first."""
        delay = self._backoff.first
        while True:
            try:
                return await call()
            except StoreUnavailable as error:
                self._logger.warning(
                    "projection_positions_unavailable", error=str(error), retry_in_s=delay
                )
                if await self._stopped_within(delay):
                    return None
                delay = min(delay * 2, self._backoff.max)

    async def _seek_stored(self, member: GroupMember) -> None:
        """After the store moved to another copy: read each partition from its position."""
        stored = await self._stored_positions()
        if stored is None:
            return  # stopping
        starts = {p: stored.get(p, 0) for p in sorted(member.assigned)}
        for partition, offset in starts.items():
            await member.seek(partition, offset)
        self._logger.info("projection_relocated", positions=starts)

    async def on_revoked(self, partitions: frozenset[int]) -> None:
        self._logger.info("projection_partitions_revoked", partitions=sorted(partitions))

    # -- one batch ----------------------------------------------------------------------------

    async def _decoded(self, records: Sequence[Record]) -> list[BatchItem]:
        """Decode in slices, letting the batch being written go on between them: its
        statements run one after the other, each needing the loop for a moment, so a long
        uninterrupted decode would leave PostgreSQL idle."""
        items: list[BatchItem] = []
        for start in range(0, len(records), _DECODE_SLICE):
            if start:
                await asyncio.sleep(0)
            items.extend(self._item(r) for r in records[start : start + _DECODE_SLICE])
        return items

    def _item(self, record: Record) -> BatchItem:
        try:
            envelope = self._codec.decode_event(record.value, record.headers)
        except NewerSchema as newer:
            raise NewerRelease(f"offset {record.offset}: {newer}") from newer
        except DecodeError as error:
            self._logger.error(
                "projection_record_undecodable",
                partition=record.partition,
                offset=record.offset,
                reason=str(error),
            )
            return Unusable(
                partition=record.partition,
                offset=record.offset,
                reason=f"undecodable: {error}"[:_REASON_LIMIT],
                raw=record.value,
            )
        hash_ = hash_encoded(record.value)
        return LoggedEvent(
            envelope=envelope,
            partition=record.partition,
            offset=record.offset,
            hash=hash_,
            raw=record.value,
            index_record=_indexed(envelope, record, hash_) if self._index_ahead else None,
        )

    async def _apply(self, items: Sequence[BatchItem], built: asyncio.Event) -> bool:
        """Apply `items`, retrying while PostgreSQL is away; False if stopped before."""
        delay = self._backoff.first
        while True:
            started = time.perf_counter()
            try:
                applied = await self._store.apply(self.name, self._topic, items, built=built)
            except StoreUnavailable as error:
                self._logger.warning(
                    "projection_store_unavailable",
                    error=str(error),
                    records=len(items),
                    retry_in_s=delay,
                )
                if await self._stopped_within(delay):
                    return False
                delay = min(delay * 2, self._backoff.max)
                continue
            except UnstorableBatch as error:
                return await self._split(items, error, built)
            self._metrics.projected(
                applied.events, applied.unusable + applied.duplicates, time.perf_counter() - started
            )
            self._logger.debug(
                "projection_batch_applied",
                events=applied.events,
                duplicates=applied.duplicates,
                unusable=applied.unusable,
                skipped=applied.skipped,
                positions=dict(applied.positions),
            )
            return True

    async def _split(
        self, items: Sequence[BatchItem], error: UnstorableBatch, built: asyncio.Event
    ) -> bool:
        """Halve a refused batch until the refused item is alone; store that one as an error."""
        if len(items) > 1:
            middle = len(items) // 2
            first, second = items[:middle], items[middle:]
            return await self._apply(first, built) and await self._apply(second, built)
        item = items[0]
        self._logger.error(
            "projection_record_unstorable",
            partition=item.partition,
            offset=item.offset,
            reason=str(error),
        )
        if isinstance(item, Unusable) and not item.raw:
            # Even a bare error row was refused: nothing sensible is left to try.
            raise ProjectionsError(f"cannot store the error row of offset {item.offset}: {error}")
        # An event becomes an error row with its bytes; an error row is retried without them.
        raw = item.raw if isinstance(item, LoggedEvent) else b""
        reason = f"unstorable: {error}".encode("ascii", "replace").decode()[:_REASON_LIMIT]
        return await self._apply(
            [Unusable(partition=item.partition, offset=item.offset, reason=reason, raw=raw)], built
        )

    async def _stopped_within(self, delay: float) -> bool:
        try:
            await asyncio.wait_for(self._stop.wait(), delay)
        except TimeoutError:
            return False
        return True


def _indexed(envelope: EventEnvelope, record: Record, hash_: str) -> tuple[Any, ...] | None:
    """The event's index record, or None for one the columns refuse: the store builds that
    one again where it writes it, and refuses it there in its own words."""
    try:
        return index_record(envelope, record.partition, record.offset, hash_, record.value)
    except (ValueError, OverflowError, TypeError, RecursionError):
        return None


async def _end_offsets(log: EventLog, topic: str) -> dict[int, int]:
    return {p: await log.end_offset(topic, p) for p in range(await log.partition_count(topic))}
