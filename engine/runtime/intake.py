"""Commands in: decode each record, prove its sender, then start, decide or cancel through
the step. No I/O.

This is the worker's input boundary: a record that cannot be decoded, or that names another
run than its key, is dead-lettered; on the run's own partition its proof is checked
(`engine.trust.gate`: unsigned, bad signature, expired, replayed, unknown issuer are refused
with that reason, as a dead letter and, for a decision, a refusal outcome; nothing else
changes) and its "who" field becomes the proven principal; starting, cancelling and lifting
follow the deployment's access rules (`engine.trust.access`); a decision is judged
(`engine.core.handling`) against the run's state and its sender always learns the verdict.
"""

from __future__ import annotations

from dataclasses import replace
from typing import assert_never

import structlog

from engine.agent.app import App
from engine.core.executor import Services
from engine.core.handling import DecisionVerdict, judge_decision, resume_refusal
from engine.core.limits import DEFAULT_LIMITS, RunLimits, growth_refusal
from engine.core.live_run import LiveRun
from engine.errors import NewerRelease, reason_of
from engine.log.port import Record
from engine.log.routing import ROUTE_HEADER, Forward, Handle, Refuse, route
from engine.runtime.forking import Forks, start_fork
from engine.runtime.held import settle_held
from engine.runtime.routing import Routing
from engine.runtime.step import Step, StepWriter
from engine.runtime.table import RunTable
from engine.runtime.timers import expire
from engine.trust.access import Access
from engine.trust.gate import CommandGate, Proven, Refused, bind
from events.codec import Codec
from events.commands import (
    CancelRun,
    Command,
    ForkRun,
    LiftQuarantine,
    ResumeRun,
    StartRun,
    SubmitDecision,
)
from events.errors import DecodeError, NewerSchema
from events.run_events import (
    DecisionRejected,
    QuarantineLifted,
    RunCancelled,
    RunFailed,
    RunResumed,
    RunStarted,
)

__all__ = ["Intake"]

log = structlog.get_logger(__name__)


class Intake:
    def __init__(
        self,
        app: App,
        codec: Codec,
        writer: StepWriter,
        table: RunTable,
        services: Services,
        routing: Routing,
        limits: RunLimits = DEFAULT_LIMITS,
        *,
        gate: CommandGate | None = None,
        access: Access | None = None,
    ) -> None:
        self.gate = gate or CommandGate(require_signed=False)
        """Replaced when the trust store is refreshed (keys rotated, a JWKS fetched)."""
        self.access = access or Access()
        self._routing = routing
        self._limits = limits
        self._app = app
        self._codec = codec
        self._writer = writer
        self._table = table
        self._services = services
        self._forks = Forks(app, codec, writer, table, services)

    def handle(self, step: Step, record: Record) -> None:
        """Handle one command. Whatever it causes that cannot be carried out ends here, as a
        dead letter with the reason, in the same commit as the command's offset: no record
        can stop the worker (the next owner would read it again, and stop too)."""
        try:
            self._handle(step, record)
        except NewerRelease:
            raise  # not the record's fault: this worker stands down, a newer one takes it
        except Exception as exc:
            log.exception("command_failed", partition=record.partition, offset=record.offset)
            self._writer.dead_letter(step, record, f"cannot handle: {reason_of(exc)}")

    def _handle(self, step: Step, record: Record) -> None:
        try:
            command = self._codec.decode_command(record.value, record.headers)
        except NewerSchema as exc:
            raise NewerRelease(str(exc), release=exc.release) from exc
        except DecodeError as exc:
            self._writer.dead_letter(step, record, str(exc))
            return
        if not self._routed_here(step, record, command.run_id):
            return
        now_s = self._services.clock_us() // 1_000_000
        proven = self.gate.check(command, record.value, record.headers, now_s)
        if isinstance(proven, Refused):
            self._refuse(step, record, command, proven)
            return
        bound = bind(command, proven)
        if isinstance(bound, Refused):
            self._refuse(step, record, command, bound)
            return
        match bound:
            case StartRun():
                self._start(step, record, bound, proven)
            case SubmitDecision():
                self._decide(step, bound, proven)
            case CancelRun():
                self._cancel(step, record, bound, proven)
            case LiftQuarantine():
                self._lift(step, record, bound, proven)
            case ResumeRun():
                self._resume(step, record, bound)
            case ForkRun():
                if not self._clash(step, record, bound.run_id, bound.command_id):
                    start_fork(self._forks, step, record, bound)
            case _:  # pragma: no cover - the union is closed; mypy checks every arm is here
                assert_never(bound)

    def _refuse(self, step: Step, record: Record, command: Command, refused: Refused) -> None:
        """A command whose sender is not proven changes nothing: it is dead-lettered with
        the reason and, for a decision, its sender is told (a decision id that already took
        effect is told its first outcome: a late copy of a good command is not an attack)."""
        log.warning(
            "command_refused",
            run_id=command.run_id,
            kind=refused.kind,
            reason=refused.detail,
            partition=record.partition,
            offset=record.offset,
        )
        if not isinstance(command, SubmitDecision):
            self._writer.dead_letter(step, record, str(refused))
            return
        state = self._table.state_of(step.partition, command.run_id)
        earlier = state.decisions.get(command.decision_id) if state is not None else None
        if earlier is not None:
            status = "accepted" if earlier.accepted else "refused"
            verdict = DecisionVerdict(earlier.accepted, earlier.reason, None, True, status)
        else:
            self._writer.dead_letter(step, record, str(refused))
            verdict = DecisionVerdict(False, str(refused), None, status="refused")
        self._writer.decided(step, command, verdict, self._services.clock_us())

    def _routed_here(self, step: Step, record: Record, run_id: str) -> bool:
        """Whether this partition handles the command. A command that lands where its run
        is not (a client that hashes keys its own way, a key-less record, a run started
        under an older partition count) is forwarded, exact bytes and a route header, in the
        same commit as its offset here, along the run's candidate partitions
        (`engine.log.routing`); it is handled once, where the run lives."""
        known_here = self._table.state_of(
            step.partition, run_id
        ) is not None or run_id in self._table.index(step.partition)
        header = record.header(ROUTE_HEADER)
        decision = route(
            run_id, step.partition, header, self._routing.map, known_here=known_here,
            key=self._routing.key,
        )  # fmt: skip
        match decision:
            case Handle():
                return True
            case Forward(partition=partition, header=next_header):
                self._writer.forward(step, record, partition, next_header)
            case Refuse(reason=reason):
                self._writer.dead_letter(step, record, reason)
        return False

    def _clash(self, step: Step, record: Record, run_id: str, command_id: str) -> bool:
        """Whether `run_id` exists already: this command's repeat (nothing to do) or
        another's (dead-lettered). A run id starts once, ever."""
        existing = self._table.state_of(step.partition, run_id)
        if existing is not None:
            if existing.start_command_id != command_id:
                self._writer.dead_letter(step, record, f"run {run_id} already exists")
            return True
        index = self._table.index(step.partition)
        if run_id in index:  # finished long ago
            if index.started_by(run_id, command_id):
                log.info("start_repeated", run_id=run_id)
            else:
                self._writer.dead_letter(step, record, f"run {run_id} already exists")
            return True
        return False

    def _start(self, step: Step, record: Record, command: StartRun, proven: Proven) -> None:
        bound = log.bind(run_id=command.run_id, agent=command.agent)
        if self._clash(step, record, command.run_id, command.command_id):
            return
        base = self._app.directory_for(command.agent) if self._app.find_agent(
            command.agent, command.agent_version) else self._app.directory  # fmt: skip
        refusal = self.access.start_refusal(proven, command.agent, base)
        if refusal:
            bound.warning("start_refused", reason=refusal)
            self._writer.dead_letter(step, record, f"refused (not allowed): {refusal}")
            return
        spec = self._app.find_agent(command.agent, command.agent_version)
        version = spec.version if spec else command.agent_version
        run = LiveRun(command.run_id, step.partition)
        started = RunStarted(
            input=command.input, requested_by=command.requested_by, command_id=command.command_id
        )
        self._writer.append(
            step, run, started, command.command_id, agent=command.agent, version=version
        )
        self._table.add(run)  # only once its first event could be written
        if spec is None:
            error = f"this app has no agent {command.agent!r}" + (
                f" version {command.agent_version!r}" if command.agent_version else ""
            )
            failed = RunFailed(error_type="UnknownAgent", error=error)
            self._writer.append(step, run, failed, command.command_id)
            bound.warning("run_refused", reason=error)
            return
        bound.info("run_started", version=version)
        step.touched[run.run_id] = run

    def _decide(self, step: Step, command: SubmitDecision, proven: Proven) -> None:
        now = self._services.clock_us()
        run = self._table.get(step.partition, command.run_id)
        if run is not None:
            expire(self._writer, step, run, now)  # a decision after its deadline loses to it
        state = run.state if run else self._table.state_of(step.partition, command.run_id)
        base = self._app.directory_for(state.agent) if state else self._app.directory
        directory = self.access.directory_for(proven, base)
        verdict = judge_decision(state, command, directory=directory, now_us=now)
        if state is None and command.run_id in self._table.index(step.partition):
            reason = f"run {command.run_id} finished long ago; it takes no more decisions"
            verdict = replace(verdict, reason=reason)
        # An unknown or finished run has nothing to append to; the sender still learns why.
        if verdict.event is not None and run is not None and run.state is not None:
            verdict = self._within_limits(run, verdict)
        if verdict.event is not None and run is not None:
            self._writer.append(step, run, verdict.event, command.decision_id)
            if verdict.accepted:
                step.touched[run.run_id] = run
        self._writer.decided(step, command, verdict, now)
        log.info(
            "decision_accepted" if verdict.accepted else "decision_refused",
            run_id=command.run_id,
            interrupt_id=command.interrupt_id,
            decision_id=command.decision_id,
            reason=verdict.reason,
            repeat=verdict.repeat,
        )

    def _lift(self, step: Step, record: Record, command: LiftQuarantine, proven: Proven) -> None:
        """An operator accepts a quarantined run's chain as it is: it goes on from there."""
        run = self._table.get(step.partition, command.run_id)
        state = run.state if run is not None else None
        if run is None or state is None or not state.quarantined:
            reason = f"run {command.run_id} is not quarantined here (nothing to lift)"
            self._writer.dead_letter(step, record, reason)
            return
        refusal = self.access.lift_refusal(proven, self._app.directory_for(state.agent))
        if refusal:
            self._writer.dead_letter(step, record, f"refused (not allowed): {refusal}")
            return
        lifted = QuarantineLifted(
            lifted_by=command.lifted_by, reason=command.reason, command_id=command.command_id
        )
        self._writer.append(step, run, lifted, command.command_id)
        step.touched[run.run_id] = run
        log.warning("quarantine_lifted", run_id=run.run_id, by=command.lifted_by)

    def _resume(self, step: Step, record: Record, command: ResumeRun) -> None:
        """Someone asks a parked run to go on: it is replayed from its history at once (by
        the driver), and parked again, with the new divergence, if it still diverges."""
        run = self._table.get(step.partition, command.run_id)
        state = run.state if run is not None else None
        reason = resume_refusal(state, command, self._app)
        if not reason and run is not None and state is not None:
            # Each resume of a run that still diverges adds two events: the run's caps bound
            # how often that can be asked.
            reason = growth_refusal(state, run.size, 2, 0, self._limits)
        if reason or run is None:
            self._writer.dead_letter(step, record, reason or f"unknown run {command.run_id}")
            return
        resumed = RunResumed(
            resumed_by=command.resumed_by, reason=command.reason, command_id=command.command_id
        )
        self._writer.append(step, run, resumed, command.command_id)
        run.replayer = None  # the parked one stopped for good: replay afresh from the history
        step.touched[run.run_id] = run
        log.warning("run_resumed", run_id=run.run_id, by=command.resumed_by)

    def _within_limits(self, run: LiveRun, verdict: DecisionVerdict) -> DecisionVerdict:
        """A run at its cap takes no more decisions; past `max_refusals` a refusal is told to
        its sender but no longer recorded in the run (a flood cannot grow it)."""
        assert run.state is not None
        full = growth_refusal(run.state, run.size, 1, 0, self._limits)
        if full:
            return replace(verdict, accepted=False, reason=full, event=None, status="refused")
        refused = isinstance(verdict.event, DecisionRejected)
        if refused and run.state.refused >= self._limits.max_refusals:
            return replace(verdict, event=None)
        return verdict

    def _cancel(self, step: Step, record: Record, command: CancelRun, proven: Proven) -> None:
        run = self._table.get(step.partition, command.run_id)
        if run is None:
            if self._table.state_of(step.partition, command.run_id) is None:
                self._writer.dead_letter(step, record, f"unknown run {command.run_id}")
            return
        state = run.state
        requester = state.requested_by if state is not None else ""
        base = self._app.directory_for(state.agent) if state is not None else self._app.directory
        refusal = self.access.cancel_refusal(proven, requester, base)
        if refusal:
            log.warning("cancel_refused", run_id=run.run_id, reason=refusal)
            self._writer.dead_letter(step, record, f"refused (not allowed): {refusal}")
            return
        if run.replayer is not None:
            run.replayer.close()
        cancelled = RunCancelled(cancelled_by=command.cancelled_by, reason=command.reason)
        self._writer.append(step, run, cancelled, command.command_id)
        settle_held(self._writer, self._app, self._services, step, [run], self.access)
        step.touched.pop(run.run_id, None)
        log.info("run_cancelled", run_id=run.run_id, by=command.cancelled_by)
