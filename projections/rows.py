"""The rows of the core read models, as our own frozen dataclasses.

The fold produces them, the store writes and reads them, the query API returns them. Each has
`to_json()` for the CLI's `--json` output. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeAlias

from events.json import Json, JsonObject

RunStatus: TypeAlias = Literal["running", "waiting", "parked", "completed", "failed", "cancelled"]
RUN_STATUSES: tuple[RunStatus, ...] = (
    "running",
    "waiting",
    "parked",
    "completed",
    "failed",
    "cancelled",
)
FINISHED_STATUSES: frozenset[RunStatus] = frozenset({"parked", "completed", "failed", "cancelled"})

InterruptStatus: TypeAlias = Literal[
    "open", "approved", "edited", "rejected", "responded", "expired", "withdrawn"
]
"""`withdrawn`: the run finished (cancelled, failed, parked...) while the interrupt was open; a
parked run that is resumed opens its withdrawn interrupts again."""

AuditAction: TypeAlias = Literal[
    "gate_evaluated",
    "interrupt_raised",
    "decision_accepted",
    "decision_refused",
    "interrupt_expired",
    "interrupt_escalated",
    "vote_recorded",
    "decision_held",
    "run_parked",
    "run_cancelled",
    "run_quarantined",
    "quarantine_lifted",
    "run_resumed",
]
AUDIT_ACTIONS: tuple[AuditAction, ...] = (
    "gate_evaluated",
    "interrupt_raised",
    "decision_accepted",
    "decision_refused",
    "interrupt_expired",
    "interrupt_escalated",
    "vote_recorded",
    "decision_held",
    "run_parked",
    "run_cancelled",
    "run_quarantined",
    "quarantine_lifted",
    "run_resumed",
)
QUARANTINE_ACTOR = "system:integrity"
"""Who the audit names for a quarantine: the restore's chain check, not a person."""


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True, kw_only=True, slots=True)
class EventRow:
    """One row of the events index (`cs_events`): an event, where it sits in the log, its hash."""

    run_id: str
    seq: int
    event_id: str
    type: str
    occurred_at: datetime
    agent: str
    agent_version: str
    causation_id: str
    correlation_id: str
    payload: JsonObject
    partition: int
    offset: int
    hash: str
    prev_hash: str
    raw: bytes

    def to_json(self) -> JsonObject:
        """Everything but the raw bytes (use `raw` itself to export or verify)."""
        return {
            "run_id": self.run_id,
            "seq": self.seq,
            "event_id": self.event_id,
            "type": self.type,
            "occurred_at": _iso(self.occurred_at),
            "agent": self.agent,
            "agent_version": self.agent_version,
            "causation_id": self.causation_id,
            "correlation_id": self.correlation_id,
            "payload": self.payload,
            "partition": self.partition,
            "offset": self.offset,
            "hash": self.hash,
            "prev_hash": self.prev_hash,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class RunRow:
    """One run (`cs_runs`). `last_seq` is the highest seq projected; `updated_at` its time."""

    run_id: str
    agent: str
    agent_version: str
    requested_by: str
    status: RunStatus
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    last_seq: int
    open_interrupts: int
    input: Json
    output: Json
    error: str | None

    def to_json(self) -> JsonObject:
        return {
            "run_id": self.run_id,
            "agent": self.agent,
            "agent_version": self.agent_version,
            "requested_by": self.requested_by,
            "status": self.status,
            "started_at": _iso(self.started_at),
            "updated_at": _iso(self.updated_at),
            "finished_at": _iso(self.finished_at),
            "last_seq": self.last_seq,
            "open_interrupts": self.open_interrupts,
            "input": self.input,
            "output": self.output,
            "error": self.error,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class InterruptRow:
    """One interrupt (`cs_interrupts`), open or closed: the base of the approvals inbox."""

    interrupt_id: str
    run_id: str
    seq: int
    call: int
    kind: str
    title: str
    tool: str | None
    args: JsonObject | None
    risk: str
    amount: float | None
    policy: str
    approvers: tuple[str, ...]
    allowed: tuple[str, ...]
    deadline: datetime | None
    on_timeout: str
    level: int
    quorum: int
    votes: int
    status: InterruptStatus
    raised_at: datetime
    closed_at: datetime | None
    decided_by: str | None
    decision_kind: str | None
    reason: str | None
    agent: str = ""
    requested_by: str = ""
    """Who started the run: never among those who may decide (separation of duties)."""
    reasoning: str = ""
    impact: str = ""
    rule: str = ""
    confidence: float | None = None
    escalation: int = 0
    """0 for a request as first raised; n for the n-th escalation of the same call."""
    levels: int = 1
    excluded: tuple[str, ...] = ()
    edited_args: JsonObject | None = None
    """For an edit: the arguments that run instead of `args`."""

    def may_decide(self, principal: str, roles: tuple[str, ...] = ()) -> bool:
        """Whether `principal` (holding `roles`: `support` or `role:support`) may decide this
        request now: listed by name or role (an empty list means anyone), not excluded, and
        not the requester, unless it is a question (anyone listed may answer those, as the
        engine judges). The inbox query asks the same in SQL."""
        if principal in self.excluded:
            return False
        if principal == self.requested_by and self.kind != "question":
            return False
        if not self.approvers:
            return True
        names = {principal, *(f"role:{r.removeprefix('role:')}" for r in roles)}
        return any(a in names for a in self.approvers)

    def to_json(self) -> JsonObject:
        return {
            "interrupt_id": self.interrupt_id,
            "run_id": self.run_id,
            "seq": self.seq,
            "call": self.call,
            "kind": self.kind,
            "title": self.title,
            "tool": self.tool,
            "args": self.args,
            "risk": self.risk,
            "amount": self.amount,
            "policy": self.policy,
            "approvers": list(self.approvers),
            "allowed": list(self.allowed),
            "deadline": _iso(self.deadline),
            "on_timeout": self.on_timeout,
            "level": self.level,
            "quorum": self.quorum,
            "votes": self.votes,
            "status": self.status,
            "raised_at": _iso(self.raised_at),
            "closed_at": _iso(self.closed_at),
            "decided_by": self.decided_by,
            "decision_kind": self.decision_kind,
            "reason": self.reason,
            "agent": self.agent,
            "requested_by": self.requested_by,
            "reasoning": self.reasoning,
            "impact": self.impact,
            "rule": self.rule,
            "confidence": self.confidence,
            "escalation": self.escalation,
            "levels": self.levels,
            "excluded": list(self.excluded),
            "edited_args": self.edited_args,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditRow:
    """One audit entry (`cs_audit`): who did what to which interrupt or run, when and why.

    Actions: a policy's verdict on a tool call (`gate_evaluated`: `kind` is its action, auto /
    notify / approve / escalate, `actor` is `policy:<name@version>`), an interrupt raised, a
    decision accepted or refused, a vote towards a quorum, a
    decision held for an interrupt not raised yet, an expiry, an escalation, a run parked or
    cancelled.

    `kind` is the decision kind for decisions and refusals, the timeout action for expiries and
    the request kind (tool / question / in_doubt) for raised interrupts. `diff` is set for edits:
    `{"changed": {k: {"from": a, "to": b}}, "added": {k: v}, "removed": {k: v}}` from the
    requested arguments to the ones that run. `detail` holds what is particular to an action
    (an escalation's level and approvers, a parked run's expected and actual calls). `id` is
    None until the row is stored.
    """

    id: int | None = None
    run_id: str
    seq: int
    at: datetime
    action: AuditAction
    interrupt_id: str | None = None
    decision_id: str | None = None
    actor: str
    tool: str | None = None
    kind: str | None = None
    reason: str | None = None
    policy: str | None = None
    risk: str | None = None
    amount: float | None = None
    args: JsonObject | None = None
    edited_args: JsonObject | None = None
    diff: JsonObject | None = None
    detail: JsonObject | None = None
    agent: str | None = None

    def to_json(self) -> JsonObject:
        return {
            "id": self.id,
            "run_id": self.run_id,
            "seq": self.seq,
            "at": _iso(self.at),
            "action": self.action,
            "interrupt_id": self.interrupt_id,
            "decision_id": self.decision_id,
            "actor": self.actor,
            "tool": self.tool,
            "kind": self.kind,
            "reason": self.reason,
            "policy": self.policy,
            "risk": self.risk,
            "amount": self.amount,
            "args": self.args,
            "edited_args": self.edited_args,
            "diff": self.diff,
            "detail": self.detail,
            "agent": self.agent,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class TimelineEntry:
    """One line of a run's timeline."""

    seq: int
    type: str
    occurred_at: datetime
    summary: str

    def to_json(self) -> JsonObject:
        return {
            "seq": self.seq,
            "type": self.type,
            "occurred_at": _iso(self.occurred_at),
            "summary": self.summary,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class ErrorRow:
    """A record the projection could not use (`cs_projection_errors`); never silently dropped."""

    projection: str
    topic: str
    partition: int
    offset: int
    reason: str
    raw: bytes
    recorded_at: datetime | None = None

    def to_json(self) -> JsonObject:
        return {
            "projection": self.projection,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "reason": self.reason,
            "raw_hex": self.raw[:256].hex(),
            "size": len(self.raw),
            "recorded_at": _iso(self.recorded_at),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredPosition:
    """Where a projection has read up to in one partition (`cs_projection_positions`), when
    the latest event it projected there happened, and when it last moved."""

    partition: int
    next_offset: int
    last_event_at: datetime | None
    updated_at: datetime | None
