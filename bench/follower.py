"""A benchmark's view of a log (I/O): when each run paused for approval and when it completed.

Follows every partition of the runs and approvals topics from the start, on any `EventLog`
(Kafka or the embedded PostgreSQL log), and records the arrival time of what it reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from engine.log.port import EventLog, Topics
from events.codec import Codec
from events.notices import ApprovalRequested
from events.run_events import InterruptRaised, RunCompleted


class Follower:
    """Follows every partition of the runs and approvals topics; records when things happen."""

    def __init__(self, event_log: EventLog, topics: Topics, codec: Codec) -> None:
        self.log, self.topics, self.codec = event_log, topics, codec
        self.interrupts: dict[str, str] = {}
        self.raised: set[str] = set()
        """Runs whose `InterruptRaised` this follower has read on the runs topic: caught up."""
        self.completed: dict[str, float] = {}
        self.value_bytes: dict[str, int] = {}
        self.changed = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self, partitions: int) -> None:
        for p in range(partitions):
            self.tasks.append(asyncio.create_task(self._runs(p)))
            self.tasks.append(asyncio.create_task(self._approvals(p)))

    async def _runs(self, partition: int) -> None:
        async for record in self.log.read(self.topics.runs, partition, 0, follow=True):
            event = self.codec.decode_event(record.value)
            self.value_bytes[event.run_id] = self.value_bytes.get(event.run_id, 0) + len(
                record.value
            )
            if isinstance(event.payload, InterruptRaised):
                self.raised.add(event.run_id)
                self.changed.set()
            elif isinstance(event.payload, RunCompleted):
                self.completed[event.run_id] = time.perf_counter()
                self.changed.set()

    async def _approvals(self, partition: int) -> None:
        async for record in self.log.read(self.topics.approvals, partition, 0, follow=True):
            notice = self.codec.decode_notice(record.value)
            if isinstance(notice, ApprovalRequested):
                self.interrupts[notice.run_id] = notice.interrupt_id
                self.changed.set()

    async def wait(self, predicate: Callable[[], bool], limit_s: float = 120.0) -> None:
        deadline = time.monotonic() + limit_s
        while not predicate():
            self.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("benchmark timed out waiting for the worker")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
