"""Gate plans as events, and the pure rules the executor follows through them.

A `GateEvaluated` event is the whole plan for a call: the action, the deciding policy and
rule, and the levels of approval (who, how many). The executor walks a call's recorded
evaluations and approval interrupts in order; these helpers are the rules of that walk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.agent.authorization import Level, levels_from_json, levels_to_json
from engine.agent.guards import RunSignals
from engine.agent.policies import SEVERITY, Gate, risk_rank
from engine.core.history import HistoryIndex
from events.approval import ApprovalRequest, RiskLevel
from events.json import Json, JsonObject, canonical_json, digest
from events.run_events import (
    DecisionAccepted,
    GateEvaluated,
    InterruptEscalated,
    InterruptExpired,
    InterruptRaised,
)


@dataclass(frozen=True, slots=True)
class Cleared:
    """The gate is passed: run the tool with `args` (as approved, after any edits)."""

    args: JsonObject
    decided_by: str


class GateWalk:
    """Where a call stands in its approval plan while the executor follows it."""

    def __init__(self, *, evaluation: GateEvaluated, args: JsonObject) -> None:
        self.evaluation = evaluation
        self.levels = levels_of(evaluation)
        """The evaluation's levels, parsed once (set with it, by `restart`)."""
        self.args = args
        self.round = 1
        self.level = 1
        self.quorum = self.levels[0].quorum
        self.excluded: list[str] = []
        self.decided_by = ""
        self.escalation: InterruptEscalated | None = None
        self.previous: JsonObject | None = None
        """The arguments before the last edit: the title shows what it changed first."""

    def approved(self, approvers: tuple[str, ...], decided_by: str) -> None:
        self.excluded.extend(a for a in approvers if a not in self.excluded)
        self.decided_by = decided_by

    def next_level(self) -> bool:
        """Move to the next level; False when the last level was passed."""
        levels = self.levels
        if self.level >= len(levels):
            return False
        self.level += 1
        self.quorum = levels[self.level - 1].quorum
        return True

    def restart(self, evaluation: GateEvaluated) -> None:
        """Back to level 1 of a new plan; the editor may not approve their own edit."""
        self.evaluation = evaluation
        self.levels = levels_of(evaluation)
        self.level = 1
        self.quorum = self.levels[0].quorum
        self.excluded = [self.decided_by] if self.decided_by else []


def levels_for(gate: Gate, ladders: Mapping[RiskLevel, tuple[Level, ...]]) -> tuple[Level, ...]:
    """Who decides, level by level: the policy's own levels; else the app's ladder for the
    risk (with the policy's approvers, if it names any, at level 1); else one level."""
    if gate.action == "escalate":
        return (Level(gate.approvers or gate.escalate_to),)
    if gate.levels:
        return gate.levels
    ladder = ladders.get(gate.risk)
    if ladder:
        if gate.approvers:
            return (Level(gate.approvers, ladder[0].quorum), *ladder[1:])
        return ladder
    return (Level(gate.approvers),)


def evaluation_event(
    gate: Gate,
    *,
    call: int,
    tool: str,
    args: JsonObject,
    confidence: float | None,
    round: int,
    ladders: Mapping[RiskLevel, tuple[Level, ...]],
) -> GateEvaluated:
    relevant: Json = None if gate.relevant_args is None else list(gate.relevant_args)
    return GateEvaluated(
        call=call,
        tool=tool,
        args_digest=digest(args),
        action=gate.action,
        policy=gate.policy,
        rule=gate.rule,
        reason=gate.reason,
        risk=gate.risk,
        confidence=confidence,
        amount=gate.amount,
        round=round,
        levels=levels_to_json(levels_for(gate, ladders)),
        allowed=gate.allowed,
        deadline_s=gate.deadline_s,
        on_timeout=gate.on_timeout,
        escalate_to=gate.escalate_to,
        relevant_args=relevant,
    )


def legacy_evaluation(raised: InterruptRaised) -> GateEvaluated:
    """The plan of a history recorded before `GateEvaluated` existed: its one interrupt."""
    request = raised.request
    return GateEvaluated(
        call=raised.call,
        tool=request.tool or "",
        args_digest=digest(request.args),
        action="approve",
        policy=request.policy,
        reason=request.reasoning,
        risk=request.risk,
        amount=request.amount,
        levels=[Level(request.approvers, request.quorum).to_json()],
        allowed=request.allowed,
        on_timeout=request.on_timeout,
        escalate_to=request.escalate_to,
    )


def needs_decision(evaluation: GateEvaluated) -> bool:
    return evaluation.action in ("approve", "escalate")


def levels_of(evaluation: GateEvaluated) -> tuple[Level, ...]:
    return levels_from_json(evaluation.levels)


def _relevant(evaluation: GateEvaluated) -> frozenset[str]:
    value = evaluation.relevant_args
    return frozenset(str(v) for v in value) if isinstance(value, list) else frozenset()


def needs_reapproval(
    old: GateEvaluated, new: GateEvaluated, old_args: JsonObject, new_args: JsonObject
) -> bool:
    """After an edit: go back for approval (from level 1 of the new plan) when the edited call
    still needs a decision and is more demanding than what was being approved (a more severe
    action, a higher risk, more levels), or when an argument the policy declared relevant
    changed."""
    if not needs_decision(new):
        return False
    if SEVERITY[new.action] > SEVERITY[old.action] or risk_rank(new.risk) > risk_rank(old.risk):
        return True
    if len(levels_of(new)) > len(levels_of(old)):
        return True
    changed = {
        key
        for key in old_args.keys() | new_args.keys()
        if key not in old_args
        or key not in new_args
        or canonical_json(old_args[key]) != canonical_json(new_args[key])
    }
    return bool(changed & (_relevant(old) | _relevant(new)))


def gate_purpose(index: int) -> str:
    """The n-th approval interrupt of one call (0-based): "approval", "approval-2", ..."""
    return "approval" if index == 0 else f"approval-{index + 1}"


def question_purpose(index: int) -> str:
    return "question" if index == 0 else f"question-{index + 1}"


def signals_before(index: HistoryIndex, position: int) -> RunSignals:
    """Escalation signals from the calls recorded before `position`, in call order."""
    streak = 0
    confidences: list[float] = []
    for call in sorted(p for p in index.calls if p < position):
        rec = index.calls[call]
        if rec.evaluations and rec.evaluations[0].confidence is not None:
            confidences.append(rec.evaluations[0].confidence)
        if not rec.gates:
            continue
        outcome = index.outcomes.get(rec.gates[-1].interrupt_id)
        if outcome is None:
            continue
        if _is_rejection(outcome):
            streak += 1
        elif not (isinstance(outcome, InterruptExpired) and outcome.action == "escalate"):
            streak = 0
    return RunSignals(rejections_in_a_row=streak, confidences=tuple(confidences))


def _is_rejection(outcome: DecisionAccepted | InterruptExpired) -> bool:
    if isinstance(outcome, InterruptExpired):
        return outcome.action == "reject"
    return outcome.kind == "reject"


@dataclass(frozen=True, slots=True)
class GateContext:
    """What the call and its tool add to an approval request."""

    tool: str
    args_schema: Json
    agent: str
    version: str
    reasoning: str
    impact: str
    context: Json
    confidence: float | None


def gate_request(
    walk: GateWalk, call: GateContext, *, interrupt_id: str, deadline_us: int | None
) -> ApprovalRequest:
    """The request for the walk's current step: its level (or escalation), exactly the
    arguments that will run, and a digest binding tool, arguments, agent version and id."""
    evaluation, escalation, levels = walk.evaluation, walk.escalation, walk.levels
    previous = None if walk.previous is None else masked(walk.previous, call.args_schema)
    title = f"{call.tool}({short_args(masked(walk.args, call.args_schema), first=previous)})"
    if evaluation.action == "escalate" or escalation is not None:
        title = f"Escalated: {title}"
    bound: Json = {
        "tool": call.tool,
        "args": walk.args,
        "agent": call.agent,
        "version": call.version,
        "interrupt_id": interrupt_id,
    }
    return ApprovalRequest(
        kind="tool",
        title=title,
        tool=call.tool,
        args=walk.args,
        digest=digest(bound),
        reasoning=call.reasoning or evaluation.reason,
        context=call.context,
        impact=call.impact,
        risk=evaluation.risk,
        amount=evaluation.amount,
        deadline_us=deadline_us,
        on_timeout="reject" if escalation else evaluation.on_timeout,
        allowed=evaluation.allowed,
        approvers=escalation.approvers if escalation else levels[walk.level - 1].approvers,
        policy=evaluation.policy,
        rule=evaluation.rule,
        level=walk.level,
        levels=len(levels),
        quorum=walk.quorum,
        excluded=tuple(walk.excluded),
        escalate_to=() if escalation else evaluation.escalate_to,
        escalation=escalation.level if escalation else 0,
        timeout_s=evaluation.deadline_s,
        args_schema=call.args_schema,
        confidence=call.confidence,
    )


def masked(args: JsonObject, schema: Json) -> JsonObject:
    """`args` with the values its schema marks personal (`engine.agent.personal`) shown as
    `(personal)`: a title is free text, it is never sealed."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return args
    return {
        name: "(personal)"
        if isinstance(properties.get(name), dict) and properties[name].get("personal") is True  # type: ignore[union-attr]
        else value
        for name, value in args.items()
    }


def short_args(args: JsonObject, limit: int = 60, *, first: JsonObject | None = None) -> str:
    """`k=v, ...` cut to `limit` characters. With `first` (the arguments before an edit),
    those the edit changed come first, then the others in their earlier order: a cut title
    never hides what changed."""
    keys = list(args)
    if first is not None:
        changed = [k for k in keys if k not in first or not _same(first[k], args[k])]
        kept = [k for k in first if k in args and k not in changed]
        keys = changed + kept + [k for k in keys if k not in changed and k not in kept]
    text = ", ".join(f"{k}={canonical_json(args[k])}" for k in keys)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _same(a: Json, b: Json) -> bool:
    return canonical_json(a) == canonical_json(b)
