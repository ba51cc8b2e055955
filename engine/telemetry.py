"""The telemetry ports: the metrics and the spans the processes report at a few named points,
with no-op defaults. Pure.

The worker and the projector call a `Metrics` at the moments an operator counts — a step
committed, a partition restored, a batch projected — and read their gauges (runs by status,
lag) only when they are scraped, so the hot path pays a handful of counter increments per
commit and nothing per event. A `Tracer` makes a span of each command handled, child of the
trace context its record carries (`engine.core.trace_context`). The adapters live at the
edge: `countersign.prometheus` (prometheus_client) and `countersign.otel` (OpenTelemetry);
nothing else imports those libraries. docs/observability.md lists every metric.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol, TypeAlias, get_args

from engine.core.census import RunCensus
from engine.core.trace_context import TraceContext

__all__ = [
    "NO_METRICS",
    "OUTCOMES",
    "Metrics",
    "NoMetrics",
    "Outcome",
    "PartitionLag",
    "ProjectorGauges",
    "Span",
    "Telemetry",
    "Tracer",
    "WorkerGauges",
]

Outcome: TypeAlias = Literal[
    "applied",
    "accepted",
    "refused",
    "counted",
    "held",
    "repeated",
    "dead_lettered",
    "forwarded",
    "ignored",
]
"""What became of one command: `applied` (a start, cancel, lift, resume or fork changed its
run), a decision's status (`accepted`, `refused`, `counted`: one vote of a quorum, `held`:
judged when its interrupt is raised, `repeated`: a decision id seen before), `dead_lettered`,
`forwarded` (to its run's partition), `ignored` (a repeat that changes nothing)."""

OUTCOMES: Final[tuple[Outcome, ...]] = get_args(Outcome)


@dataclass(frozen=True, slots=True)
class PartitionLag:
    partition: int
    records: int
    """Offsets not read yet (on Kafka, transaction markers take offsets too)."""
    seconds: float
    """The age of the oldest record not read yet (0 when there is none)."""


@dataclass(frozen=True, slots=True)
class WorkerGauges:
    """What a worker holds, sampled when it is scraped."""

    runs: RunCensus
    lag: tuple[PartitionLag, ...]
    """The commands topic, per partition it owns."""
    stood_down: bool


@dataclass(frozen=True, slots=True)
class ProjectorGauges:
    """How far a projector is behind, sampled when it is scraped."""

    lag: tuple[PartitionLag, ...]
    """The runs topic, per partition."""
    stood_down: bool


class Metrics(Protocol):
    """What the runtime reports as it happens. Each call is O(1): implementations count,
    they do not look around."""

    def command(self, outcome: Outcome) -> None:
        """A command's outcome was committed."""
        ...

    def decision_continued(self, seconds: float) -> None:
        """From a decision's record timestamp to the commit of the run's continuation."""
        ...

    def committed(self, seconds: float) -> None:
        """One atomic log commit (a transaction on Kafka) took `seconds`."""
        ...

    def dead_lettered(self, count: int) -> None:
        """`count` records were committed to the dead-letter topic."""
        ...

    def step_abandoned(self) -> None:
        """A step could not commit (its batch is read again)."""
        ...

    def log_unavailable(self) -> None:
        """A poll found the log away (the process waits and tries again)."""
        ...

    def restored(self, seconds: float, events: int) -> None:
        """A partition's runs were rebuilt from the log."""
        ...

    def projected(self, events: int, errors: int, seconds: float) -> None:
        """The projector applied a batch: `events` rows' worth, `errors` unusable records."""
        ...

    def worker_gauges(self, gauges: WorkerGauges) -> None:
        """A worker's state, sampled at a scrape (not on the hot path)."""
        ...

    def projector_gauges(self, gauges: ProjectorGauges) -> None:
        """A projector's state, sampled at a scrape (not on the hot path)."""
        ...


class NoMetrics:
    """The default: nothing is counted."""

    def command(self, outcome: Outcome) -> None:
        pass

    def decision_continued(self, seconds: float) -> None:
        pass

    def committed(self, seconds: float) -> None:
        pass

    def dead_lettered(self, count: int) -> None:
        pass

    def step_abandoned(self) -> None:
        pass

    def log_unavailable(self) -> None:
        pass

    def restored(self, seconds: float, events: int) -> None:
        pass

    def projected(self, events: int, errors: int, seconds: float) -> None:
        pass

    def worker_gauges(self, gauges: WorkerGauges) -> None:
        pass

    def projector_gauges(self, gauges: ProjectorGauges) -> None:
        pass


NO_METRICS: Final = NoMetrics()


class Span(Protocol):
    """One unit of work in a trace; `context` is what the records it causes carry."""

    @property
    def context(self) -> TraceContext: ...

    def fail(self, reason: str) -> None: ...

    def end(self) -> None: ...


class Tracer(Protocol):
    def start(
        self, name: str, parent: TraceContext | None, attributes: Mapping[str, str | int]
    ) -> Span:
        """A span, child of `parent` (a new trace when None)."""
        ...


@dataclass(frozen=True)
class Telemetry:
    """What a process reports to. The default reports nothing and traces nothing (a
    command's trace context is still carried onto what it causes)."""

    metrics: Metrics = field(default=NO_METRICS)
    tracer: Tracer | None = None
