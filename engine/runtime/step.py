"""A step: what one atomic commit of one partition will hold, and the one way to add to it.

Everything a worker publishes goes through `StepWriter`: run events (enveloped, encoded once,
folded into the run, recorded on the runs topic), the approvals-topic notices the outbox
derives from them, decision outcomes and dead letters. No I/O: the commit is `committing`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from engine.core import outbox
from engine.core.executor import Services
from engine.core.handling import DecisionVerdict
from engine.core.live_run import LiveRun
from engine.core.trace_context import TRACEPARENT, TRACESTATE
from engine.log.port import Outgoing, Record, Topics
from engine.log.routing import ROUTE_HEADER
from engine.runtime.observing import StepReport
from engine.runtime.ownership import Ownership
from engine.runtime.sealing import Sealer
from engine.runtime.table import RunTable
from events.codec import Codec
from events.commands import SubmitDecision
from events.notices import Notice
from events.run_events import InterruptRaised, RunEventPayload, RunParked, RunStarted

__all__ = ["FORWARDED_FROM", "Step", "StepAbandoned", "StepWriter"]

FORWARDED_FROM = "countersign.forwarded-from"
"""Header on a command forwarded to its run's partition: `topic/partition/offset` it came from."""

log = structlog.get_logger(__name__)


@dataclass
class Step:
    partition: int
    consumed: int | None = None
    """The commands position this step's commit marks as read (None: no commands)."""
    first_offset: int | None = None
    """The first command of the batch, to read it again if the commit fails."""
    records: list[Outgoing] = field(default_factory=list)
    touched: dict[str, LiveRun] = field(default_factory=dict)
    """Runs that may move on: drive them before committing."""
    changed: dict[str, LiveRun] = field(default_factory=dict)
    """Every run this step appended to (its deadlines may have changed)."""
    heads: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Each run's chain head (seq, hash) after this step's events: what an anchor attests."""
    appended: int = 0
    """Run events in this step."""
    report: StepReport = field(default_factory=StepReport)
    """Outcomes and trace contexts, for the telemetry (`engine.runtime.observing`)."""


class StepAbandoned(Exception):
    """The step cannot finish (its commit failed, or its partition was lost); the batch will
    be processed again from the log by whoever owns the partition."""


class StepWriter:
    def __init__(
        self,
        codec: Codec,
        topics: Topics,
        services: Services,
        table: RunTable,
        ownership: Ownership,
    ) -> None:
        self._codec = codec
        self._topics = topics
        self._services = services
        self._table = table
        self._own = ownership
        self.sealer: Sealer | None = None
        """Seals personal values on their way to the log (`engine.runtime.sealing`)."""
        self.keep_encoded = False
        """Keep each run event's bytes with its run, to pack waiting runs with."""

    def append(
        self,
        step: Step,
        run: LiveRun,
        payload: RunEventPayload,
        causation_id: str,
        *,
        agent: str | None = None,
        version: str | None = None,
        notices: bool = True,
    ) -> None:
        """Append `payload` to `run` in this step; `notices=False` keeps it off the approvals
        topic (a fork's copies of events that people heard of in the origin already)."""
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
        logged = envelope
        if self.sealer is not None:  # in memory in clear; the chain is over the log's bytes
            logged, envelope = self.sealer.seal(run, envelope)
        encoded = self._codec.encode(logged)
        # A sealed event's bytes are not what the run holds (its values in clear): not kept.
        run.record(envelope, encoded, keep=self.keep_encoded and logged is envelope)
        step.heads[run.run_id] = (envelope.seq, run.last_hash)
        step.appended += 1
        if run.replayer is not None:
            run.replayer.feed([payload])  # harmless for events the replayer emitted itself
        # The schema header lets an older release tell "newer" from "corrupt" (docs/schemas.md).
        step.report.applied()
        headers = (self._codec.schema_header(encoded), *step.report.trace_for(run.run_id))
        step.records.append(
            Outgoing(self._topics.runs, run.run_id, encoded, step.partition, headers=headers)
        )
        step.changed[run.run_id] = run
        assert run.state is not None
        for notice in outbox.event_notices(run.state, run.history, envelope) if notices else ():
            self._publish(step, run.run_id, notice)
        if isinstance(payload, InterruptRaised):
            log.info(
                "interrupt_raised",
                run_id=run.run_id,
                interrupt_id=payload.interrupt_id,
                title=payload.request.title,
            )
        if isinstance(payload, RunParked):  # someone must act: say so, with the why
            log.warning(
                "run_parked",
                run_id=run.run_id,
                call=payload.call,
                reason=payload.reason,
                detail=payload.detail or payload.actual,
            )
        if isinstance(payload, RunStarted):
            self._own.started(step.partition, run.run_id)
            self._table.index(step.partition).add(run.run_id, payload.command_id)
            index = Outgoing(
                self._topics.index, run.run_id, payload.command_id.encode(), step.partition
            )
            step.records.append(index)
        if run.state.terminal:
            self._table.retire(run, self._own.finished(step.partition, run.run_id))

    def decided(
        self, step: Step, decision: SubmitDecision, verdict: DecisionVerdict, at_us: int
    ) -> None:
        """The sender of `decision` learns the verdict (after any event it appended)."""
        step.report.decided(verdict)
        self._publish(step, decision.run_id, outbox.outcome(decision, verdict, at_us))

    def dead_letter(self, step: Step, record: Record, reason: str) -> None:
        log.warning(
            "dead_lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=reason,
        )
        step.report.dead_lettered()
        step.records.append(
            outbox.dead_letter(record, reason, self._topics.dlq, trace=step.report.trace)
        )

    def forward(self, step: Step, record: Record, partition: int, route: bytes) -> None:
        """The command's exact bytes on to `partition` of the commands topic, with where it
        came from and its route (`engine.log.routing`), replacing those it had."""
        here = f"{record.topic}/{record.partition}/{record.offset}".encode()
        step.report.forwarded()
        trace = step.report.trace  # this worker's span is the next one's parent
        drop = (FORWARDED_FROM, ROUTE_HEADER, *((TRACEPARENT, TRACESTATE) if trace else ()))
        kept = tuple((k, v) for k, v in record.headers if k not in drop)
        headers = (*kept, *trace, (FORWARDED_FROM, here), (ROUTE_HEADER, route))
        key = record.key or ""
        step.records.append(Outgoing(record.topic, key, record.value, partition, headers))
        log.info(
            "command_forwarded",
            partition=record.partition,
            offset=record.offset,
            to_partition=partition,
        )

    def _publish(self, step: Step, run_id: str, notice: Notice) -> None:
        encoded = self._codec.encode(notice)
        headers = (self._codec.schema_header(encoded), *step.report.trace_for(run_id))
        step.records.append(Outgoing(self._topics.approvals, run_id, encoded, headers=headers))
