"""Committing a step (I/O): its records, its commands position and its restore checkpoint in
one atomic log commit, and what to do when that fails.

- Each commit of partition N also writes a checkpoint (`engine.core.checkpoint`) to partition
  N of the checkpoints topic when it changed: where a restore must start reading, and the
  commands position committed with it.
- A worker that lost a partition without hearing it (a stall past its session) is fenced:
  its commit raises `Fenced`, nothing of it is visible, and it drops the partition.
- A commit whose outcome is unknown (a timeout) abandons the step: the partition is rebuilt
  from the log and the batch re-read unless the checkpoint shows the commit went through;
  handling commands again is idempotent by command and decision id.
"""

from __future__ import annotations

import time

import structlog

from engine.core.checkpoint import Checkpoint
from engine.errors import Fenced, LogError
from engine.log.port import GroupMember, Outgoing, Position, Topics
from engine.runtime.anchoring import Anchorer
from engine.runtime.observing import Observer
from engine.runtime.ownership import Ownership
from engine.runtime.rebalance import Rebalancer
from engine.runtime.step import Step, StepAbandoned
from events.codec import Codec

__all__ = ["Committer"]

log = structlog.get_logger(__name__)


class Committer:
    def __init__(
        self,
        topics: Topics,
        codec: Codec,
        ownership: Ownership,
        rebalancer: Rebalancer,
        *,
        observer: Observer | None = None,
    ) -> None:
        self._observer = observer
        self._topics = topics
        self._codec = codec
        self._own = ownership
        self._rebalancer = rebalancer
        self._member: GroupMember | None = None
        self.anchors: Anchorer | None = None
        """Signs chain-head anchors into the commits (`engine.runtime.anchoring`)."""

    def bind(self, member: GroupMember) -> None:
        self._member = member

    async def mark(self, partition: int, offset: int, attempts: int) -> None:
        """Commit the crash-loop guard's marker: handling the command at `offset`, the
        `attempts`-th time (`engine.core.crash_guard`)."""
        marker = self._own.marker(partition, offset, attempts)
        if marker is not None:  # should it fail, the batch is read again from `offset`
            await self.commit(Step(partition, first_offset=offset), marker)

    async def commit(self, step: Step, checkpoint: Checkpoint | None = None) -> None:
        """Commit the step; with `checkpoint`, that checkpoint rather than the one it needs."""
        anchors = self.anchors if checkpoint is None else None
        if checkpoint is None:
            idle = not step.records and step.consumed is None
            if idle and (anchors is None or not await anchors.idle_due(step.partition)):
                return
            checkpoint = self._own.checkpoint_for(step.partition, step.consumed)
        assert self._member is not None
        records = step.records
        anchor = await anchors.attach(step) if anchors is not None else None
        if anchor is not None:
            records = [*records, anchor]
        if checkpoint is not None:
            records = [*records, self._checkpoint_record(checkpoint, step.partition)]
        started = time.perf_counter()
        try:
            positions = await self._member.commit(step.partition, records, step.consumed)
        except Fenced:
            log.warning("fenced", partition=step.partition)
            self._rebalancer.drop(step.partition)
        except LogError as exc:
            log.error("commit_failed", partition=step.partition, error=str(exc))
            await self._recover(step)
        else:
            if anchors is not None:
                anchors.committed(step, positions)
            if self._observer is not None:
                self._observer.committed(step.report, time.perf_counter() - started)
            self._committed(step, positions, checkpoint)
            return
        if anchors is not None:
            anchors.forget(step.partition)
        step.records, step.consumed, step.touched = [], None, {}
        raise StepAbandoned(step.partition)

    def _checkpoint_record(self, checkpoint: Checkpoint, partition: int) -> Outgoing:
        value = self._codec.encode(checkpoint)
        headers = (self._codec.schema_header(value),)
        return Outgoing(self._topics.checkpoints, str(partition), value, partition, headers)

    def _committed(
        self, step: Step, positions: list[Position], checkpoint: Checkpoint | None
    ) -> None:
        firsts: dict[str, int] = {}
        end = 0
        for out, position in zip(step.records, positions, strict=False):  # + the checkpoint's
            if position.topic == self._topics.runs:
                firsts.setdefault(out.key, position.offset)
                end = max(end, position.offset + 1)
        self._own.committed(step.partition, firsts, end, checkpoint)
        if step.consumed is not None:
            step.first_offset = None  # the batch is consumed: a later failure must not re-read it
        step.records = []
        step.consumed = None

    async def _recover(self, step: Step) -> None:
        """After a failed commit memory is ahead of the log: rebuild the partition from the
        log and re-read the batch, unless the checkpoint shows the commit went through (its
        outcome was unknown); handling commands again is idempotent by command/decision id."""
        assert self._member is not None
        if step.partition not in self._own:
            return
        unhandled = step.first_offset if step.consumed is not None else None
        restored = await self._rebalancer.restore_or_defer(step.partition, unhandled)
        if restored is None:
            return
        receipt = restored.checkpoint.consumed if restored.checkpoint else None
        if step.consumed is not None and receipt is not None and receipt >= step.consumed:
            log.info("commit_went_through", partition=step.partition, consumed=receipt)
        elif step.first_offset is not None:
            await self._member.seek(step.partition, step.first_offset)
