"""What a step tells the telemetry (`engine.telemetry`): each command's outcome, its trace
context, and the figures of its commit. Reads the clock; no other I/O.

The worker marks each command it hands to the intake (`command` … `handled`); the step
writer notes on the step's `StepReport` what the command came to and puts the command's
trace context on every record it builds for the runs the command moved; the committer
reports a commit once it went through (an abandoned step reports nothing: its batch is
read again and counted then). Everything here is O(1) per call.

A command without a trace context starts a trace (random ids: the worker is its root);
without a tracer, a command's trace context is carried unchanged onto what it causes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from engine.core.handling import DecisionVerdict
from engine.core.trace_context import TraceContext, trace_context
from engine.log.port import Headers, Record
from engine.telemetry import Outcome, Span, Telemetry

__all__ = ["Observer", "StepReport", "new_trace"]


@dataclass(slots=True)
class StepReport:
    """What one step did, for the metrics and traces; reset as each commit reports it."""

    outcomes: list[Outcome] = field(default_factory=list)
    """One per command handled, in order."""
    decided_ms: list[int] = field(default_factory=list)
    """Record timestamps (ms) of the decisions accepted: their runs continue at the commit."""
    dead_letters: int = 0
    spans: list[Span] = field(default_factory=list)
    traces: dict[str, Headers] = field(default_factory=dict)
    """Run id → the trace headers its records carry (of the command that moved it)."""
    outcome: Outcome | None = None
    """The outcome of the command being handled (None: nothing yet)."""
    command_ms: int | None = None
    """The record timestamp of the command being handled (None: no command is)."""
    trace: Headers = ()
    """The trace headers of the command being handled."""

    # -- noted by the step writer ---------------------------------------------------------------

    def applied(self) -> None:
        """A run event is appended (for the command being handled, if any)."""
        if self.outcome is None and self.command_ms is not None:
            self.outcome = "applied"

    def trace_for(self, run_id: str) -> Headers:
        """The trace headers a record of `run_id` carries: those of the command being
        handled (which moved the run), else of the last command that moved it."""
        if self.trace:
            self.traces[run_id] = self.trace
            return self.trace
        return self.traces.get(run_id, ())

    def decided(self, verdict: DecisionVerdict) -> None:
        if self.outcome == "dead_lettered":
            return  # refused at the gate: it was dead-lettered first, that is its fate
        if verdict.repeat:
            self.outcome = "repeated"
            return
        status = verdict.status or ("accepted" if verdict.accepted else "refused")
        self.outcome = _DECISION_OUTCOMES.get(status, "refused")
        if self.outcome == "accepted" and self.command_ms is not None:
            self.decided_ms.append(self.command_ms)

    def dead_lettered(self) -> None:
        self.dead_letters += 1
        self.outcome = "dead_lettered"

    def forwarded(self) -> None:
        self.outcome = "forwarded"


_DECISION_OUTCOMES: dict[str, Outcome] = {
    "accepted": "accepted",
    "refused": "refused",
    "counted": "counted",
    "held": "held",
}


class Observer:
    """Brackets each command and each commit for the telemetry."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.metrics = telemetry.metrics
        self._tracer = telemetry.tracer

    def command(self, report: StepReport, record: Record) -> None:
        """`record` is about to be handled: its effects carry its trace context (or, with a
        tracer, that of the span made for it)."""
        report.outcome = None
        report.command_ms = record.timestamp_ms
        parent = trace_context(record.headers) if record.headers else None
        if self._tracer is None:
            report.trace = (parent or new_trace()).headers()
            return
        span = self._tracer.start(
            f"process {record.topic}",
            parent,
            {
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": record.topic,
                "messaging.destination.partition.id": str(record.partition),
                "messaging.kafka.offset": record.offset,
                "countersign.run_id": record.key or "",
            },
        )
        report.spans.append(span)
        report.trace = span.context.headers()

    def handled(self, report: StepReport) -> None:
        report.outcomes.append(report.outcome or "ignored")
        report.outcome, report.command_ms, report.trace = None, None, ()

    def committed(self, report: StepReport, seconds: float) -> None:
        """A commit went through: count what it carried, once."""
        metrics = self.metrics
        metrics.committed(seconds)
        for outcome in report.outcomes:
            metrics.command(outcome)
        if report.decided_ms:
            now_ms = time.time() * 1000
            for at_ms in report.decided_ms:
                metrics.decision_continued(max(0.0, (now_ms - at_ms) / 1000))
        if report.dead_letters:
            metrics.dead_lettered(report.dead_letters)
        report.outcomes.clear()
        report.decided_ms.clear()
        report.dead_letters = 0

    def finished(self, report: StepReport, failure: str | None = None) -> None:
        """The step is over (committed, or abandoned with `failure`): its spans end."""
        for span in report.spans:
            if failure is not None:
                span.fail(failure)
            span.end()
        report.spans.clear()


def new_trace() -> TraceContext:
    """The root of a new trace (sampled: nothing downstream has decided otherwise)."""
    ids = os.urandom(24).hex()
    return TraceContext(ids[:32], ids[32:])
