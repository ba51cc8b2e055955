"""The OpenTelemetry adapter makes each command a span, child of the trace context its record
carried, whose context the records it causes carry; without an exporter it is not used."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from countersign.otel import OtelTracer, tracing_from_env
from engine.core.trace_context import TraceContext
from engine.log.port import Record
from engine.runtime.observing import Observer, StepReport
from engine.telemetry import Telemetry

PARENT = TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1, b"v=1")


def _tracer() -> tuple[OtelTracer, InMemorySpanExporter]:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    return OtelTracer(provider), exported


def _record(headers: tuple[tuple[str, bytes], ...]) -> Record:
    return Record("p.commands", 2, 41, "run-1", b"x", 1_000, headers)


def test_a_commands_span_is_a_child_of_its_traceparent_and_its_effects_carry_the_span() -> None:
    tracer, exported = _tracer()
    observer = Observer(Telemetry(tracer=tracer))
    report = StepReport()
    observer.command(report, _record(PARENT.headers()))
    carried = report.trace
    observer.handled(report)
    observer.finished(report)
    (span,) = exported.get_finished_spans()
    assert span.kind is SpanKind.CONSUMER
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == PARENT.span_id
    assert format(span.context.trace_id, "032x") == PARENT.trace_id
    assert span.attributes is not None
    assert span.attributes["messaging.kafka.offset"] == 41
    assert carried[0] == (
        "traceparent",
        f"00-{PARENT.trace_id}-{span.context.span_id:016x}-01".encode(),
    )
    assert ("tracestate", b"v=1") in carried


def test_without_a_traceparent_the_span_starts_a_trace_and_an_abandoned_step_fails_it() -> None:
    tracer, exported = _tracer()
    observer = Observer(Telemetry(tracer=tracer))
    report = StepReport()
    observer.command(report, _record(()))
    observer.handled(report)
    observer.finished(report, "step abandoned")
    (span,) = exported.get_finished_spans()
    assert span.parent is None
    assert span.status.status_code is StatusCode.ERROR


def test_no_exporter_configured_means_no_tracer() -> None:
    assert tracing_from_env({}, "countersign-worker") is None
    assert (
        tracing_from_env({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"}, "w")
        is None
    )
    console = tracing_from_env({"OTEL_TRACES_EXPORTER": "console"}, "countersign-worker")
    assert console is not None
    console.shutdown()


def test_opentelemetry_is_not_loaded_unless_tracing_is_on() -> None:
    import json
    import subprocess
    import sys

    probe = (
        "import json, sys, os; os.environ.pop('OTEL_TRACES_EXPORTER', None); "
        "import countersign.cli, countersign.observed, countersign.otel; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('opentelemetry'))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout) == []
