"""Partition moves (I/O): restore a partition's runs when it is assigned, drop them when it is
revoked, and retry restores that had to wait for the log.

A revocation (a rebalance: the partition is still ours until `on_revoked` returns) lets the
step in flight commit, for at most `revoke_grace_s`, then drops the runs; a step still
running after that discards its tools' results (the driver checks ownership after every
await). A restore that fails because the log is away drops what is known of the partition
and is tried again at the next poll; its commands wait meanwhile (`Ownership.hold`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping

import structlog

from engine.core.integrity import Stray
from engine.errors import TransientLogError
from engine.log.port import EventLog, GroupMember, Topics
from engine.runtime.ownership import Ownership
from engine.runtime.restore import Restored, restore_partition
from engine.runtime.sealing import Sealer
from engine.runtime.table import RunTable
from engine.runtime.timers import DeadlineTimer
from engine.telemetry import NO_METRICS, Metrics
from events.codec import Codec
from events.errors import NewerSchema

__all__ = ["Rebalancer"]

log = structlog.get_logger(__name__)


class Rebalancer:
    def __init__(
        self,
        event_log: EventLog,
        topics: Topics,
        codec: Codec,
        table: RunTable,
        ownership: Ownership,
        timer: DeadlineTimer,
        *,
        keep_finished: int,
        revoke_grace_s: float,
        on_assigned: Callable[[], None] | None = None,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self._metrics = metrics
        self._on_assigned = on_assigned
        self._log = event_log
        self._topics = topics
        self._codec = codec
        self._table = table
        self._own = ownership
        self._timer = timer
        self._keep_finished = keep_finished
        self._revoke_grace_s = revoke_grace_s
        self._idle = asyncio.Event()
        self._idle.set()
        self._to_resume: set[int] = set()
        self._drops: dict[int, int] = {}  # per partition: how often dropped (see _restore)
        self._quarantine: dict[int, dict[str, list[Stray]]] = {}
        self.newer: NewerSchema | None = None
        """A record a newer release wrote, met by a restore: this worker must stand down."""
        self.sealer: Sealer | None = None
        """Opens the personal values of restored runs (`engine.runtime.sealing`)."""
        self.keep_encoded = False
        """Restored live runs keep their events' bytes, to be packed while they wait."""

    # -- AssignmentListener -------------------------------------------------------------------

    async def on_assigned(self, partitions: frozenset[int]) -> Mapping[int, int]:
        if self._on_assigned is not None:
            self._on_assigned()
        for partition in sorted(partitions):
            await self.restore_or_defer(partition)
        return {}

    async def on_revoked(self, partitions: frozenset[int]) -> None:
        if not self._idle.is_set():
            try:
                async with asyncio.timeout(self._revoke_grace_s):
                    await self._idle.wait()
            except TimeoutError:
                log.warning("step_outlived_revocation", partitions=sorted(partitions))
        for partition in partitions:
            self.drop(partition)
        log.info("partitions_revoked", partitions=sorted(partitions))

    @contextlib.asynccontextmanager
    async def stepping(self) -> AsyncIterator[None]:
        """Marks steps in progress, for `on_revoked` (never around a poll: a rebalance
        waits for `on_revoked`, which would wait for the poll)."""
        self._idle.clear()
        try:
            yield
        finally:
            self._idle.set()

    # -- restoring ----------------------------------------------------------------------------

    def drop(self, partition: int) -> None:
        self._drops[partition] = self._drops.get(partition, 0) + 1
        self._table.drop(partition)
        self._own.drop(partition)
        self._to_resume.discard(partition)
        self._quarantine.pop(partition, None)

    def next_restored(self) -> tuple[int, dict[str, list[Stray]]] | None:
        """A partition restored and not resumed yet (its mid-way runs must be continued), with
        the runs its restore found to quarantine."""
        if not self._to_resume:
            return None
        partition = self._to_resume.pop()
        return partition, self._quarantine.pop(partition, {})

    async def restore_or_defer(
        self, partition: int, unhandled: int | None = None
    ) -> Restored | None:
        """Restore, or, if the log is away, drop what is known of the partition and try
        again at the next poll (`retry`); its commands wait meanwhile."""
        try:
            return await self._restore(partition)
        except _Revoked:
            log.info("restore_discarded", partition=partition, why="revoked while restoring")
            return None
        except TransientLogError as exc:
            log.warning("restore_deferred", partition=partition, error=str(exc))
            self.drop(partition)
            self._own.defer(partition, unhandled)
            return None

    async def retry(self, member: GroupMember) -> None:
        for partition in self._own.pending():
            unhandled = self._own.take(partition)
            if partition not in member.assigned:
                continue
            restored = await self.restore_or_defer(partition, unhandled)
            if restored is None:
                return
            # Back to the group position: it commits with each checkpoint (else: the first
            # command skipped while the partition could not be restored).
            checkpoint = restored.checkpoint
            position = unhandled
            if checkpoint is not None and checkpoint.consumed is not None:
                position = checkpoint.consumed
            if position is not None:
                await member.seek(partition, position)

    async def _restore(self, partition: int) -> Restored:
        """Rebuild the partition's runs from its checkpoint on (see `engine.runtime.restore`).

        A revocation can come while it reads (a restore after a failed commit runs inside the
        step, and the client revokes concurrently): what it read then is not installed, or
        the worker would serve a partition the group gave to another member."""
        drops = self._drops.get(partition, 0)
        restored = await restore_partition(
            self._log,
            self._topics,
            self._codec,
            partition,
            keep_finished=self._keep_finished,
            keep_encoded=self.keep_encoded,
        )
        if self.sealer is not None:
            await self.sealer.open_runs(restored.live.values())
        if self._drops.get(partition, 0) != drops:
            raise _Revoked(partition)
        self._table.install(partition, restored.live, restored.finished, restored.index)
        self._timer.reset()
        self._own.restored(partition, restored.horizon, restored.checkpoint)
        self._to_resume.add(partition)
        self._quarantine[partition] = restored.quarantine
        if restored.newer is not None:
            self.newer = self.newer or restored.newer
        self._metrics.restored(restored.seconds, restored.read)
        log.info(
            "partition_restored",
            partition=partition,
            restore_from=restored.checkpoint.restore_from if restored.checkpoint else 0,
            events=restored.read,
            skipped=restored.skipped,
            live_runs=len(restored.live),
            finished_runs=len(restored.finished),
            runs_ever=len(restored.index),
            seconds=round(restored.seconds, 4),
        )
        return restored


class _Revoked(Exception):
    """The partition was dropped while its restore read the log."""
