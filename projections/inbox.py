"""The approvals inbox: requests as a person sees them, with their age and SLA state. Pure.

An open request is `on_time`, `due_soon` (its deadline is within the due-soon window),
`overdue` (past it) or has `no_deadline`; a closed one `met` its deadline or `missed` it.
`cs_v_inbox` computes the same column in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, TypeAlias

from events.json import Json, JsonObject, canonical_json
from projections.rows import InterruptRow

SlaState: TypeAlias = Literal["on_time", "due_soon", "overdue", "no_deadline", "met", "missed"]
DEFAULT_DUE_SOON = timedelta(hours=1)


def sla_state(request: InterruptRow, now: datetime, due_soon: timedelta) -> SlaState:
    deadline = request.deadline
    if deadline is None:
        return "no_deadline"
    if request.status != "open":
        closed = request.closed_at
        return "met" if closed is not None and closed <= deadline else "missed"
    if deadline <= now:
        return "overdue"
    return "due_soon" if deadline <= now + due_soon else "on_time"


def deciders(request: InterruptRow) -> tuple[str, ...]:
    """Who may decide at the request's current level, as people read it (as the engine
    judges: whoever started the run may answer its questions, not approve its calls)."""
    listed = tuple(a for a in request.approvers if a not in request.excluded)
    if listed:
        return listed
    if request.requested_by and request.kind != "question":
        return (f"anyone but {request.requested_by}",)
    return ("anyone",)


def at_deadline(request: InterruptRow, default: Json = None) -> str:
    """What the deadline does to the request, as the engine carries it out (with the safety
    rules: approving on timeout only for low risk; nobody to escalate to rejects). `default`
    is a question's default answer, when the caller has its request at hand."""
    if request.deadline is None:
        return "nothing: it has no deadline"
    action = request.on_timeout
    if request.kind == "question":
        if action == "respond":  # the engine sets it only with a default
            shown = "" if default is None else f": {canonical_json(default)}"
            return f"answered with its default{shown}"
        if action == "escalate":
            return "asked again of the next level"
        return "no answer: the agent is told the question expired"
    if action == "approve" and request.risk == "low":
        return "approved (low risk)"
    if action == "escalate":
        return "escalated to the next level"
    return "rejected: the call does not run"


def role_names(roles: tuple[str, ...]) -> tuple[str, ...]:
    """`support` and `role:support` both mean the role `support`: as approver entries."""
    return tuple(f"role:{r.removeprefix('role:')}" for r in roles)


@dataclass(frozen=True, kw_only=True, slots=True)
class InboxItem:
    """One request in the inbox: the request, its SLA state and age when it was read."""

    request: InterruptRow
    sla: SlaState
    age_s: float
    """Seconds since it was raised (until it closed, for a closed one)."""
    deciders: tuple[str, ...]

    @staticmethod
    def of(request: InterruptRow, now: datetime, due_soon: timedelta) -> InboxItem:
        until = request.closed_at or now
        return InboxItem(
            request=request,
            sla=sla_state(request, now, due_soon),
            age_s=max(0.0, (until - request.raised_at).total_seconds()),
            deciders=deciders(request),
        )

    def to_json(self) -> JsonObject:
        r = self.request
        return {
            "interrupt_id": r.interrupt_id,
            "run_id": r.run_id,
            "agent": r.agent,
            "requested_by": r.requested_by,
            "status": r.status,
            "what": {"title": r.title, "kind": r.kind, "tool": r.tool, "args": r.args},
            "why": r.reasoning,
            "impact": r.impact,
            "risk": r.risk,
            "amount": r.amount,
            "policy": r.policy,
            "confidence": r.confidence,
            "level": r.level,
            "levels": r.levels,
            "quorum": r.quorum,
            "votes": r.votes,
            "may_decide": list(self.deciders),
            "allowed": list(r.allowed),
            "raised_at": r.raised_at.isoformat(),
            "deadline": None if r.deadline is None else r.deadline.isoformat(),
            "on_timeout": r.on_timeout,
            "at_deadline": at_deadline(r),
            "age_s": round(self.age_s, 3),
            "sla": self.sla,
            "outcome": None
            if r.status == "open"
            else {
                "status": r.status,
                "decided_by": r.decided_by,
                "kind": r.decision_kind,
                "reason": r.reason,
                "closed_at": None if r.closed_at is None else r.closed_at.isoformat(),
                "edited_args": r.edited_args,
            },
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class TeamOverdue:
    """Overdue open requests of one approver entry (a principal or `role:<team>`)."""

    team: str
    overdue: int
    oldest_deadline: datetime
    oldest_raised_at: datetime

    def to_json(self) -> JsonObject:
        return {
            "team": self.team,
            "overdue": self.overdue,
            "oldest_deadline": self.oldest_deadline.isoformat(),
            "oldest_raised_at": self.oldest_raised_at.isoformat(),
        }
