"""The crash-loop guard: a command that keeps stopping workers is dead-lettered, not retried
for ever. Pure.

A command that raises is dead-lettered by the intake (`engine.runtime.intake`); one that
stops the process itself (a native crash, an out-of-memory kill, an agent calling
`os._exit`) cannot be caught, and the next owner of the partition would read it again and
stop too. So a worker leaves a marker in the partition's checkpoint before it handles the
first batch after a restore: "handling the command at offset X, attempt k". A commit past X
clears it. A restore that finds a marker where it must resume knows the previous attempt
never finished: it handles that batch one command at a time, each marked with the next
attempt (any of them may be the one), so the marker comes to name the very command that
stops workers; one that has stopped `limit` workers is dead-lettered without being handled,
and the partition moves on.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.checkpoints import Checkpoint

__all__ = ["DEFAULT_CRASH_LIMIT", "BatchPlan", "plan_batch"]

DEFAULT_CRASH_LIMIT = 3


@dataclass(frozen=True, slots=True)
class BatchPlan:
    attempts: int
    """The attempt to mark at the batch's first command before handling it."""
    careful: bool = False
    """Handle the batch one command at a time, each marked first."""
    poisoned: bool = False
    """The first command stopped workers `limit` times: dead-letter it, do not handle it."""


def plan_batch(
    checkpoint: Checkpoint | None, first_offset: int, *, fresh: bool, limit: int
) -> BatchPlan | None:
    """How to handle a batch starting at `first_offset` (None: as usual, no marker).
    `fresh`: the first batch since the partition was restored."""
    if checkpoint is not None and checkpoint.attempt_at == first_offset:
        if checkpoint.attempts >= limit:
            return BatchPlan(checkpoint.attempts, careful=True, poisoned=True)
        return BatchPlan(checkpoint.attempts + 1, careful=True)
    if fresh:
        return BatchPlan(1)
    return None
