"""The central guard list and run-level escalation rules: which policies apply to a call.

A tool's own policy (from `@app.tool(policy=...)`) and every guard whose pattern matches the
tool name (`fnmatch`: "refund", "payments.*", "*") are evaluated; `combine` picks the
outcome. Hard guards are evaluated first. Escalation rules look at the run so far:

    app.guard("payments.*", Limit("amount", 10_000), hard=True)
    app.guard("send_*", Always(name="outbound", risk="medium"), agent="mailer")
    app.escalation = Escalation(rejections_in_a_row=2, to=("role:supervisor",))
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, replace

from engine.agent.policies import (
    DEFAULT_DEADLINE_S,
    TOOL_DECISIONS,
    Gate,
    Policy,
    Proposal,
    combine,
)
from events.approval import RiskLevel


@dataclass(frozen=True, slots=True)
class Guard:
    """`policy` applies to tools whose name matches `pattern` (of `agent`, or of every agent)."""

    pattern: str
    policy: Policy
    hard: bool = False
    agent: str | None = None

    def applies(self, agent: str, tool: str) -> bool:
        if self.agent is not None and self.agent != agent:
            return False
        return fnmatch.fnmatchcase(tool, self.pattern)


@dataclass(frozen=True, slots=True)
class RunSignals:
    """What the run so far says, for escalation rules: decided gates rejected in a row (an
    approval resets it) and the confidence of every earlier evaluated call."""

    rejections_in_a_row: int = 0
    confidences: tuple[float, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Escalation:
    """Run-level rules: after `rejections_in_a_row` rejections in a row, or on the
    `low_confidence_times`-th call in one run below `low_confidence_below`, the next call is
    ESCALATEd to `to`: a person who takes the run over. `None` turns a rule off."""

    name: str = "escalation"
    version: str = "1"
    rejections_in_a_row: int | None = 2
    low_confidence_below: float = 0.5
    low_confidence_times: int | None = 3
    to: tuple[str, ...] = ()
    risk: RiskLevel = "high"
    deadline_s: float | None = DEFAULT_DEADLINE_S

    def evaluate(self, proposal: Proposal, signals: RunSignals) -> Gate | None:
        limit = self.rejections_in_a_row
        if limit is not None and signals.rejections_in_a_row >= limit:
            return self._gate(
                "rejections-in-a-row",
                f"{signals.rejections_in_a_row} rejections in a row: a person should take over",
            )
        times = self.low_confidence_times
        if times is not None and proposal.confidence is not None:
            low = [c for c in signals.confidences if c < self.low_confidence_below]
            if proposal.confidence < self.low_confidence_below and len(low) + 1 >= times:
                return self._gate(
                    "repeated-low-confidence",
                    f"confidence below {self.low_confidence_below:g} for the {len(low) + 1}. "
                    "time in this run: a person should take over",
                )
        return None

    def _gate(self, rule: str, reason: str) -> Gate:
        return Gate(
            action="escalate",
            policy=f"{self.name}@{self.version}",
            rule=rule,
            reason=reason,
            risk=self.risk,
            approvers=self.to,
            allowed=TOOL_DECISIONS,
            deadline_s=self.deadline_s,
            relevant_args=(),
        )


def evaluate_call(
    proposal: Proposal,
    *,
    own: Policy | None,
    guards: Sequence[Guard],
    escalation: Escalation | None,
    signals: RunSignals,
) -> Gate | None:
    """The deciding gate for a call, or None when no policy or guard applies to it at all."""
    matching = [g for g in guards if g.applies(proposal.agent, proposal.tool)]
    gates = [_as_hard(_evaluate(g.policy, proposal)) for g in matching if g.hard]
    if own is not None:
        gates.append(_evaluate(own, proposal))
    gates.extend(_evaluate(g.policy, proposal) for g in matching if not g.hard)
    if escalation is not None:
        escalated = escalation.evaluate(proposal, signals)
        if escalated is not None:
            gates.append(escalated)
    return combine(gates) if gates else None


def _evaluate(policy: Policy, proposal: Proposal) -> Gate:
    """The policy's gate; a policy that fails on this call asks a person (fail closed)."""
    try:
        return policy.evaluate(proposal)
    except Exception as exc:
        name = getattr(policy, "name", type(policy).__name__)
        version = getattr(policy, "version", "?")
        return Gate(
            action="approve",
            policy=f"{name}@{version}",
            rule="policy-failed",
            reason=f"the policy could not judge this call ({type(exc).__name__}: {exc})"[:300],
            risk="critical",
            allowed=TOOL_DECISIONS,
            deadline_s=DEFAULT_DEADLINE_S,
            relevant_args=(),
        )


def _as_hard(gate: Gate) -> Gate:
    return gate if gate.hard else replace(gate, hard=True)
