"""Run events: the payloads appended to a run's stream, in past tense.

A run's history is these payloads wrapped in `EventEnvelope`s. `call` is the position of the
agent code's call through its run context (0, 1, 2, ... in program order); replay matches
recorded events to calls by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from events.approval import ApprovalRequest, DecisionKind
from events.fields import json_field
from events.json import Json, JsonObject


@dataclass(frozen=True, kw_only=True, slots=True)
class RunStarted:
    input: JsonObject = json_field()
    requested_by: str
    command_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelCalled:
    call: int
    request_digest: str
    request: Json = json_field()
    response: Json = json_field()


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolCallScheduled:
    """Written before a tool runs, so that a crash mid-call is visible to the next owner."""

    call: int
    tool: str
    args: JsonObject = json_field()
    args_digest: str
    idempotency_key: str
    idempotent: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolCallCompleted:
    call: int
    result: Json = json_field()


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolCallFailed:
    call: int
    error_type: str
    error: str


@dataclass(frozen=True, kw_only=True, slots=True)
class InterruptRaised:
    call: int
    interrupt_id: str
    request: ApprovalRequest


@dataclass(frozen=True, kw_only=True, slots=True)
class DecisionAccepted:
    interrupt_id: str
    decision_id: str
    kind: DecisionKind
    decided_by: str
    reason: str = ""
    edited_args: JsonObject | None = json_field(default=None)
    response: Json = json_field(default=None)


@dataclass(frozen=True, kw_only=True, slots=True)
class DecisionRejected:
    """A decision that was refused; the run is unchanged. `reason` says why."""

    interrupt_id: str
    decision_id: str
    kind: str
    decided_by: str
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class InterruptExpired:
    interrupt_id: str
    action: Literal["reject", "escalate", "approve"]


@dataclass(frozen=True, kw_only=True, slots=True)
class InterruptEscalated:
    interrupt_id: str
    level: int
    approvers: tuple[str, ...]
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ValueRecorded:
    """A non-deterministic value the agent asked for (now, uuid, random)."""

    call: int
    kind: Literal["now", "uuid", "random"]
    value: Json = json_field()


@dataclass(frozen=True, kw_only=True, slots=True)
class RunCompleted:
    output: Json = json_field()


@dataclass(frozen=True, kw_only=True, slots=True)
class RunFailed:
    error_type: str
    error: str


@dataclass(frozen=True, kw_only=True, slots=True)
class RunCancelled:
    cancelled_by: str
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class RunParked:
    """Replay diverged from the recorded history (or the run cannot go on); an operator must act."""

    reason: str
    call: int
    expected: str
    actual: str


RunEventPayload: TypeAlias = (
    RunStarted
    | ModelCalled
    | ToolCallScheduled
    | ToolCallCompleted
    | ToolCallFailed
    | InterruptRaised
    | DecisionAccepted
    | DecisionRejected
    | InterruptExpired
    | InterruptEscalated
    | ValueRecorded
    | RunCompleted
    | RunFailed
    | RunCancelled
    | RunParked
)

RUN_EVENT_TYPES: tuple[type[RunEventPayload], ...] = (
    RunStarted,
    ModelCalled,
    ToolCallScheduled,
    ToolCallCompleted,
    ToolCallFailed,
    InterruptRaised,
    DecisionAccepted,
    DecisionRejected,
    InterruptExpired,
    InterruptEscalated,
    ValueRecorded,
    RunCompleted,
    RunFailed,
    RunCancelled,
    RunParked,
)

TERMINAL_TYPES: tuple[type[RunEventPayload], ...] = (RunCompleted, RunFailed, RunCancelled)
