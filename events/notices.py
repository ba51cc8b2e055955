"""Messages on the approvals topic: requests going out, outcomes of decisions coming back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from events.approval import ApprovalRequest


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


Notice: TypeAlias = ApprovalRequested | DecisionOutcome
NOTICE_TYPES: tuple[type[Notice], ...] = (ApprovalRequested, DecisionOutcome)
