"""What a worker knows of the partitions it owns, besides their runs. No I/O.

- Each owned partition's epoch, new at each restore: a step that began before its partition
  was lost (or lost and restored again) can tell, and stops touching its runs (`owns`).
- Its restore `Horizon` and the last checkpoint in the log, from which the checkpoint a
  commit must carry follows (`checkpoint_for`: None when it would not change).
- Partitions whose restore failed (the log was away), with the first offset of the commands
  polled for them meanwhile and not handled (`hold`), so that none is skipped once the
  partition is restored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.core.checkpoint import Checkpoint, Horizon
from engine.core.crash_guard import BatchPlan, plan_batch
from engine.log.port import Record

__all__ = ["Ownership"]


@dataclass
class _Owned:
    epoch: int
    horizon: Horizon
    written: Checkpoint | None
    """The last checkpoint in the log (restored, or written by this worker)."""
    fresh: bool = True
    """No batch handled since the restore (the crash-loop guard marks the first)."""


class Ownership:
    def __init__(self) -> None:
        self._owned: dict[int, _Owned] = {}
        self._pending: dict[int, int | None] = {}
        self._epochs = 0

    def __contains__(self, partition: int) -> bool:
        return partition in self._owned

    # -- owning ---------------------------------------------------------------------------------

    def restored(self, partition: int, horizon: Horizon, checkpoint: Checkpoint | None) -> None:
        self._epochs += 1
        self._owned[partition] = _Owned(self._epochs, horizon, checkpoint)
        self._pending.pop(partition, None)

    def drop(self, partition: int) -> None:
        self._owned.pop(partition, None)
        self._pending.pop(partition, None)

    def epoch(self, partition: int) -> int | None:
        owned = self._owned.get(partition)
        return owned.epoch if owned is not None else None

    def owns(self, partition: int, epoch: int | None) -> bool:
        """Whether `partition` is still owned since `epoch` (a step's start)."""
        return epoch is not None and self.epoch(partition) == epoch

    def positions(self) -> dict[int, int | None]:
        """Each owned partition's commands position (the last checkpoint's; None: none yet)."""
        return {
            p: owned.written.consumed if owned.written is not None else None
            for p, owned in self._owned.items()
        }

    # -- the checkpoint -------------------------------------------------------------------------

    def started(self, partition: int, run_id: str) -> None:
        owned = self._owned.get(partition)
        if owned is not None:
            owned.horizon.started(run_id)

    def finished(self, partition: int, run_id: str) -> list[str]:
        """The run ended; returns the finished runs no longer kept."""
        owned = self._owned.get(partition)
        return owned.horizon.finished(run_id) if owned is not None else []

    def plan_batch(self, partition: int, first_offset: int, limit: int) -> BatchPlan | None:
        """The crash-loop guard's plan for a batch (`engine.core.crash_guard`)."""
        owned = self._owned.get(partition)
        if owned is None:
            return None
        plan = plan_batch(owned.written, first_offset, fresh=owned.fresh, limit=limit)
        owned.fresh = False
        return plan

    def marker(self, partition: int, offset: int, attempts: int) -> Checkpoint | None:
        """The checkpoint that marks handling the command at `offset` (the `attempts`-th
        time), or None when the partition is not owned."""
        owned = self._owned.get(partition)
        if owned is None:
            return None
        consumed = owned.written.consumed if owned.written is not None else None
        return Checkpoint(
            restore_from=owned.horizon.restore_from,
            consumed=consumed,
            attempt_at=offset,
            attempts=attempts,
        )

    def checkpoint_for(self, partition: int, consumed: int | None) -> Checkpoint | None:
        """The checkpoint a commit of `partition` consuming up to `consumed` (None: no
        commands) must carry, or None if the one in the log still holds."""
        owned = self._owned.get(partition)
        if owned is None:
            return None
        last = owned.written
        if consumed is None and last is not None:
            consumed = last.consumed
        attempt_at, attempts = (last.attempt_at, last.attempts) if last else (None, 0)
        if attempt_at is not None and consumed is not None and consumed > attempt_at:
            attempt_at, attempts = None, 0  # got past the marked command: clear the marker
        checkpoint = Checkpoint(
            restore_from=owned.horizon.restore_from,
            consumed=consumed,
            attempt_at=attempt_at,
            attempts=attempts,
        )
        return None if checkpoint == last else checkpoint

    def committed(
        self,
        partition: int,
        first_offsets: Mapping[str, int],
        next_offset: int,
        checkpoint: Checkpoint | None,
    ) -> None:
        """A commit put its records in the log: the runs' first offsets it wrote, the runs
        partition's next offset, and the checkpoint it carried (if any)."""
        owned = self._owned.get(partition)
        if owned is not None:
            owned.horizon.committed(first_offsets, next_offset)
            owned.written = checkpoint or owned.written

    # -- restores that wait for the log ---------------------------------------------------------

    def defer(self, partition: int, unhandled: int | None) -> None:
        self._owned.pop(partition, None)
        self._pending[partition] = unhandled

    def pending(self) -> dict[int, int | None]:
        """Partitions to restore again, with the first command offset not handled."""
        return dict(self._pending)

    def take(self, partition: int) -> int | None:
        return self._pending.pop(partition, None)

    def hold(self, batches: dict[int, list[Record]]) -> None:
        """Take out the commands of partitions waiting for their restore, remembering where
        they began, to read them again once the partition is restored."""
        for partition in self._pending.keys() & batches.keys():
            first = batches.pop(partition)[0].offset
            known = self._pending[partition]
            self._pending[partition] = first if known is None else min(known, first)
