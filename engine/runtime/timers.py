"""The deadline timer: when to look for due interrupts, and expiring them through a step. No I/O.

Deadlines are read from each run's folded state (`engine.core.deadlines`), so any owner fires
them. The timer only remembers the earliest known deadline, so the poll loop does not walk
every waiting run each time: deadlines appear with an interrupt raised or escalated (noted
after each step, from the runs it changed) or with a restore (which resets the note).
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from engine.core.deadlines import expire_due, next_due_us
from engine.core.live_run import LiveRun
from engine.runtime.step import Step, StepWriter
from engine.runtime.table import RunTable

__all__ = ["DeadlineTimer", "expire"]

log = structlog.get_logger(__name__)


class DeadlineTimer:
    def __init__(self) -> None:
        self._next_due_us: int | None = 0
        """The earliest deadline of any owned run (0: unknown, scan); None: there is none."""

    def reset(self) -> None:
        """Runs were restored: they may carry deadlines, scan at the next look."""
        self._next_due_us = 0

    def note(self, runs: Iterable[LiveRun]) -> None:
        for run in runs:
            if run.state is not None:
                self._note(next_due_us(run.state))

    def due(self, table: RunTable, now_us: int) -> list[tuple[int, list[LiveRun]]]:
        """The runs with an interrupt due by `now_us`, per partition (usually none: the scan
        runs only once the earliest known deadline has passed)."""
        if self._next_due_us is None or now_us < self._next_due_us:
            return []
        self._next_due_us = None
        found: list[tuple[int, list[LiveRun]]] = []
        for partition, runs in table.by_partition():
            due = []
            for run in runs.values():
                at = next_due_us(run.state) if run.state is not None else None
                if at is not None and at <= now_us:
                    due.append(run)
                else:
                    self._note(at)
            if due:
                found.append((partition, due))
        return found

    def _note(self, at: int | None) -> None:
        if at is not None and (self._next_due_us is None or at < self._next_due_us):
            self._next_due_us = at


def expire(writer: StepWriter, step: Step, run: LiveRun, now_us: int) -> None:
    """Append the expiry of every interrupt of `run` due by `now_us`."""
    if run.state is None:
        return
    for event in expire_due(run.state, now_us):
        writer.append(step, run, event, f"deadline:{event.interrupt_id}")
        step.touched[run.run_id] = run
        log.info("interrupt_expired", run_id=run.run_id, interrupt_id=event.interrupt_id)
