"""The worker's bookkeeping of owned partitions (pure): epochs, checkpoints, pending restores."""

from __future__ import annotations

from engine.core.checkpoint import Checkpoint, Horizon
from engine.log.port import Record
from engine.runtime.ownership import Ownership


def _record(partition: int, offset: int) -> Record:
    return Record("t.commands", partition, offset, "k", b"", 0)


def test_a_step_knows_when_its_partition_was_lost_or_restored_again() -> None:
    own = Ownership()
    own.restored(0, Horizon(10), None)
    epoch = own.epoch(0)
    assert own.owns(0, epoch)

    own.drop(0)
    assert not own.owns(0, epoch)
    own.restored(0, Horizon(10), None)
    assert not own.owns(0, epoch)  # owned again, but not since the step began
    assert not own.owns(1, None)


def test_a_commit_carries_a_checkpoint_only_when_it_changes() -> None:
    own = Ownership()
    own.restored(0, Horizon(10, next_offset=7), Checkpoint(restore_from=7, consumed=3))
    assert own.checkpoint_for(0, None) is None  # nothing new
    assert own.checkpoint_for(0, 5) == Checkpoint(restore_from=7, consumed=5)

    own.started(0, "a")  # from offset 7 on, as far as the step knows
    assert own.checkpoint_for(0, 5) == Checkpoint(restore_from=7, consumed=5)
    own.committed(0, {"a": 9}, 12, Checkpoint(restore_from=7, consumed=5))
    # The commit made a's first offset exact: the next commit carries it.
    assert own.checkpoint_for(0, None) == Checkpoint(restore_from=9, consumed=5)
    assert own.finished(0, "a") == []  # kept (finished runs answer repeated commands)
    assert own.checkpoint_for(1, 5) is None  # not owned


def test_commands_of_a_partition_waiting_for_its_restore_are_held_from_the_first() -> None:
    own = Ownership()
    own.restored(1, Horizon(10), None)
    own.defer(0, None)
    batches = {0: [_record(0, 4), _record(0, 5)], 1: [_record(1, 2)]}
    own.hold(batches)
    assert list(batches) == [1]
    own.hold({0: [_record(0, 6)]})
    assert own.pending() == {0: 4}
    assert 0 not in own
    assert own.take(0) == 4
    assert own.pending() == {}
