"""Every table and view the store reads or writes, as one column map per row type. Pure.

The order of each map is the table's column order (`schema.sql`); the kinds are explained in
`store_columns.py`. Events keep their identifiers untouched (`Plain`): an identifier holding
NUL is refused by the server and the projector records that event as an error, rather than
indexing it under another name.
"""

from __future__ import annotations

from typing import get_args

from projections.inbox import TeamOverdue
from projections.rows import (
    AUDIT_ACTIONS,
    RUN_STATUSES,
    AuditRow,
    ErrorRow,
    EventRow,
    InterruptRow,
    InterruptStatus,
    RunRow,
    StoredPosition,
)
from projections.stats import DIMENSIONS, DecisionFact, GateFact, StatRow
from projections.store_columns import Bytea, Choice, Jsonb, Plain, Table, Text
from projections.whatif import CallFact

TEXT = Text()
ID = Plain("text")
INT = Plain("integer")
BIGINT = Plain("bigint")
FLOAT = Plain("double precision")
TIME = Plain("timestamptz")
BOOL = Plain("boolean")
JSON = Jsonb()
OBJECT = Jsonb("object")
STRINGS = Jsonb("strings")
OR_EMPTY = Text(null_as="")

EVENTS = Table(
    "cs_events",
    EventRow,
    {
        "run_id": ID,
        "seq": BIGINT,
        "event_id": ID,
        "type": ID,
        "occurred_at": TIME,
        "agent": ID,
        "agent_version": ID,
        "causation_id": ID,
        "correlation_id": ID,
        "payload": OBJECT,
        "partition": INT,
        "offset": BIGINT,
        "hash": ID,
        "prev_hash": ID,
        "raw": Bytea(),
    },
)

RUNS = Table(
    "cs_runs",
    RunRow,
    {
        "run_id": TEXT,
        "agent": TEXT,
        "agent_version": TEXT,
        "requested_by": TEXT,
        "status": Choice(RUN_STATUSES),
        "started_at": TIME,
        "updated_at": TIME,
        "finished_at": TIME,
        "last_seq": BIGINT,
        "open_interrupts": INT,
        "input": JSON,
        "output": JSON,
        "error": TEXT,
    },
)

INTERRUPTS = Table(
    "cs_interrupts",
    InterruptRow,
    {
        "interrupt_id": TEXT,
        "run_id": TEXT,
        "seq": BIGINT,
        "call": INT,
        "kind": TEXT,
        "title": TEXT,
        "tool": TEXT,
        "args": OBJECT,
        "risk": TEXT,
        "amount": FLOAT,
        "policy": TEXT,
        "approvers": STRINGS,
        "allowed": STRINGS,
        "deadline": TIME,
        "on_timeout": TEXT,
        "level": INT,
        "quorum": INT,
        "votes": INT,
        "status": Choice(get_args(InterruptStatus)),
        "raised_at": TIME,
        "closed_at": TIME,
        "decided_by": TEXT,
        "decision_kind": TEXT,
        "reason": TEXT,
        "agent": TEXT,
        "requested_by": TEXT,
        "reasoning": TEXT,
        "impact": TEXT,
        "rule": TEXT,
        "confidence": FLOAT,
        "escalation": INT,
        "levels": INT,
        "excluded": STRINGS,
        "edited_args": OBJECT,
    },
)

AUDIT = Table(
    "cs_audit",
    AuditRow,
    {
        "id": BIGINT,
        "run_id": TEXT,
        "seq": BIGINT,
        "at": TIME,
        "action": Choice(AUDIT_ACTIONS),
        "interrupt_id": TEXT,
        "decision_id": TEXT,
        "actor": TEXT,
        "tool": TEXT,
        "kind": TEXT,
        "reason": TEXT,
        "policy": TEXT,
        "risk": TEXT,
        "amount": FLOAT,
        "args": OBJECT,
        "edited_args": OBJECT,
        "diff": OBJECT,
        "detail": OBJECT,
        "agent": TEXT,
    },
    generated=("id",),
)

ERRORS = Table(
    "cs_projection_errors",
    ErrorRow,
    {
        "projection": ID,
        "topic": ID,
        "partition": INT,
        "offset": BIGINT,
        "reason": TEXT,
        "raw": Bytea(),
        "recorded_at": TIME,
    },
    generated=("recorded_at",),
)

POSITIONS = Table(
    "cs_projection_positions",
    StoredPosition,
    {"partition": INT, "next_offset": BIGINT, "last_event_at": TIME, "updated_at": TIME},
)

# -- the views of the SQL contract (read only) ---------------------------------------------------

DECISIONS = Table(
    "cs_v_decisions",
    DecisionFact,
    {
        "interrupt_id": TEXT,
        "run_id": TEXT,
        "call": INT,
        "agent": TEXT,
        "kind": TEXT,
        "tool": TEXT,
        "args": OBJECT,
        "edited_args": OBJECT,
        "risk": TEXT,
        "amount": FLOAT,
        "confidence": FLOAT,
        "policy": TEXT,
        "status": TEXT,
        "decided_by": TEXT,
        "reason": TEXT,
        "raised_at": TIME,
        "closed_at": TIME,
        "escalated": BOOL,
    },
)

GATES = Table(
    "cs_v_gates",
    GateFact,
    {
        "run_id": TEXT,
        "call": INT,
        "round": INT,
        "at": TIME,
        "agent": OR_EMPTY,
        "tool": OR_EMPTY,
        "action": TEXT,
        "policy": OR_EMPTY,
        "risk": OR_EMPTY,
        "confidence": FLOAT,
    },
)

CALLS = Table(
    "cs_v_calls",
    CallFact,
    {
        "run_id": TEXT,
        "call": INT,
        "at": TIME,
        "agent": OR_EMPTY,
        "tool": OR_EMPTY,
        "action": TEXT,
        "policy": OR_EMPTY,
        "risk": OR_EMPTY,
        "amount": FLOAT,
        "confidence": FLOAT,
        "args": OBJECT,
        "outcome": TEXT,
        "decided_by": TEXT,
        "decision_s": FLOAT,
    },
)

_COUNT = Plain("bigint")
STATS = Table(
    "cs_v_stats",
    StatRow,
    {
        "dimension": Choice(DIMENSIONS),
        "key": TEXT,
        "requests": _COUNT,
        "open": _COUNT,
        "approved": _COUNT,
        "edited": _COUNT,
        "rejected": _COUNT,
        "responded": _COUNT,
        "expired": _COUNT,
        "escalated": _COUNT,
        "withdrawn": _COUNT,
        "auto_approved": _COUNT,
        "approval_rate": FLOAT,
        "median_s": FLOAT,
        "p90_s": FLOAT,
    },
)

TEAMS = Table(
    "cs_interrupts",  # overdue requests grouped by approver entry (`overdue_by_team`)
    TeamOverdue,
    {"team": TEXT, "overdue": _COUNT, "oldest_deadline": TIME, "oldest_raised_at": TIME},
)
