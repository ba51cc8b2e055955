"""Decision statistics: the facts they count and how they count them. Pure.

A `DecisionFact` is one request and how it ended (a row of `cs_v_decisions`); a `GateFact`
one policy verdict on a tool call (`cs_v_gates`). `tally` counts them per agent, tool, risk,
approver or day exactly as the `cs_v_stats` view does in SQL (the store reads the view; this
is the reference the view is tested against, and what recommendations build on).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypeAlias

from events.json import JsonObject

Dimension: TypeAlias = Literal["agent", "tool", "risk", "approver", "day"]
DIMENSIONS: tuple[Dimension, ...] = ("agent", "tool", "risk", "approver", "day")
DECIDED = frozenset({"approved", "edited", "rejected", "responded"})
"""Statuses a person set (the others: open, expired, withdrawn)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class DecisionFact:
    """One request and how it ended."""

    interrupt_id: str
    run_id: str
    call: int
    agent: str
    kind: str
    tool: str
    args: JsonObject | None
    edited_args: JsonObject | None
    risk: str
    amount: float | None
    confidence: float | None
    policy: str
    status: str
    decided_by: str | None
    reason: str | None
    raised_at: datetime
    closed_at: datetime | None
    escalated: bool = False

    @property
    def decision_s(self) -> float | None:
        """How long a person took; None unless a person decided."""
        if self.status not in DECIDED or self.closed_at is None:
            return None
        return (self.closed_at - self.raised_at).total_seconds()

    @property
    def day(self) -> str:
        return self.raised_at.astimezone(UTC).strftime("%Y-%m-%d")


@dataclass(frozen=True, kw_only=True, slots=True)
class GateFact:
    """One policy verdict on a tool call (`round` 1: as the agent made it)."""

    run_id: str
    call: int
    round: int
    at: datetime
    agent: str
    tool: str
    action: str
    policy: str
    risk: str
    confidence: float | None = None

    @property
    def auto(self) -> bool:
        """Let through without asking anyone."""
        return self.round == 1 and self.action in ("auto", "notify")


@dataclass(frozen=True, kw_only=True, slots=True)
class StatRow:
    """Counts for one key of one dimension; a row of `cs_v_stats`."""

    dimension: Dimension
    key: str
    requests: int = 0
    open: int = 0
    approved: int = 0
    edited: int = 0
    rejected: int = 0
    responded: int = 0
    expired: int = 0
    escalated: int = 0
    withdrawn: int = 0
    auto_approved: int = 0
    approval_rate: float | None = None
    """approved / (approved + edited + rejected); None before any such decision."""
    median_s: float | None = None
    p90_s: float | None = None

    @property
    def decisions(self) -> int:
        return self.approved + self.edited + self.rejected

    def to_json(self) -> JsonObject:
        return {
            "dimension": self.dimension,
            "key": self.key,
            "requests": self.requests,
            "open": self.open,
            "approved": self.approved,
            "edited": self.edited,
            "rejected": self.rejected,
            "responded": self.responded,
            "expired": self.expired,
            "escalated": self.escalated,
            "withdrawn": self.withdrawn,
            "auto_approved": self.auto_approved,
            "approval_rate": self.approval_rate,
            "median_s": self.median_s,
            "p90_s": self.p90_s,
        }


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks (PostgreSQL's `percentile_cont`)."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _key_of(dimension: Dimension) -> Callable[[DecisionFact], str | None]:
    match dimension:
        case "agent":
            return lambda f: f.agent
        case "tool":
            return lambda f: f.tool
        case "risk":
            return lambda f: f.risk
        case "approver":
            return lambda f: f.decided_by if f.decision_s is not None else None
        case "day":
            return lambda f: f.day


def _gate_key(dimension: Dimension, gate: GateFact) -> str | None:
    match dimension:
        case "agent":
            return gate.agent
        case "tool":
            return gate.tool
        case "risk":
            return gate.risk
        case "approver":
            return None
        case "day":
            return gate.at.astimezone(UTC).strftime("%Y-%m-%d")


def tally(
    decisions: Iterable[DecisionFact], gates: Iterable[GateFact], by: Dimension
) -> list[StatRow]:
    """Statistics per key of `by`, sorted by key."""
    key_of = _key_of(by)
    groups: dict[str, list[DecisionFact]] = {}
    for fact in decisions:
        key = key_of(fact)
        if key is not None:
            groups.setdefault(key, []).append(fact)
    auto: dict[str, int] = {}
    for gate in gates:
        key = _gate_key(by, gate)
        if gate.auto and key is not None:
            auto[key] = auto.get(key, 0) + 1
    return [
        _row(by, key, groups.get(key, []), auto.get(key, 0)) for key in sorted({*groups, *auto})
    ]


def _row(by: Dimension, key: str, facts: Sequence[DecisionFact], auto: int) -> StatRow:
    count: dict[str, int] = {}
    for fact in facts:
        status = "escalated" if fact.escalated else fact.status
        count[status] = count.get(status, 0) + 1
    decided = count.get("approved", 0) + count.get("edited", 0) + count.get("rejected", 0)
    times = [t for f in facts if (t := f.decision_s) is not None]
    return StatRow(
        dimension=by,
        key=key,
        requests=len(facts),
        open=count.get("open", 0),
        approved=count.get("approved", 0),
        edited=count.get("edited", 0),
        rejected=count.get("rejected", 0),
        responded=count.get("responded", 0),
        expired=count.get("expired", 0),
        escalated=count.get("escalated", 0),
        withdrawn=count.get("withdrawn", 0),
        auto_approved=auto,
        approval_rate=count.get("approved", 0) / decided if decided else None,
        median_s=percentile(times, 0.5),
        p90_s=percentile(times, 0.9),
    )
