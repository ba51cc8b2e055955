"""W3C Trace Context in Kafka headers: `traceparent` (and `tracestate`) read and written. Pure.

A command's record may carry a `traceparent` header (any client can set it: it is the W3C
format, https://www.w3.org/TR/trace-context/); the worker puts the trace context on every
record the command causes — the run's events, the notices, a dead letter — so a trace
follows a decision from the system that sent it to the run it continued and to whoever
reads the approvals topic. A header is input like any other: one that is not exactly the
format (too long, not lower-case hex, an all-zero id, version ff) is ignored, never copied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["TRACEPARENT", "TRACESTATE", "TraceContext", "trace_context"]

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_MAX_TRACEPARENT = 512
"""A later version may append fields; past this it is not a trace context but a payload."""
_MAX_TRACESTATE = 512
"""The spec's 32 list members fit; a longer tracestate is dropped (the traceparent stays)."""
_PARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_STATE = re.compile(rb"[\x20-\x7e]*")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str
    """32 lower-case hex digits, not all zero."""
    span_id: str
    """16 lower-case hex digits, not all zero: the span that caused the record."""
    flags: int = 1
    """Bit 0: sampled."""
    state: bytes = b""
    """The vendors' `tracestate`, carried as it came (bounded, printable ASCII)."""

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags:02x}"

    def headers(self) -> tuple[tuple[str, bytes], ...]:
        parent = (TRACEPARENT, self.traceparent.encode())
        return (parent, (TRACESTATE, self.state)) if self.state else (parent,)


def trace_context(headers: tuple[tuple[str, bytes], ...]) -> TraceContext | None:
    """The trace context `headers` carry, or None (absent, or not the W3C format)."""
    parent = state = None
    for name, value in headers:
        if name == TRACEPARENT:
            if parent is not None:
                return None  # two of them: which one is the truth? Neither.
            parent = value
        elif name == TRACESTATE:
            state = value
    if parent is None or len(parent) > _MAX_TRACEPARENT:
        return None
    match = _PARENT.fullmatch(parent)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == b"ff" or (version == b"00" and rest is not None):
        return None  # ff is forbidden; version 00 has exactly four fields
    context = TraceContext(trace_id.decode(), span_id.decode(), int(flags, 16) & 0xFF)
    if context.trace_id == _ZERO_TRACE or context.span_id == _ZERO_SPAN:
        return None
    if state and len(state) <= _MAX_TRACESTATE and _STATE.fullmatch(state):
        return TraceContext(context.trace_id, context.span_id, context.flags, state)
    return context
