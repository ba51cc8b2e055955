"""What `/livez`, `/readyz` and the gauges of `/metrics` read of a worker (I/O: the lag asks
the log for its end offsets, only when scraped).

The worker tells its `WorkerWatch` when it joins its group, polls, finds the log away,
stands down and leaves; the watch answers the probes from that and from what the worker
holds (its run table, its partitions' restores). Ready means: in the group, polled, the
log answering, partitions assigned to it and every one restored, and not stood down. A
spare worker (more workers than partitions) has none and is not ready: it still takes
partitions when another member leaves, but a rollout should not count it.
"""

from __future__ import annotations

import asyncio
import time

from engine.core.census import census
from engine.core.health import ProcessHealth, Verdict
from engine.log.lag import LagProbe
from engine.log.port import EventLog, GroupMember
from engine.runtime.ownership import Ownership
from engine.runtime.table import RunTable
from engine.telemetry import Metrics, PartitionLag, WorkerGauges

__all__ = ["WorkerWatch"]


class WorkerWatch:
    def __init__(
        self,
        metrics: Metrics,
        event_log: EventLog,
        commands_topic: str,
        table: RunTable,
        ownership: Ownership,
        *,
        stall_s: float = 600.0,
    ) -> None:
        self.health = ProcessHealth(stall_s=stall_s)
        self._metrics = metrics
        self._table = table
        self._own = ownership
        self._lag = LagProbe(event_log, commands_topic)
        self._member: GroupMember | None = None

    # -- noted by the worker ------------------------------------------------------------------

    def joined(self, member: GroupMember) -> None:
        self._member = member
        self.health.joined()

    def polled(self) -> None:
        self.health.polled(time.monotonic())

    def log_away(self, error: str) -> None:
        self.health.log_away(error, time.monotonic())  # retrying is progress: alive, not ready
        self._metrics.log_unavailable()

    def stood_down(self, reason: str) -> None:
        self.health.stood_down(reason)

    def left(self) -> None:
        self._member = None
        self.health.left()

    # -- asked by the probes ------------------------------------------------------------------

    def live(self) -> Verdict:
        return self.health.live(time.monotonic())

    async def ready(self) -> Verdict:
        return self.health.ready(self._restoring())

    async def sample(self) -> None:
        """Set the gauges (runs by status, consumer lag, stood down) for a scrape."""
        runs = census(run.state for _, live in self._table.by_partition() for run in live.values())
        positions = self._own.positions()
        # No checkpoint: nothing consumed yet, so the group reads from the earliest.
        found = await asyncio.gather(*(self._lag.lag(p, positions[p] or 0) for p in positions))
        now_ms = time.time() * 1000
        lags = [
            PartitionLag(p, lag.records, lag.seconds(now_ms))
            for p, lag in sorted(zip(positions, found, strict=True))
        ]
        self._lag.forget(frozenset(positions))
        stood_down = self.health.standing_down is not None
        self._metrics.worker_gauges(WorkerGauges(runs, tuple(lags), stood_down))

    def _restoring(self) -> str:
        member = self._member
        if member is None:
            return ""
        if not member.assigned:
            return "no partitions assigned (yet; or a spare: more workers than partitions)"
        waiting = sorted((member.assigned - self._table.partitions) | self._own.pending().keys())
        return f"partitions not restored yet: {waiting}" if waiting else ""
