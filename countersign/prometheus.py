"""The `Metrics` port on prometheus_client (the only module importing it), and the text a
scrape of `/metrics` answers. In-process state only; no I/O of its own.

Each process keeps its own registry (not the library's global one), with the process
collector (CPU, memory, open files). Label children are bound once, so the hot path is a
dictionary look-up and an increment. docs/observability.md lists every metric.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from engine.core.census import RunCensus
from engine.telemetry import OUTCOMES, Outcome, PartitionLag, ProjectorGauges, WorkerGauges

__all__ = ["CONTENT_TYPE", "PrometheusMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
"""Seconds: a decision continues in milliseconds on a quiet worker, minutes behind a backlog."""
_COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_RESTORE_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_RUN_STATUSES = ("live", "running", "waiting", "in_doubt", "parked", "quarantined")


class PrometheusMetrics:
    """`engine.telemetry.Metrics` for one process, playing `roles` (worker, projector; both
    for `countersign dev`)."""

    def __init__(self, *roles: str) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # `_created`: noise
        self.registry = registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=registry)
        commands = Counter(
            "countersign_commands",
            "Commands handled and committed, by what became of them.",
            ["outcome"],
            registry=registry,
        )
        self._commands = {outcome: commands.labels(outcome) for outcome in OUTCOMES}
        self._continued = Histogram(
            "countersign_decision_continued_seconds",
            "From an accepted decision's record timestamp to the commit of its run going on.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self._commit = Histogram(
            "countersign_commit_seconds",
            "One atomic log commit of a step (a Kafka transaction).",
            buckets=_COMMIT_BUCKETS,
            registry=registry,
        )
        self._dead_letters = Counter(
            "countersign_dead_letters",
            "Records committed to the dead-letter topic.",
            registry=registry,
        )
        self._abandoned = Counter(
            "countersign_steps_abandoned",
            "Steps that could not commit (their batch is read again).",
            registry=registry,
        )
        self._log_away = Counter(
            "countersign_log_unavailable",
            "Polls that found the log away (the process retries).",
            registry=registry,
        )
        self._restore = Histogram(
            "countersign_restore_seconds",
            "Rebuilding one partition's runs from the log.",
            buckets=_RESTORE_BUCKETS,
            registry=registry,
        )
        self._restored_events = Counter(
            "countersign_restored_events", "Run events read by restores.", registry=registry
        )
        runs = Gauge(
            "countersign_runs",
            "Runs this worker holds, by status (live counts all not finished).",
            ["status"],
            registry=registry,
        )
        self._runs = {status: runs.labels(status) for status in _RUN_STATUSES}
        self._consumer_lag = _lag_gauges(registry, "consumer", "command", "read", "owned partition")
        self._projector_lag = _lag_gauges(
            registry, "projector", "run event", "projected", "partition"
        )
        self._projected = Counter(
            "countersign_projected_events", "Run events the projector applied.", registry=registry
        )
        self._projection_errors = Counter(
            "countersign_projection_errors",
            "Records the projector stored as errors.",
            registry=registry,
        )
        self._projection_batch = Histogram(
            "countersign_projection_batch_seconds",
            "Applying one batch to PostgreSQL.",
            buckets=_COMMIT_BUCKETS,
            registry=registry,
        )
        self._stood_down = Gauge(
            "countersign_stood_down",
            "1 when the process stood down: the log holds records of a newer release.",
            ["role"],
            registry=registry,
        )
        for role in roles:
            self._stood_down.labels(role).set(0)

    # -- as it happens ----------------------------------------------------------------------

    def command(self, outcome: Outcome) -> None:
        self._commands[outcome].inc()

    def decision_continued(self, seconds: float) -> None:
        self._continued.observe(seconds)

    def committed(self, seconds: float) -> None:
        self._commit.observe(seconds)

    def dead_lettered(self, count: int) -> None:
        self._dead_letters.inc(count)

    def step_abandoned(self) -> None:
        self._abandoned.inc()

    def log_unavailable(self) -> None:
        self._log_away.inc()

    def restored(self, seconds: float, events: int) -> None:
        self._restore.observe(seconds)
        self._restored_events.inc(events)

    def projected(self, events: int, errors: int, seconds: float) -> None:
        self._projected.inc(events)
        self._projection_errors.inc(errors)
        self._projection_batch.observe(seconds)

    # -- sampled at a scrape ----------------------------------------------------------------

    def worker_gauges(self, gauges: WorkerGauges) -> None:
        self._set_runs(gauges.runs)
        _set_lag(self._consumer_lag, gauges.lag)
        self._stood_down.labels("worker").set(int(gauges.stood_down))

    def projector_gauges(self, gauges: ProjectorGauges) -> None:
        _set_lag(self._projector_lag, gauges.lag)
        self._stood_down.labels("projector").set(int(gauges.stood_down))

    def exposition(self) -> bytes:
        """The text format a Prometheus scrape reads."""
        return generate_latest(self.registry)

    def _set_runs(self, census: RunCensus) -> None:
        for status, gauge in self._runs.items():
            gauge.set(getattr(census, status))


def _lag_gauges(
    registry: CollectorRegistry, who: str, what: str, done: str, per: str
) -> tuple[Gauge, Gauge]:
    """`countersign_<who>_lag_records` and `_seconds`, labelled by partition."""
    records = Gauge(
        f"countersign_{who}_lag_records", f"{what.capitalize()}s not {done} yet, per {per}.",
        ["partition"], registry=registry,
    )  # fmt: skip
    seconds = Gauge(
        f"countersign_{who}_lag_seconds", f"Age of the oldest {what} not {done} yet, per {per}.",
        ["partition"], registry=registry,
    )  # fmt: skip
    return records, seconds


def _set_lag(gauges: tuple[Gauge, Gauge], lags: tuple[PartitionLag, ...]) -> None:
    """Replace the per-partition series: a partition that moved away stops being reported."""
    records, seconds = gauges
    records.clear()
    seconds.clear()
    for lag in lags:
        label = str(lag.partition)
        records.labels(label).set(lag.records)
        seconds.labels(label).set(lag.seconds)
