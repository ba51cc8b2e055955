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
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from engine.agent.app import App
from engine.core.crash_guard import DEFAULT_CRASH_LIMIT
from engine.core.executor import Services
from engine.core.integrity import quarantine_event
from engine.core.limits import DEFAULT_LIMITS, RunLimits
from engine.core.registration import registrations
from engine.errors import LogError, NewerRelease, RegistryUnavailable, TransientLogError
from engine.log.port import EventLog, GroupMember, Outgoing, Record, Topics
from engine.privacy.keys import Keyring, SubjectKeys
from engine.runtime.anchoring import Anchorer
from engine.runtime.committing import Committer
from engine.runtime.driving import Driver
from engine.runtime.intake import Intake
from engine.runtime.observing import Observer
from engine.runtime.ownership import Ownership
from engine.runtime.rebalance import Rebalancer
from engine.runtime.routing import Routing
from engine.runtime.sealing import Sealer
from engine.runtime.services import live_services
from engine.runtime.step import Step, StepAbandoned, StepWriter
from engine.runtime.table import RunTable
from engine.runtime.timers import DeadlineTimer, expire
from engine.runtime.watch import WorkerWatch
from engine.telemetry import Telemetry
from events.codec import Codec

if TYPE_CHECKING:
    from engine.log.schema_registry import SchemaRegistry
    from engine.trust.jws import SigningKey
    from engine.trust.loading import Trust

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
    route_key: bytes | None = field(default=None, repr=False)
    """The workers' shared key that authenticates route headers (`engine.log.routing`)."""
    crash_limit: int = DEFAULT_CRASH_LIMIT
    """How many times a command may stop a worker before it is dead-lettered unhandled."""
    check_determinism: bool = False
    """Development: replay each run from its history at every resume before it goes on, so
    a non-deterministic agent is parked at its first decision, not after a restart."""
    release_waiting: bool = False
    """Drop the replayer (suspended coroutine, call index) of a run that waits for a person,
    hold its history as its events' bytes (compressed; not a run with sealed personal
    values), and rebuild both when the decision comes: 3.6 kB instead of 8.8 kB a waiting
    refund (bench/memory.py) for a decode and a replay per resume; a non-deterministic
    agent is then parked at its first decision, as with `check_determinism`."""
    keep_finished_runs: int = 1_000
    """Finished runs per partition whose states are kept (in memory and across restores)
    to answer repeated commands; older ones are forgotten (docs/exactly-once.md)."""
    anchor_every_events: int = 256
    anchor_every_s: float = 2.0
    """A signed chain-head anchor per runs partition at least this often (docs/anchors.md)."""


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
        schema_registry: SchemaRegistry | None = None,
        trust: Trust | None = None,
        anchor_key: SigningKey | None = None,
        subject_keys: SubjectKeys | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        """`subject_keys`: where personal data's per-subject keys live (docs/erasure.md);
        None: a tool with personal fields cannot record them (its run fails, never in clear)."""
        self._observe = Observer(telemetry or Telemetry())
        self._log = event_log
        self._app = app
        self._codec = codec
        self._registered = False
        self._registry = schema_registry
        self._topics = topics
        self._settings = settings or WorkerSettings()
        self._services = services or live_services()
        self._table = RunTable()
        self._own = Ownership()
        self._timer = DeadlineTimer()
        self.watch = WorkerWatch(
            self._observe.metrics, event_log, topics.commands, self._table, self._own
        )
        """What `/livez`, `/readyz` and `/metrics` read (`engine.runtime.watch`)."""
        self._routing = Routing(event_log, topics, self._settings.route_key)
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
            on_assigned=self._routing.stale,
            metrics=self._observe.metrics,
        )
        self._committer = Committer(
            topics, codec, self._own, self._rebalancer, observer=self._observe
        )
        limits = self._settings.limits
        self._driver = Driver(
            app,
            self._writer,
            self._services,
            self._own,
            self._committer.commit,
            limits,
            check_determinism=self._settings.check_determinism,
            release_waiting=self._settings.release_waiting,
            pack=codec.decode_event if self._settings.release_waiting else None,
        )
        self._writer.keep_encoded = self._rebalancer.keep_encoded = self._settings.release_waiting
        self.stood_down: NewerRelease | None = None
        """Set when the worker met records of a newer release and left its group."""
        self._trust = trust
        anchor_key = anchor_key or (trust.anchor_key if trust is not None else None)
        if anchor_key is not None:
            self._committer.anchors = Anchorer(
                event_log,
                topics,
                codec,
                anchor_key,
                every_events=self._settings.anchor_every_events,
                every_s=self._settings.anchor_every_s,
                epoch=self._own.epoch,
            )
        self._intake = Intake(
            app,
            codec,
            self._writer,
            self._table,
            self._services,
            self._routing,
            limits,
            gate=trust.gate if trust else None,
            access=trust.access if trust else None,
        )
        self._driver.access = self._intake.access
        sealer = Sealer(app, Keyring(subject_keys) if subject_keys is not None else None)
        self._writer.sealer = self._driver.sealer = self._rebalancer.sealer = sealer

    async def run(self, stop: asyncio.Event) -> None:
        await self._routing.current()
        member = self._log.member(self._settings.group, self._topics.commands, self._rebalancer)
        self._committer.bind(member)
        try:  # joining is inside: a worker stopped while it joins still leaves the group
            await member.start()
            self.watch.joined(member)
            await self._register()
            log.info("worker_started", group=self._settings.group, topic=self._topics.commands)
            if not self._intake.gate.require_signed:
                log.warning(
                    "worker_accepts_unsigned_commands",
                    remedy="development only: anyone who can write the commands topic can act "
                    "as anyone (docs/signing.md)",
                )
            while not stop.is_set():
                try:
                    await self._poll_once(member)
                    self.watch.polled()
                except TransientLogError as exc:  # the log is away (a broker restart): wait
                    log.warning("log_unavailable", error=str(exc))
                    self.watch.log_away(str(exc))
                    await asyncio.sleep(self._settings.retry_backoff_s)
        except NewerRelease as newer:
            # Not corruption: a newer release wrote what this one cannot read. Leave the
            # group (its partitions go to the other members) and say what to do.
            self.stood_down = newer
            self.watch.stood_down(str(newer))
            log.error(
                "worker_stood_down",
                reason=str(newer),
                newer_release=newer.release,
                remedy="run this worker at the newer release (a rolling upgrade in progress?)",
            )
        finally:
            self.watch.left()
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

    async def _register(self) -> None:
        """Tell the deployment what this worker serves (`countersign agents`; `start` checks
        against it). Retried at every poll until the log takes it."""
        if self._registered:
            return
        worker = f"{socket.gethostname()}:{os.getpid()}"
        records = []
        for registration in registrations(
            self._app, worker=worker, at_us=self._services.clock_us()
        ):
            value = self._codec.encode(registration)
            headers = (self._codec.schema_header(value),)
            records.append(Outgoing(self._topics.agents, registration.key, value, headers=headers))
        try:
            await self._log.publish(records)
        except LogError as exc:
            log.warning("agents_not_registered_yet", error=str(exc))
            return
        self._registered = True
        log.info("agents_registered", agents=[r.key for r in records])

    async def _poll_once(self, member: GroupMember) -> None:
        await self._register()
        self._stand_down_if_older()
        try:
            await self._rebalancer.retry(member)
            async with self._rebalancer.stepping():
                await self._resume_restored()
                await self._fire_deadlines()
                await self._fire_anchors()
            records = await member.poll(self._settings.poll_timeout_s, self._settings.max_batch)
            await self._routing.current(records)  # moved partitions, or a newer map
            by_partition: dict[int, list[Record]] = {}
            for record in records:
                by_partition.setdefault(record.partition, []).append(record)
            await self._prepare_schemas(member, by_partition)
            if self._trust is not None:
                self._intake.gate = await self._trust.prepare(by_partition.values())
            self._own.hold(by_partition)
            async with self._rebalancer.stepping():
                # One partition after another: stepping them at once (each with its own
                # transactional producer) gained within noise, and a paused broker then left
                # runs unfinished in the failover suite (docs/performance.md).
                for partition, batch in by_partition.items():
                    if partition in self._table:
                        await self._process(partition, batch)
        except StepAbandoned as abandoned:
            log.warning("step_abandoned", partition=abandoned.args[0])
            self._observe.metrics.step_abandoned()

    async def _prepare_schemas(
        self, member: GroupMember, by_partition: dict[int, list[Record]]
    ) -> None:
        """Fetch the registry schemas this batch's commands need, so decoding stays pure. If
        the registry cannot be asked, read the batch again later: its commands are not poison."""
        if self._registry is None or not by_partition:
            return
        try:
            await self._registry.prepare([r.value for b in by_partition.values() for r in b])
        except RegistryUnavailable:
            for partition, batch in by_partition.items():
                await member.seek(partition, batch[0].offset)
            raise

    def _stand_down_if_older(self) -> None:
        newer = self._rebalancer.newer
        if newer is not None:
            raise NewerRelease(str(newer), release=newer.release)

    async def _process(self, partition: int, records: list[Record]) -> None:
        """Handle a batch; the crash-loop guard marks the first batch after a restore, and
        handles one that stopped a worker before one command at a time."""
        first = records[0]
        plan = self._own.plan_batch(partition, first.offset, self._settings.crash_limit)
        if plan is None:
            await self._handle(partition, records)
            return
        await self._committer.mark(partition, first.offset, plan.attempts)
        if plan.poisoned:
            await self._dead_letter_unhandled(partition, first, plan.attempts)
            records = records[1:]
        if not plan.careful:
            await self._handle(partition, records)
            return
        # Any command of the batch may be the one that stopped the last worker: each carries
        # the attempt on; the innocent ones clear it as soon as they are handled.
        attempts = 1 if plan.poisoned else plan.attempts
        for record in records:
            if record is not first:
                await self._committer.mark(partition, record.offset, attempts)
            await self._handle(partition, [record])

    async def _handle(self, partition: int, records: list[Record]) -> None:
        if not records:
            return
        step = Step(partition, consumed=records[-1].offset + 1, first_offset=records[0].offset)
        for record in records:
            self._observe.command(step.report, record)
            self._intake.handle(step, record)
            self._observe.handled(step.report)
        await self._finish(step)

    async def _dead_letter_unhandled(self, partition: int, record: Record, attempts: int) -> None:
        step = Step(partition, consumed=record.offset + 1, first_offset=record.offset)
        reason = f"stopped a worker {attempts} times while it was handled; not handled again"
        self._writer.dead_letter(step, record, reason)
        log.error("command_stops_workers", partition=partition, offset=record.offset)
        await self._committer.commit(step)

    async def _resume_restored(self) -> None:
        """Quarantine the runs a restore found broken, and continue the ones that were
        mid-way when their previous owner stopped."""
        while (restored := self._rebalancer.next_restored()) is not None:
            partition, quarantine = restored
            step = Step(partition)
            for run_id, strays in quarantine.items():
                run = self._table.get(partition, run_id)
                if run is not None:
                    self._writer.append(step, run, quarantine_event(strays), "restore")
                    log.error("run_quarantined", run_id=run_id, partition=partition)
            for run in self._table.live(partition).values():
                if run.state is not None and run.state.moving:
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

    async def _fire_anchors(self) -> None:
        """Anchor what an idle partition committed, once it is `anchor_every_s` old."""
        anchors = self._committer.anchors
        if anchors is None:
            return
        for partition in sorted(self._table.partitions):
            if await anchors.idle_due(partition):
                await self._finish(Step(partition))

    async def _finish(self, step: Step) -> None:
        try:
            await self._driver.drive(step)
            await self._committer.commit(step)
        except StepAbandoned:
            self._observe.finished(step.report, "step abandoned: its batch is read again")
            raise
        self._observe.finished(step.report)
        self._timer.note(step.changed.values())
