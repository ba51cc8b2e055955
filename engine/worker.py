"""The engine worker: owns partitions of the commands topic and the runs of the same partitions.

For each poll batch of one partition it decodes the commands, turns them into run events
(pure handling), drives the affected runs forward by replay (pure executor), runs the tools
they ask for, and commits the new events together with the consumed command offsets in one
atomic log commit. A tool that is not idempotent runs only after its `ToolCallScheduled`
is committed, so a crash mid-call is visible to the next owner.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

from engine.app import App
from engine.errors import Fenced, LogError
from engine.executor import Advance, ExecuteTool, Replayer, Services
from engine.handling import judge_decision
from engine.live_run import LiveRun
from engine.log.port import EventLog, GroupMember, Outgoing, Record, Topics
from engine.state import RunState
from events.codec import Codec
from events.commands import CancelRun, StartRun, SubmitDecision
from events.errors import DecodeError
from events.json import canonical_json
from events.notices import ApprovalRequested, DecisionOutcome
from events.run_events import (
    DecisionAccepted,
    DecisionRejected,
    InterruptRaised,
    RunCancelled,
    RunEventPayload,
    RunFailed,
    RunStarted,
    ToolCallCompleted,
    ToolCallFailed,
)

log = structlog.get_logger(__name__)


def live_services() -> Services:
    return Services(
        clock_us=lambda: time.time_ns() // 1000,
        new_uuid=lambda: str(uuid.uuid4()),
        random=random.random,
    )


@dataclass(frozen=True, kw_only=True)
class WorkerSettings:
    group: str = "countersign.workers"
    poll_timeout_s: float = 0.1
    max_batch: int = 500


@dataclass
class _Step:
    """What one atomic commit of one partition will hold."""

    partition: int
    consumed: int | None = None
    first_offset: int | None = None
    out: list[Outgoing] = field(default_factory=list)
    touched: dict[str, LiveRun] = field(default_factory=dict)


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
        self._app = app
        self._log = event_log
        self._topics = topics
        self._codec = codec
        self._services = services or live_services()
        self._settings = settings or WorkerSettings()
        self._runs: dict[int, dict[str, LiveRun]] = {}
        self._finished: dict[int, dict[str, RunState]] = {}
        self._to_resume: set[int] = set()
        self._member: GroupMember | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        member = self._log.member(self._settings.group, self._topics.commands, self)
        self._member = member
        await member.start()
        log.info("worker_started", group=self._settings.group, topic=self._topics.commands)
        try:
            while not stop.is_set():
                await self._poll_once(member)
        finally:
            await member.stop()
            log.info("worker_stopped")

    async def _poll_once(self, member: GroupMember) -> None:
        try:
            await self._resume_restored()
            records = await member.poll(self._settings.poll_timeout_s, self._settings.max_batch)
            by_partition: dict[int, list[Record]] = {}
            for record in records:
                by_partition.setdefault(record.partition, []).append(record)
            for partition, batch in by_partition.items():
                if partition in self._runs:
                    await self._process(partition, batch)
        except _StepAbandoned as abandoned:
            log.warning("step_abandoned", partition=abandoned.args[0])

    @property
    def owned_partitions(self) -> frozenset[int]:
        return frozenset(self._runs)

    def live_run_count(self) -> int:
        return sum(len(runs) for runs in self._runs.values())

    # -- AssignmentListener -------------------------------------------------------------------

    async def on_assigned(self, partitions: frozenset[int]) -> Mapping[int, int]:
        for partition in sorted(partitions):
            await self._restore(partition)
        return {}

    async def on_revoked(self, partitions: frozenset[int]) -> None:
        for partition in partitions:
            self._drop(partition)
        log.info("partitions_revoked", partitions=sorted(partitions))

    def _drop(self, partition: int) -> None:
        for run in self._runs.pop(partition, {}).values():
            if run.replayer is not None:
                run.replayer.close()
        self._finished.pop(partition, None)
        self._to_resume.discard(partition)

    async def _restore(self, partition: int) -> None:
        started = time.perf_counter()
        runs: dict[str, LiveRun] = {}
        events = 0
        async for record in self._log.read(self._topics.runs, partition, 0):
            try:
                envelope = self._codec.decode_event(record.value)
            except DecodeError as exc:
                log.error(
                    "undecodable_run_event",
                    partition=partition,
                    offset=record.offset,
                    reason=str(exc),
                )
                continue
            run = runs.get(envelope.run_id)
            if run is None:
                run = runs[envelope.run_id] = LiveRun(envelope.run_id, partition)
            try:
                run.record(envelope, record.value)
            except ValueError as exc:
                log.error(
                    "broken_run_history",
                    run_id=envelope.run_id,
                    offset=record.offset,
                    reason=str(exc),
                )
            events += 1
        live = {run_id: run for run_id, run in runs.items() if run.state and not run.state.terminal}
        self._runs[partition] = live
        self._finished[partition] = {
            run_id: run.state for run_id, run in runs.items() if run.state and run.state.terminal
        }
        self._to_resume.add(partition)
        log.info(
            "partition_restored",
            partition=partition,
            events=events,
            live_runs=len(live),
            seconds=round(time.perf_counter() - started, 4),
        )

    async def _resume_restored(self) -> None:
        """Continue runs that were mid-way when their previous owner stopped."""
        while self._to_resume:
            partition = self._to_resume.pop()
            step = _Step(partition)
            for run in self._runs.get(partition, {}).values():
                if run.state is not None and run.state.status in ("running", "waiting"):
                    step.touched[run.run_id] = run
            await self._drive(step)
            await self._commit(step)

    # -- one batch of commands ----------------------------------------------------------------

    async def _process(self, partition: int, records: list[Record]) -> None:
        step = _Step(partition, consumed=records[-1].offset + 1, first_offset=records[0].offset)
        for record in records:
            self._handle(step, record)
        await self._drive(step)
        await self._commit(step)

    def _handle(self, step: _Step, record: Record) -> None:
        try:
            command = self._codec.decode_command(record.value)
        except DecodeError as exc:
            self._dead_letter(step, record, str(exc))
            return
        if record.key is not None and record.key != command.run_id:
            self._dead_letter(
                step, record, f"key {record.key!r} is not the run id {command.run_id!r}"
            )
            return
        match command:
            case StartRun():
                self._start_run(step, record, command)
            case SubmitDecision():
                self._decide(step, command)
            case CancelRun():
                self._cancel(step, record, command)

    def _start_run(self, step: _Step, record: Record, command: StartRun) -> None:
        bound = log.bind(run_id=command.run_id, agent=command.agent)
        existing = self._state_of(step.partition, command.run_id)
        if existing is not None:
            if existing.start_command_id != command.command_id:
                self._dead_letter(step, record, f"run {command.run_id} already exists")
            return
        spec = self._app.find_agent(command.agent, command.agent_version)
        version = spec.version if spec else command.agent_version
        run = LiveRun(command.run_id, step.partition)
        self._runs[step.partition][command.run_id] = run
        started = RunStarted(
            input=command.input, requested_by=command.requested_by, command_id=command.command_id
        )
        self._append(step, run, started, command.command_id, agent=command.agent, version=version)
        if spec is None:
            error = f"this app has no agent {command.agent!r}" + (
                f" version {command.agent_version!r}" if command.agent_version else ""
            )
            self._append(
                step, run, RunFailed(error_type="UnknownAgent", error=error), command.command_id
            )
            bound.warning("run_refused", reason=error)
            return
        bound.info("run_started", version=version)
        step.touched[run.run_id] = run

    def _decide(self, step: _Step, command: SubmitDecision) -> None:
        bound = log.bind(
            run_id=command.run_id,
            interrupt_id=command.interrupt_id,
            decision_id=command.decision_id,
        )
        run = self._runs[step.partition].get(command.run_id)
        state = run.state if run else self._finished[step.partition].get(command.run_id)
        verdict = judge_decision(state, command)
        if verdict.event is not None and run is not None:
            self._append(step, run, verdict.event, command.decision_id)
            if verdict.accepted:
                step.touched[run.run_id] = run
        elif verdict.event is None:
            self._outcome(step, command, verdict.accepted, verdict.reason)
        bound.info(
            "decision_accepted" if verdict.accepted else "decision_refused",
            reason=verdict.reason,
            repeat=verdict.repeat,
        )

    def _cancel(self, step: _Step, record: Record, command: CancelRun) -> None:
        run = self._runs[step.partition].get(command.run_id)
        if run is None:
            if self._finished[step.partition].get(command.run_id) is None:
                self._dead_letter(step, record, f"unknown run {command.run_id}")
            return
        if run.replayer is not None:
            run.replayer.close()
        cancelled = RunCancelled(cancelled_by=command.cancelled_by, reason=command.reason)
        self._append(step, run, cancelled, command.command_id)
        step.touched.pop(run.run_id, None)
        log.info("run_cancelled", run_id=run.run_id, by=command.cancelled_by)

    # -- driving runs forward -----------------------------------------------------------------

    async def _drive(self, step: _Step) -> None:
        while step.touched:
            effects: list[tuple[LiveRun, ExecuteTool]] = []
            for run in list(step.touched.values()):
                advance = self._advance(run)
                if advance is None:
                    continue
                for event in advance.events:
                    self._append(step, run, event, run.history[-1].event_id)
                effects.extend((run, effect) for effect in advance.effects)
            step.touched = {}
            if not effects:
                return
            if any(not self._idempotent(effect) for _, effect in effects):
                await self._commit(step)  # the schedule must be durable before the tool runs
            results = await asyncio.gather(*(self._execute(run, fx) for run, fx in effects))
            for (run, _), result in zip(effects, results, strict=True):
                self._append(step, run, result, run.history[-1].event_id)
                step.touched[run.run_id] = run

    def _advance(self, run: LiveRun) -> Advance | None:
        if run.state is None or run.state.terminal:
            return None
        if run.replayer is None:
            spec = self._app.find_agent(run.state.agent, run.state.agent_version)
            if spec is None:
                log.warning(
                    "run_left_alone",
                    run_id=run.run_id,
                    agent=run.state.agent,
                    version=run.state.agent_version,
                    reason="this worker does not have that agent version",
                )
                return None
            run.replayer = Replayer(self._app, spec, run.run_id, run.started, self._services)
            run.replayer.feed(envelope.payload for envelope in run.history)
        return run.replayer.advance()

    def _idempotent(self, effect: ExecuteTool) -> bool:
        tool = self._app.get_tool(effect.tool)
        return tool is not None and tool.idempotent

    async def _execute(self, run: LiveRun, effect: ExecuteTool) -> RunEventPayload:
        tool = self._app.get_tool(effect.tool)
        assert tool is not None
        bound = log.bind(run_id=run.run_id, tool=effect.tool, call=effect.call)
        try:
            result = await tool.invoke(effect.args, effect.idempotency_key)
            canonical_json(result)
        except Exception as exc:  # recorded as ToolCallFailed: the agent sees it, nothing is lost
            bound.warning("tool_failed", error_type=type(exc).__name__, error=str(exc))
            return ToolCallFailed(call=effect.call, error_type=type(exc).__name__, error=str(exc))
        bound.info("tool_completed")
        return ToolCallCompleted(call=effect.call, result=result)

    # -- building the commit ------------------------------------------------------------------

    def _append(
        self,
        step: _Step,
        run: LiveRun,
        payload: RunEventPayload,
        causation_id: str,
        *,
        agent: str | None = None,
        version: str | None = None,
    ) -> None:
        state = run.state
        envelope = run.envelope(
            payload,
            event_id=self._services.new_uuid(),
            occurred_at_us=self._services.clock_us(),
            agent=agent if agent is not None else (state.agent if state else ""),
            agent_version=version
            if version is not None
            else (state.agent_version if state else ""),
            causation_id=causation_id,
        )
        encoded = self._codec.encode(envelope)
        run.record(envelope, encoded)
        if run.replayer is not None:
            run.replayer.feed([payload])  # harmless for events the replayer emitted itself
        step.out.append(Outgoing(self._topics.runs, run.run_id, encoded, step.partition))
        if isinstance(payload, InterruptRaised):
            notice = ApprovalRequested(
                run_id=run.run_id,
                interrupt_id=payload.interrupt_id,
                agent=envelope.agent,
                agent_version=envelope.agent_version,
                requested_by=run.started.requested_by,
                requested_at_us=envelope.occurred_at_us,
                request=payload.request,
            )
            step.out.append(
                Outgoing(self._topics.approvals, run.run_id, self._codec.encode(notice))
            )
            log.info(
                "interrupt_raised",
                run_id=run.run_id,
                interrupt_id=payload.interrupt_id,
                title=payload.request.title,
            )
        elif isinstance(payload, DecisionAccepted | DecisionRejected):
            accepted = isinstance(payload, DecisionAccepted)
            outcome = DecisionOutcome(
                run_id=run.run_id,
                interrupt_id=payload.interrupt_id,
                decision_id=payload.decision_id,
                accepted=accepted,
                kind=payload.kind,
                decided_by=payload.decided_by,
                reason=payload.reason,
                decided_at_us=envelope.occurred_at_us,
            )
            step.out.append(
                Outgoing(self._topics.approvals, run.run_id, self._codec.encode(outcome))
            )
        if run.state is not None and run.state.terminal:
            self._retire(step.partition, run)

    def _outcome(self, step: _Step, command: SubmitDecision, accepted: bool, reason: str) -> None:
        outcome = DecisionOutcome(
            run_id=command.run_id,
            interrupt_id=command.interrupt_id,
            decision_id=command.decision_id,
            accepted=accepted,
            kind=command.kind,
            decided_by=command.decided_by,
            reason=reason,
            decided_at_us=self._services.clock_us(),
        )
        step.out.append(
            Outgoing(self._topics.approvals, command.run_id, self._codec.encode(outcome))
        )

    def _dead_letter(self, step: _Step, record: Record, reason: str) -> None:
        log.warning(
            "dead_lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=reason,
        )
        headers = (
            ("countersign.reason", reason.encode()),
            ("countersign.source.topic", record.topic.encode()),
            ("countersign.source.partition", str(record.partition).encode()),
            ("countersign.source.offset", str(record.offset).encode()),
        )
        step.out.append(Outgoing(self._topics.dlq, record.key or "", record.value, headers=headers))

    def _retire(self, partition: int, run: LiveRun) -> None:
        """A finished run leaves memory; its small state stays to answer late decisions."""
        assert run.state is not None
        self._runs.get(partition, {}).pop(run.run_id, None)
        self._finished.setdefault(partition, {})[run.run_id] = run.state

    def _state_of(self, partition: int, run_id: str) -> RunState | None:
        run = self._runs[partition].get(run_id)
        if run is not None:
            return run.state
        return self._finished[partition].get(run_id)

    async def _commit(self, step: _Step) -> None:
        if not step.out and step.consumed is None:
            return
        assert self._member is not None
        try:
            await self._member.commit(step.partition, step.out, step.consumed)
        except Fenced:
            log.warning("fenced", partition=step.partition)
            self._drop(step.partition)
        except LogError as exc:
            # Memory is ahead of the log now: rebuild the partition from the log and re-read
            # this batch's commands; handling them again is idempotent by command/decision id.
            log.error("commit_failed", partition=step.partition, error=str(exc))
            if step.partition in self._runs:
                await self._restore(step.partition)
                if step.first_offset is not None:
                    await self._member.seek(step.partition, step.first_offset)
        else:
            step.out = []
            step.consumed = None
            return
        step.out, step.consumed, step.touched = [], None, {}
        raise _StepAbandoned(step.partition)


class _StepAbandoned(Exception):
    """The commit of a step failed; the batch will be processed again from the log."""
