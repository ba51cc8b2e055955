"""Events as people and SQL read them: a JSON payload for the events index, a one-line summary.

Pure functions of one event payload.
"""

from __future__ import annotations

import dataclasses
from typing import Any, assert_never

from events.approval import ApprovalRequest
from events.json import Json, JsonObject, canonical_json
from events.run_events import (
    DecisionAccepted,
    DecisionHeld,
    DecisionRejected,
    GateEvaluated,
    InterruptEscalated,
    InterruptExpired,
    InterruptRaised,
    ModelCalled,
    QuarantineLifted,
    RunCancelled,
    RunCompleted,
    RunEventPayload,
    RunFailed,
    RunParked,
    RunQuarantined,
    RunResumed,
    RunStarted,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallScheduled,
    ValueRecorded,
    VoteRecorded,
)

_PLANS: dict[type[Any], tuple[tuple[str, str], ...]] = {}


def field_plan(cls: type[Any]) -> tuple[tuple[str, str], ...]:
    """Per field: "request" (a nested ApprovalRequest), "tuple" (to a list) or "" (as is)."""
    plan = _PLANS.get(cls)
    if plan is None:
        steps = []
        for f in dataclasses.fields(cls):
            spelled = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
            kind = "request" if "ApprovalRequest" in spelled else ""
            steps.append((f.name, "tuple" if spelled.startswith("tuple") else kind))
        plan = _PLANS[cls] = tuple(steps)
    return plan


def payload_json(payload: RunEventPayload | ApprovalRequest) -> JsonObject:
    """The payload's fields as a JSON object (nested requests as objects, tuples as lists)."""
    out: JsonObject = {}
    for name, kind in field_plan(type(payload)):
        value = getattr(payload, name)
        if kind == "tuple":
            value = list(value)
        elif kind == "request" and value is not None:
            value = payload_json(value)
        out[name] = value
    return out


def short(value: Json, limit: int = 80) -> str:
    """Canonical JSON, cut to `limit` characters with an ellipsis."""
    text = value if isinstance(value, str) else canonical_json(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summarize(payload: RunEventPayload) -> str:
    """A one-line description of an event for a run's timeline."""
    match payload:
        case RunStarted():
            if payload.forked_from:  # the origin first: a clipped line still shows it
                return (
                    f"{payload.tool_mode} fork of {payload.forked_from}@{payload.forked_at} by "
                    f"{payload.forked_by}, for {payload.requested_by} with {short(payload.input)}"
                )
            return f"started by {payload.requested_by} with {short(payload.input)}"
        case ModelCalled():
            return f"call {payload.call}: model answered {short(payload.response, 60)}"
        case ToolCallScheduled():
            return f"call {payload.call}: {payload.tool}({short(payload.args, 60)}) scheduled"
        case ToolCallCompleted():
            return f"call {payload.call}: returned {short(payload.result, 60)}"
        case ToolCallFailed():
            return f"call {payload.call}: failed with {payload.error_type}: {payload.error}"
        case InterruptRaised():
            request = payload.request
            return (
                f"call {payload.call}: {request.kind} interrupt {payload.interrupt_id}: "
                f"{request.title} (risk {request.risk})"
            )
        case DecisionAccepted():
            because = f": {payload.reason}" if payload.reason else ""
            return f"{payload.kind} by {payload.decided_by} accepted{because}"
        case DecisionRejected():
            return f"{payload.kind} by {payload.decided_by} refused: {payload.reason}"
        case InterruptExpired():
            return f"interrupt {payload.interrupt_id} expired: {payload.action}"
        case InterruptEscalated():
            to = ", ".join(payload.approvers) or "anyone"
            return f"interrupt {payload.interrupt_id} escalated to level {payload.level} ({to})"
        case ValueRecorded():
            return f"call {payload.call}: {payload.kind} = {short(payload.value, 60)}"
        case RunCompleted():
            return f"completed with {short(payload.output)}"
        case RunFailed():
            return f"failed with {payload.error_type}: {payload.error}"
        case RunCancelled():
            return f"cancelled by {payload.cancelled_by}: {payload.reason}"
        case RunParked():
            return (
                f"parked at call {payload.call}: {payload.reason}"
                f" (recorded {payload.expected or '-'}, now {payload.actual or '-'})"
            )
        case RunResumed():
            return f"resumed by {payload.resumed_by}: {payload.reason}"
        case GateEvaluated():
            return (
                f"call {payload.call}: {payload.tool} gated {payload.action} by {payload.policy}"
                f"{f' rule {payload.rule}' if payload.rule else ''} (risk {payload.risk})"
            )
        case VoteRecorded():
            return (
                f"approval by {payload.decided_by} for {payload.interrupt_id}:"
                f" {payload.votes} of {payload.quorum}"
            )
        case DecisionHeld():
            return f"{payload.kind} by {payload.decided_by} held for {payload.interrupt_id}"
        case RunQuarantined():
            return f"quarantined: {payload.reason}"
        case QuarantineLifted():
            return f"quarantine lifted by {payload.lifted_by}: {payload.reason}"
        case _:  # pragma: no cover - the union is closed; mypy checks every arm is here
            assert_never(payload)
