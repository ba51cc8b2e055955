"""Pure command handling: a command and the run's state in, the events to append out.

Nothing here touches a log; the worker turns the verdicts into records.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.state import RunState
from events.approval import DECISION_KINDS
from events.commands import SubmitDecision
from events.run_events import DecisionAccepted, DecisionRejected


@dataclass(frozen=True, slots=True)
class DecisionVerdict:
    """`event` is None when nothing is appended (unknown run, or a repeated decision id)."""

    accepted: bool
    reason: str
    event: DecisionAccepted | DecisionRejected | None
    repeat: bool = False


def judge_decision(state: RunState | None, command: SubmitDecision) -> DecisionVerdict:
    """Validate a decision before it touches a run. The first accepted decision wins."""
    if state is None:
        return DecisionVerdict(False, f"unknown run {command.run_id}", None)
    earlier = state.decisions.get(command.decision_id)
    if earlier is not None:
        return DecisionVerdict(earlier.accepted, earlier.reason, None, repeat=True)
    reason = _refusal(state, command)
    if reason:
        return DecisionVerdict(False, reason, _refused(command, reason))
    accepted = DecisionAccepted(
        interrupt_id=command.interrupt_id,
        decision_id=command.decision_id,
        kind=command.kind,  # type: ignore[arg-type]  # checked by _refusal
        decided_by=command.decided_by,
        reason=command.reason,
        edited_args=command.edited_args if command.kind == "edit" else None,
        response=command.response if command.kind == "respond" else None,
    )
    return DecisionVerdict(True, command.reason, accepted)


def _refusal(state: RunState, command: SubmitDecision) -> str:
    closed_by = state.closed_interrupts.get(command.interrupt_id)
    if closed_by is not None:
        if closed_by == "expired":
            return f"interrupt {command.interrupt_id} expired before this decision"
        return f"interrupt {command.interrupt_id} was already decided by decision {closed_by}"
    if state.terminal:
        return f"run {state.run_id} is {state.status}"
    interrupt = state.open_interrupts.get(command.interrupt_id)
    if interrupt is None:
        return f"unknown interrupt {command.interrupt_id} for run {state.run_id}"
    request = interrupt.request
    if command.kind not in DECISION_KINDS:
        return f"unknown decision kind {command.kind!r}; one of {', '.join(DECISION_KINDS)}"
    if command.kind not in request.allowed:
        return f"{command.kind!r} is not allowed here; allowed: {', '.join(request.allowed)}"
    if command.digest and command.digest != request.digest:
        return "digest does not match the request (it changed, or the decision is for another)"
    if not command.decided_by:
        return "a decision must say who made it (decided_by)"
    if command.kind in ("approve", "edit") and command.decided_by == state.requested_by:
        return f"{command.decided_by} started this run and may not approve its requests"
    if command.kind == "edit" and not isinstance(command.edited_args, dict):
        return "an edit must carry the new arguments as a JSON object"
    return ""


def _refused(command: SubmitDecision, reason: str) -> DecisionRejected:
    return DecisionRejected(
        interrupt_id=command.interrupt_id,
        decision_id=command.decision_id,
        kind=command.kind,
        decided_by=command.decided_by,
        reason=reason,
    )
