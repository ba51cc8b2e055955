"""The engine worker: owns partitions of the commands topic and the runs of the same partitions.

For each poll batch of one partition it decodes the commands, turns them into run events
(pure handling), drives the affected runs forward by replay (pure executor), runs the tools
they ask for, and commits the new events together with the consumed command offsets in one
atomic log commit. A tool that is not idempotent runs only after its `ToolCallScheduled`
is committed, so a crash mid-call is visible to the next owner.

Exactly-once on the log (docs/exactly-once.md has the whole argument):
- A transaction covers one step, never a wait: `_commit` is one call of the log's atomic
  commit (begin, append, commit), with nothing awaited in between but the log itself. Tools
  run outside any transaction (a non-idempotent one after the commit of its schedule), and
  a run waiting for a person has no transaction open at all: the wait is a state in the log.
- Each commit of partition N also writes a checkpoint (`engine.checkpoint`) to partition N
  of the checkpoints topic: where a restore must start reading, and the commands position
  committed with it. On assignment `_restore` reads from there, not from offset 0.
- A worker that loses a partition stops touching its runs at once. A revocation (a
  rebalance: the partition is still ours until `on_revoked` returns) lets the step in
  flight commit, for at most `revoke_grace_s`, then drops the runs; a step still running
  after that discards its tools' results (`_still_owned` is checked after every await).
  A worker that lost a partition without hearing it (a stall past its session) is fenced:
  its commit raises `Fenced`, nothing of it is visible, and it drops the partition.
- A commit whose outcome is unknown (a timeout) abandons the step: the partition is rebuilt
  from the log and the batch re-read unless the checkpoint shows the commit went through;
  handling commands again is idempotent by command and decision id.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import structlog

from engine.announcements import action_notice, progress_notice
from engine.app import App
from engine.checkpoint import Checkpoint, encode_checkpoint
from engine.deadlines import expire_due, next_due_us
from engine.errors import Fenced, LogError, TransientLogError
from engine.executor import Advance, ExecuteTool, Replayer, Services
from engine.handling import held_ready, judge_decision, judge_held
from engine.live_run import LiveRun
from engine.log.port import EventLog, GroupMember, Outgoing, Position, Record, Topics
from engine.ownership import Ownership
from engine.restore import Restored, restore_partition
from engine.state import RunState
from events.codec import Codec
from events.commands import CancelRun, StartRun, SubmitDecision
from events.errors import DecodeError
from events.json import canonical_json
from events.notices import ApprovalRequested, DecisionOutcome
from events.run_events import (
    DecisionAccepted,
    DecisionRejected,
    InterruptEscalated,
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
    revoke_grace_s: float = 10.0
    """How long a revocation waits for the step in flight to commit before dropping it."""
    retry_backoff_s: float = 0.5
    """The pause before polling again when the log is unreachable."""
    keep_finished_runs: int = 1_000
    """Finished runs per partition whose states are kept (in memory and across restores)
    to answer repeated commands; older ones are forgotten (docs/exactly-once.md)."""


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
        self._next_due_us: int | None = 0
        """The earliest deadline of any owned run (0: unknown, scan); None: there is none."""
        self._own = Ownership()
        self._idle = asyncio.Event()
        self._idle.set()
        self._member: GroupMember | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        member = self._log.member(self._settings.group, self._topics.commands, self)
        self._member = member
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

    async def _poll_once(self, member: GroupMember) -> None:
        try:
            await self._retry_restores(member)
            async with self._stepping():
                await self._resume_restored()
                await self._fire_deadlines()
            records = await member.poll(self._settings.poll_timeout_s, self._settings.max_batch)
            by_partition: dict[int, list[Record]] = {}
            for record in records:
                by_partition.setdefault(record.partition, []).append(record)
            self._own.hold(by_partition)
            async with self._stepping():
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
            await self._restore_or_defer(partition)
        return {}

    async def on_revoked(self, partitions: frozenset[int]) -> None:
        """Let a step in flight finish (the partitions are still ours until this returns; Kafka
        calls it from the background), for at most `revoke_grace_s`; then drop their runs."""
        if not self._idle.is_set():
            try:
                async with asyncio.timeout(self._settings.revoke_grace_s):
                    await self._idle.wait()
            except TimeoutError:
                log.warning("step_outlived_revocation", partitions=sorted(partitions))
        for partition in partitions:
            self._drop(partition)
        log.info("partitions_revoked", partitions=sorted(partitions))

    @contextlib.asynccontextmanager
    async def _stepping(self) -> AsyncIterator[None]:
        """Marks steps in progress, for `on_revoked` (never around a poll: a rebalance
        waits for `on_revoked`, which would wait for the poll)."""
        self._idle.clear()
        try:
            yield
        finally:
            self._idle.set()

    def _drop(self, partition: int) -> None:
        for run in self._runs.pop(partition, {}).values():
            if run.replayer is not None:
                run.replayer.close()
        self._finished.pop(partition, None)
        self._own.drop(partition)
        self._to_resume.discard(partition)

    async def _restore(self, partition: int) -> Restored:
        """Rebuild the partition's runs from its checkpoint on (see `engine.restore`)."""
        restored = await restore_partition(
            self._log,
            self._topics,
            self._codec,
            partition,
            keep_finished=self._settings.keep_finished_runs,
        )
        self._runs[partition] = restored.live
        self._next_due_us = 0  # restored runs may carry deadlines: scan at the next poll
        self._finished[partition] = restored.finished
        self._own.restored(partition, restored.horizon, restored.checkpoint)
        self._to_resume.add(partition)
        log.info(
            "partition_restored",
            partition=partition,
            restore_from=restored.checkpoint.restore_from if restored.checkpoint else 0,
            events=restored.read,
            skipped=restored.skipped,
            live_runs=len(restored.live),
            finished_runs=len(restored.finished),
            seconds=round(restored.seconds, 4),
        )
        return restored

    async def _restore_or_defer(
        self, partition: int, unhandled: int | None = None
    ) -> Restored | None:
        """Restore, or, if the log is away, drop what is known of the partition and try
        again at the next poll (`_retry_restores`); its commands wait meanwhile."""
        try:
            return await self._restore(partition)
        except TransientLogError as exc:
            log.warning("restore_deferred", partition=partition, error=str(exc))
            self._drop(partition)
            self._own.defer(partition, unhandled)
            return None

    async def _retry_restores(self, member: GroupMember) -> None:
        for partition in self._own.pending():
            unhandled = self._own.take(partition)
            if partition not in member.assigned:
                continue
            restored = await self._restore_or_defer(partition, unhandled)
            if restored is None:
                return
            # Back to the group position: it commits with each checkpoint (else: the first
            # command skipped while the partition could not be restored).
            checkpoint = restored.checkpoint
            position = unhandled
            if checkpoint is not None and checkpoint.consumed is not None:
                position = checkpoint.consumed
            if position is not None:
                await member.seek(partition, position)

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
        if run is not None:
            self._expire_due(step, run)  # a decision after its deadline loses to the expiry
            state = run.state
        verdict = judge_decision(
            state, command, directory=self._app.directory, now_us=self._services.clock_us()
        )
        if verdict.event is not None and run is not None:
            self._append(step, run, verdict.event, command.decision_id)
            if verdict.accepted:
                step.touched[run.run_id] = run
        else:
            # Unknown or finished run: nothing to append to, but the sender still learns why.
            self._outcome(step, command, verdict.accepted, verdict.reason, verdict.status)
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
        self._judge_held(step, [run])  # decisions held for interrupts it will never raise
        step.touched.pop(run.run_id, None)
        log.info("run_cancelled", run_id=run.run_id, by=command.cancelled_by)

    # -- driving runs forward -----------------------------------------------------------------

    async def _drive(self, step: _Step) -> None:
        epoch = self._own.epoch(step.partition)
        while step.touched:
            effects: list[tuple[LiveRun, ExecuteTool]] = []
            ran = list(step.touched.values())
            for run in ran:
                advance = self._advance(run)
                if advance is None:
                    continue
                for event in advance.events:
                    self._append(step, run, event, run.history[-1].event_id)
                effects.extend((run, effect) for effect in advance.effects)
            step.touched = {}
            self._judge_held(step, ran)
            if not effects:
                if step.touched:
                    continue
                return
            if any(not self._idempotent(effect) for _, effect in effects):
                await self._commit(step)  # the schedule must be durable before the tool runs
                self._still_owned(step, epoch, "tools_not_started")
            results = await asyncio.gather(*(self._execute(run, fx) for run, fx in effects))
            self._still_owned(step, epoch, "tool_results_discarded")
            for (run, _), result in zip(effects, results, strict=True):
                self._append(step, run, result, run.history[-1].event_id)
                step.touched[run.run_id] = run

    def _still_owned(self, step: _Step, epoch: int | None, what: str) -> None:
        """Stop a step whose partition was lost while it awaited: its runs are another
        worker's now (whatever this one did since is its to find in the log, or not)."""
        if not self._own.owns(step.partition, epoch):
            log.warning("partition_lost_mid_step", partition=step.partition, action=what)
            raise _StepAbandoned(step.partition)

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
        if isinstance(payload, InterruptRaised | InterruptEscalated) and run.state is not None:
            self._note_deadline(next_due_us(run.state))
        if isinstance(payload, RunStarted):
            self._own.started(step.partition, run.run_id)
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
                status="accepted" if accepted else "refused",
            )
            step.out.append(
                Outgoing(self._topics.approvals, run.run_id, self._codec.encode(outcome))
            )
        self._announce(step, run, payload, envelope.occurred_at_us)
        if run.state is not None and run.state.terminal:
            self._retire(step.partition, run)

    # -- approvals: deadlines, held decisions, notices (issue 3) -------------------------------

    async def _fire_deadlines(self) -> None:
        """Expire due interrupts of the runs this worker owns, through the normal commit.

        Deadlines are read from each run's folded state, so any owner fires them. The scan
        runs only once the earliest known deadline has passed: deadlines appear only with
        an interrupt raised or escalated (`_append` notes them) or a restore (which resets
        the note), so the poll loop does not walk every waiting run each time."""
        now = self._services.clock_us()
        if self._next_due_us is None or now < self._next_due_us:
            return
        self._next_due_us = None
        for partition, runs in list(self._runs.items()):
            due = []
            for run in runs.values():
                at = next_due_us(run.state) if run.state is not None else None
                if at is not None and at <= now:
                    due.append(run)
                else:
                    self._note_deadline(at)
            if not due:
                continue
            step = _Step(partition)
            for run in due:
                self._expire_due(step, run, now)
                if run.state is not None:
                    self._note_deadline(next_due_us(run.state))  # e.g. an escalation's
            await self._drive(step)
            await self._commit(step)

    def _note_deadline(self, at: int | None) -> None:
        if at is not None and (self._next_due_us is None or at < self._next_due_us):
            self._next_due_us = at

    def _expire_due(self, step: _Step, run: LiveRun, now: int | None = None) -> None:
        if run.state is None:
            return
        now = self._services.clock_us() if now is None else now
        for event in expire_due(run.state, now):
            self._append(step, run, event, f"deadline:{event.interrupt_id}")
            step.touched[run.run_id] = run
            log.info("interrupt_expired", run_id=run.run_id, interrupt_id=event.interrupt_id)

    def _judge_held(self, step: _Step, runs: list[LiveRun]) -> None:
        """Decisions that arrived before their interrupt: judge them once it is raised (or
        refuse them once the run has ended without raising it)."""
        for run in runs:
            if run.state is None or not run.state.held:
                continue
            for held in held_ready(run.state):
                verdict = judge_held(
                    run.state,
                    held,
                    directory=self._app.directory,
                    now_us=self._services.clock_us(),
                )
                assert verdict.event is not None
                self._append(step, run, verdict.event, held.decision_id)
                if verdict.accepted and not run.state.terminal:
                    step.touched[run.run_id] = run

    def _announce(self, step: _Step, run: LiveRun, payload: RunEventPayload, at_us: int) -> None:
        """Approvals-topic notices for votes, held decisions and NOTIFY-gated tool runs."""
        if run.state is None:
            return
        notice = progress_notice(run.run_id, payload, at_us) or action_notice(
            run.state, run.history, payload, at_us
        )
        if notice is not None:
            step.out.append(
                Outgoing(self._topics.approvals, run.run_id, self._codec.encode(notice))
            )

    def _outcome(
        self, step: _Step, command: SubmitDecision, accepted: bool, reason: str, status: str = ""
    ) -> None:
        outcome = DecisionOutcome(
            run_id=command.run_id,
            interrupt_id=command.interrupt_id,
            decision_id=command.decision_id,
            accepted=accepted,
            kind=command.kind,
            decided_by=command.decided_by,
            reason=reason,
            decided_at_us=self._services.clock_us(),
            status=status,
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
        finished = self._finished.setdefault(partition, {})
        finished[run.run_id] = run.state
        for forgotten in self._own.finished(partition, run.run_id):
            finished.pop(forgotten, None)

    def _state_of(self, partition: int, run_id: str) -> RunState | None:
        run = self._runs[partition].get(run_id)
        if run is not None:
            return run.state
        return self._finished[partition].get(run_id)

    async def _commit(self, step: _Step) -> None:
        if not step.out and step.consumed is None:
            return
        assert self._member is not None
        checkpoint = self._own.checkpoint_for(step.partition, step.consumed)
        records = step.out if checkpoint is None else [*step.out, self._record_of(checkpoint, step)]
        try:
            positions = await self._member.commit(step.partition, records, step.consumed)
        except Fenced:
            log.warning("fenced", partition=step.partition)
            self._drop(step.partition)
        except LogError as exc:
            log.error("commit_failed", partition=step.partition, error=str(exc))
            await self._recover(step)
        else:
            self._committed(step, positions, checkpoint)
            return
        step.out, step.consumed, step.touched = [], None, {}
        raise _StepAbandoned(step.partition)

    def _record_of(self, checkpoint: Checkpoint, step: _Step) -> Outgoing:
        value = encode_checkpoint(checkpoint)
        return Outgoing(self._topics.checkpoints, str(step.partition), value, step.partition)

    def _committed(
        self, step: _Step, positions: list[Position], checkpoint: Checkpoint | None
    ) -> None:
        firsts: dict[str, int] = {}
        end = 0
        for out, position in zip(step.out, positions, strict=False):  # + the checkpoint's
            if position.topic == self._topics.runs:
                firsts.setdefault(out.key, position.offset)
                end = max(end, position.offset + 1)
        self._own.committed(step.partition, firsts, end, checkpoint)
        if step.consumed is not None:
            step.first_offset = None  # the batch is consumed: a later failure must not re-read it
        step.out = []
        step.consumed = None

    async def _recover(self, step: _Step) -> None:
        """After a failed commit memory is ahead of the log: rebuild the partition from the
        log and re-read the batch, unless the checkpoint shows the commit went through (its
        outcome was unknown); handling commands again is idempotent by command/decision id."""
        assert self._member is not None
        if step.partition not in self._own:
            return
        unhandled = step.first_offset if step.consumed is not None else None
        restored = await self._restore_or_defer(step.partition, unhandled)
        if restored is None:
            return
        receipt = restored.checkpoint.consumed if restored.checkpoint else None
        if step.consumed is not None and receipt is not None and receipt >= step.consumed:
            log.info("commit_went_through", partition=step.partition, consumed=receipt)
        elif step.first_offset is not None:
            await self._member.seek(step.partition, step.first_offset)


class _StepAbandoned(Exception):
    """The commit of a step failed; the batch will be processed again from the log."""
