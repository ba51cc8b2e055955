"""The engine worker: owns partitions of the commands topic and the runs of the same partitions.

One poll, read as a straight line: for each partition's batch of commands, the intake
decodes and judges them into a step (`intake`), the driver replays the runs they touch and
runs the tools those ask for (`driving`), and the committer writes the step — run events,
the notices the outbox derived from them, dead letters, the commands position and the
restore checkpoint — in one atomic log commit (`committing`). Before each poll, runs
restored by a rebalance are resumed and due deadlines fire, through the same path.
Exactly-once on the log, and what happens when a commit fails or a partition moves, is in
docs/exactly-once.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from engine.agent.app import App
from engine.core.executor import Services
from engine.core.limits import DEFAULT_LIMITS, RunLimits
from engine.errors import TransientLogError
from engine.log.port import EventLog, GroupMember, Record, Topics, partition_for
from engine.runtime.committing import Committer
from engine.runtime.driving import Driver
from engine.runtime.intake import Intake
from engine.runtime.ownership import Ownership
from engine.runtime.rebalance import Rebalancer
from engine.runtime.services import live_services
from engine.runtime.step import Step, StepAbandoned, StepWriter
from engine.runtime.table import RunTable
from engine.runtime.timers import DeadlineTimer, expire
from events.codec import Codec

__all__ = ["Worker", "WorkerSettings", "live_services"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, kw_only=True)
class WorkerSettings:
    group: str = "countersign.workers"
    poll_timeout_s: float = 0.1
    max_batch: int = 500
    revoke_grace_s: float = 10.0
    """How long a revocation waits for the step in flight to commit before dropping it."""
    retry_backoff_s: float = 0.5
    """The pause before polling again when the log is unreachable."""
    limits: RunLimits = DEFAULT_LIMITS
    """Per-run caps (`engine.core.limits`)."""
    keep_finished_runs: int = 1_000
    """Finished runs per partition whose states are kept (in memory and across restores)
    to answer repeated commands; older ones are forgotten (docs/exactly-once.md)."""


class Worker:
    def __init__(
        self,
        app: App,
        event_log: EventLog,
        topics: Topics,
        codec: Codec,
        *,
        services: Services | None = None,
        settings: WorkerSettings | None = None,
    ) -> None:
        self._log = event_log
        self._topics = topics
        self._settings = settings or WorkerSettings()
        self._services = services or live_services()
        self._table = RunTable()
        self._own = Ownership()
        self._timer = DeadlineTimer()
        self._writer = StepWriter(codec, topics, self._services, self._table, self._own)
        self._rebalancer = Rebalancer(
            event_log,
            topics,
            codec,
            self._table,
            self._own,
            self._timer,
            keep_finished=self._settings.keep_finished_runs,
            revoke_grace_s=self._settings.revoke_grace_s,
        )
        self._committer = Committer(topics, self._own, self._rebalancer)
        limits = self._settings.limits
        self._driver = Driver(
            app, self._writer, self._services, self._own, self._committer.commit, limits
        )
        self._partitions = 0
        self._intake = Intake(
            app, codec, self._writer, self._table, self._services, self._home, limits
        )

    async def run(self, stop: asyncio.Event) -> None:
        self._partitions = await self._log.partition_count(self._topics.commands)
        member = self._log.member(self._settings.group, self._topics.commands, self._rebalancer)
        self._committer.bind(member)
        await member.start()
        log.info("worker_started", group=self._settings.group, topic=self._topics.commands)
        try:
            while not stop.is_set():
                try:
                    await self._poll_once(member)
                except TransientLogError as exc:  # the log is away (a broker restart): wait
                    log.warning("log_unavailable", error=str(exc))
                    await asyncio.sleep(self._settings.retry_backoff_s)
        finally:
            await member.stop()
            log.info("worker_stopped")

    @property
    def owned_partitions(self) -> frozenset[int]:
        return self._table.partitions

    def live_run_count(self) -> int:
        return self._table.live_count()

    # The rebalance listener is the Rebalancer; these stay for callers that drive a worker
    # as a listener directly.
    async def on_assigned(self, partitions: frozenset[int]) -> Mapping[int, int]:
        return await self._rebalancer.on_assigned(partitions)

    async def on_revoked(self, partitions: frozenset[int]) -> None:
        await self._rebalancer.on_revoked(partitions)

    def _home(self, run_id: str) -> int:
        """The partition of a run's commands and events: Java's murmur2 of the run id."""
        return partition_for(run_id, self._partitions)

    async def _poll_once(self, member: GroupMember) -> None:
        try:
            await self._rebalancer.retry(member)
            async with self._rebalancer.stepping():
                await self._resume_restored()
                await self._fire_deadlines()
            records = await member.poll(self._settings.poll_timeout_s, self._settings.max_batch)
            by_partition: dict[int, list[Record]] = {}
            for record in records:
                by_partition.setdefault(record.partition, []).append(record)
            self._own.hold(by_partition)
            async with self._rebalancer.stepping():
                for partition, batch in by_partition.items():
                    if partition in self._table:
                        await self._process(partition, batch)
        except StepAbandoned as abandoned:
            log.warning("step_abandoned", partition=abandoned.args[0])

    async def _process(self, partition: int, records: list[Record]) -> None:
        step = Step(partition, consumed=records[-1].offset + 1, first_offset=records[0].offset)
        for record in records:
            self._intake.handle(step, record)
        await self._finish(step)

    async def _resume_restored(self) -> None:
        """Continue runs that were mid-way when their previous owner stopped."""
        while (partition := self._rebalancer.next_restored()) is not None:
            step = Step(partition)
            for run in self._table.live(partition).values():
                if run.state is not None and run.state.status in ("running", "waiting"):
                    step.touched[run.run_id] = run
            await self._finish(step)

    async def _fire_deadlines(self) -> None:
        """Expire due interrupts of the runs this worker owns, through the normal commit."""
        now = self._services.clock_us()
        for partition, due in self._timer.due(self._table, now):
            step = Step(partition)
            for run in due:
                expire(self._writer, step, run, now)
            await self._finish(step)

    async def _finish(self, step: Step) -> None:
        await self._driver.drive(step)
        await self._committer.commit(step)
        self._timer.note(step.changed.values())
