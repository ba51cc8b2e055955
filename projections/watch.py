"""What `/livez`, `/readyz` and the gauges of `/metrics` read of a projector (I/O: the
database and the log are asked, only when probed or scraped).

Ready means: in its group, polled, the database answering (a short query of the stored
positions, bounded in time), and not stood down. Lag is per partition of the runs topic:
records between the stored position and the end, and the age of the oldest not projected.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from engine.core.health import ProcessHealth, Verdict
from engine.log.lag import LagProbe
from engine.log.port import EventLog
from engine.telemetry import Metrics, PartitionLag, ProjectorGauges
from projections.errors import StoreUnavailable

__all__ = ["ProjectorWatch"]

_DB_TIMEOUT_S = 2.0


class Positions(Protocol):
    async def positions(self, projection: str, topic: str) -> dict[int, int]: ...


class ProjectorWatch:
    def __init__(
        self,
        metrics: Metrics,
        event_log: EventLog,
        store: Positions,
        projection: str,
        topic: str,
        *,
        stall_s: float = 600.0,
    ) -> None:
        self.health = ProcessHealth(stall_s=stall_s)
        self._metrics = metrics
        self._log = event_log
        self._store = store
        self._projection = projection
        self._topic = topic
        self._lag = LagProbe(event_log, topic)

    def polled(self) -> None:
        self.health.polled(time.monotonic())

    def live(self) -> Verdict:
        return self.health.live(time.monotonic())

    async def ready(self) -> Verdict:
        try:
            async with asyncio.timeout(_DB_TIMEOUT_S):
                await self._store.positions(self._projection, self._topic)
        except (StoreUnavailable, TimeoutError) as exc:
            return self.health.ready(f"the database does not answer: {exc or 'timeout'}")
        return self.health.ready()

    async def sample(self) -> None:
        """Set the gauges (lag per partition, stood down) for a scrape."""
        stored = await self._store.positions(self._projection, self._topic)
        count = await self._log.partition_count(self._topic)
        found = await asyncio.gather(*(self._lag.lag(p, stored.get(p, 0)) for p in range(count)))
        now_ms = time.time() * 1000
        lags = [PartitionLag(p, lag.records, lag.seconds(now_ms)) for p, lag in enumerate(found)]
        stood_down = self.health.standing_down is not None
        self._metrics.projector_gauges(ProjectorGauges(tuple(lags), stood_down))
