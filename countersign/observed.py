"""The telemetry of a long-running process, as its command line and environment ask (I/O).

`--health-port` starts the probe port (`countersign.health_server`) with Prometheus metrics
(`countersign.prometheus`); without it nothing is counted (the no-op metrics). Spans are
made only when the environment configures an OpenTelemetry exporter (`countersign.otel`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

from countersign.health_server import Probes, serving
from engine.telemetry import NO_METRICS, Metrics, Telemetry

__all__ = ["Observed", "observed"]


@dataclass(frozen=True)
class Observed:
    telemetry: Telemetry
    probes: Probes
    port: int | None
    """The probe port bound, or None (no `--health-port`)."""

    @property
    def metrics(self) -> Metrics:
        return self.telemetry.metrics


@contextlib.asynccontextmanager
async def observed(
    host: str, port: int | None, *roles: str, service: str = ""
) -> AsyncIterator[Observed]:
    """Telemetry for a process playing `roles` (worker, projector); the probe port when
    `port`. Spans name the service `countersign-<service or the role>`."""
    from countersign.otel import tracing_from_env

    tracer = tracing_from_env(os.environ, f"countersign-{service or roles[0]}")
    try:
        if port is None:
            yield Observed(Telemetry(NO_METRICS, tracer), Probes(None, ""), None)
            return
        from countersign.prometheus import CONTENT_TYPE, PrometheusMetrics

        metrics = PrometheusMetrics(*roles)
        probes = Probes(metrics.exposition, CONTENT_TYPE)
        async with serving(probes, host, port) as bound:
            yield Observed(Telemetry(metrics, tracer), probes, bound)
    finally:
        if tracer is not None:
            tracer.shutdown()
