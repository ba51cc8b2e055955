"""The `Tracer` port on OpenTelemetry (the only module importing it; I/O: spans are exported).

Used only when an exporter is configured (`tracing_from_env`): the standard
`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (OTLP over HTTP; the
`otel` extra installs it), or `OTEL_TRACES_EXPORTER=console`. OpenTelemetry is imported
lazily, when tracing is switched on: without it, nothing here is loaded. Each command
handled is one CONSUMER span, child of the `traceparent` its record carries; the records it
causes carry the span's context (`engine.runtime.observing`).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, cast

from engine.core.trace_context import TraceContext
from engine.telemetry import Span, Tracer

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span as OtelSpan

__all__ = ["OtelTracer", "tracing_from_env"]


class _Span:
    def __init__(self, span: OtelSpan) -> None:
        from opentelemetry.trace import format_span_id, format_trace_id

        self._span = span
        context = span.get_span_context()
        self.context = TraceContext(
            format_trace_id(context.trace_id),
            format_span_id(context.span_id),
            int(context.trace_flags),
            context.trace_state.to_header().encode() if context.trace_state else b"",
        )

    def fail(self, reason: str) -> None:
        from opentelemetry.trace import Status, StatusCode

        self._span.set_status(Status(StatusCode.ERROR, reason))

    def end(self) -> None:
        self._span.end()


class OtelTracer:
    """`engine.telemetry.Tracer` over an OpenTelemetry tracer provider."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer("countersign")

    def start(
        self, name: str, parent: TraceContext | None, attributes: Mapping[str, str | int]
    ) -> Span:
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
        from opentelemetry.trace.span import TraceState

        context = None
        if parent is not None:
            remote = SpanContext(
                int(parent.trace_id, 16),
                int(parent.span_id, 16),
                is_remote=True,
                trace_flags=TraceFlags(parent.flags),
                trace_state=TraceState.from_header([parent.state.decode()]),
            )
            context = trace.set_span_in_context(NonRecordingSpan(remote))
        span = self._tracer.start_span(
            name, context=context, kind=SpanKind.CONSUMER, attributes=dict(attributes)
        )
        return _Span(span)

    def shutdown(self) -> None:
        """Export what is left (at the process's end)."""
        self.provider.shutdown()


def tracer(exporter: SpanExporter, service: str) -> OtelTracer:
    """A tracer exporting in batches to `exporter`, naming the service `service`."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return OtelTracer(provider)


def tracing_from_env(environ: Mapping[str, str], service: str) -> OtelTracer | None:
    """A tracer when the environment configures an exporter, else None (no spans)."""
    if environ.get("OTEL_TRACES_EXPORTER") == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return tracer(ConsoleSpanExporter(), service)
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    if not (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    ):
        return None
    # The exporter package comes with the `otel` extra; it reads the endpoint itself.
    module = importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    exporter = cast("type[SpanExporter]", module.OTLPSpanExporter)
    return tracer(exporter(), service)


_: type[Tracer] = OtelTracer  # the port, checked
