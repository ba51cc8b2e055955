"""Messages on the approvals topic: requests going out, outcomes of decisions coming back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from events.approval import ApprovalRequest, RiskLevel
from events.fields import json_field
from events.json import Json, JsonObject


@dataclass(frozen=True, kw_only=True, slots=True)
class ApprovalRequested:
    run_id: str
    interrupt_id: str
    agent: str
    agent_version: str
    requested_by: str
    requested_at_us: int
    request: ApprovalRequest


@dataclass(frozen=True, kw_only=True, slots=True)
class DecisionOutcome:
    """Tells the system that sent a decision what became of it."""

    run_id: str
    interrupt_id: str
    decision_id: str
    accepted: bool
    kind: str
    decided_by: str
    reason: str
    decided_at_us: int
    status: str = ""
    """accepted | refused | held (judged when its interrupt is raised) | counted (one vote of
    a k-of-n quorum); empty in messages written before it existed: read `accepted`."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ActionNotified:
    """A tool ran without asking, and its policy says people should hear of it (NOTIFY)."""

    run_id: str
    agent: str
    agent_version: str
    requested_by: str
    call: int
    tool: str
    args: JsonObject = json_field()
    result: Json = json_field()
    policy: str
    rule: str
    reason: str
    risk: RiskLevel
    confidence: float | None
    notified_at_us: int


@dataclass(frozen=True, kw_only=True, slots=True)
class QuarantineNotified:
    """A run was quarantined: its log holds records that break its chain (`RunQuarantined`).
    An operator must cancel it or accept its chain (`countersign runs quarantined`)."""

    run_id: str
    agent: str
    agent_version: str
    reason: str
    strays: int
    notified_at_us: int


Notice: TypeAlias = ApprovalRequested | DecisionOutcome | ActionNotified | QuarantineNotified
NOTICE_TYPES: tuple[type[Notice], ...] = (
    ApprovalRequested,
    DecisionOutcome,
    ActionNotified,
    QuarantineNotified,
)
