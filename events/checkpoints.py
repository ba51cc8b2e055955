"""Restore checkpoints as they travel on the checkpoints topic (written by workers only)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True, slots=True)
class Checkpoint:
    """Where the next owner of a runs partition must start reading, and what it must know.

    `restore_from`: every run a restore needs starts at or after this offset of the runs
    partition. `consumed`: the commands position committed in the same transaction (the
    receipt of a commit whose outcome was unknown). `attempt_at`, `attempts`: a worker is
    handling the command at `attempt_at` (of the commands partition) for the `attempts`-th
    time; a commit that gets past it clears them, so a record that keeps stopping workers
    is recognised (engine/runtime, the crash-loop guard)."""

    restore_from: int
    consumed: int | None = None
    attempt_at: int | None = None
    attempts: int = 0

    def __post_init__(self) -> None:
        for name in ("restore_from", "consumed", "attempt_at", "attempts"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 0):
                raise ValueError(f"checkpoint {name} must be a non-negative integer, not {value!r}")
