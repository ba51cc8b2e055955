"""What a person (or another system) sees when an agent asks for a decision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from events.fields import json_field
from events.json import Json, JsonObject

DecisionKind: TypeAlias = Literal["approve", "edit", "reject", "respond"]
DECISION_KINDS: tuple[DecisionKind, ...] = ("approve", "edit", "reject", "respond")
RiskLevel: TypeAlias = Literal["low", "medium", "high", "critical"]
TimeoutAction: TypeAlias = Literal["reject", "escalate", "approve", "respond"]
"""What a deadline does: reject; escalate to `escalate_to`; approve (low risk only); or, for a
question whose answer schema has a `default`, respond with that default."""
GateAction: TypeAlias = Literal["auto", "notify", "approve", "escalate"]
RISK_LEVELS: tuple[RiskLevel, ...] = ("low", "medium", "high", "critical")


@dataclass(frozen=True, kw_only=True, slots=True)
class ApprovalRequest:
    """Everything needed to decide, and the decisions that are allowed.

    `kind` is "tool" for a gate in front of a tool call (args and digest say exactly what
    will run), "question" for an interrupt that asks for information (`respond`), or
    "in_doubt" when a non-idempotent tool may have run before a crash: approve re-runs it,
    respond supplies its result, reject gives up on it.

    Who may decide: `approvers` (principals, or `role:<name>` resolved through the app's
    directory; empty means anyone but the requester), minus `excluded` (who already approved
    an earlier level of the same call). `quorum` distinct approvals close a request (k-of-n);
    `level` of `levels` says where in a multi-level approval this request stands. On timeout
    `on_timeout` applies; "escalate" hands the call to `escalate_to` for another `timeout_s`;
    "respond" (questions) answers with the answer schema's `default`.
    `args_schema` (tool requests) and `answer_schema` (questions) are what an edit or a
    response is validated against before it is accepted.
    """

    kind: Literal["tool", "question", "in_doubt"]
    title: str
    tool: str | None = None
    args: JsonObject | None = json_field(default=None)
    digest: str = ""
    reasoning: str = ""
    context: Json = json_field(default=None)
    impact: str = ""
    risk: RiskLevel = "medium"
    amount: float | None = None
    deadline_us: int | None = None
    on_timeout: TimeoutAction = "reject"
    allowed: tuple[DecisionKind, ...] = ("approve", "reject")
    approvers: tuple[str, ...] = ()
    answer_schema: Json = json_field(default=None)
    policy: str = ""
    rule: str = ""
    level: int = 1
    levels: int = 1
    quorum: int = 1
    excluded: tuple[str, ...] = ()
    escalate_to: tuple[str, ...] = ()
    escalation: int = 0
    timeout_s: float | None = None
    args_schema: Json = json_field(default=None)
    confidence: float | None = None
