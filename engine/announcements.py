"""Approvals-topic notices derived from run events (pure): what the sender of a decision and
the people watching a NOTIFY policy hear. The worker appends them in the same commit."""

from __future__ import annotations

from collections.abc import Sequence

from engine.state import RunState
from events.envelope import EventEnvelope
from events.notices import ActionNotified, DecisionOutcome
from events.run_events import (
    DecisionHeld,
    RunEventPayload,
    RunStarted,
    ToolCallCompleted,
    ToolCallScheduled,
    VoteRecorded,
)


def progress_notice(run_id: str, payload: RunEventPayload, at_us: int) -> DecisionOutcome | None:
    """The outcome for a decision that neither closed nor was refused: a vote short of its
    quorum ("counted"), or a decision held until its interrupt is raised ("held")."""
    if isinstance(payload, VoteRecorded):
        return DecisionOutcome(
            run_id=run_id,
            interrupt_id=payload.interrupt_id,
            decision_id=payload.decision_id,
            accepted=True,
            kind="approve",
            decided_by=payload.decided_by,
            reason=f"approval {payload.votes} of {payload.quorum} counted",
            decided_at_us=at_us,
            status="counted",
        )
    if isinstance(payload, DecisionHeld):
        return DecisionOutcome(
            run_id=run_id,
            interrupt_id=payload.interrupt_id,
            decision_id=payload.decision_id,
            accepted=False,
            kind=payload.kind,
            decided_by=payload.decided_by,
            reason="held: the interrupt is not raised yet; judged when it is",
            decided_at_us=at_us,
            status="held",
        )
    return None


def action_notice(
    state: RunState, history: Sequence[EventEnvelope], payload: RunEventPayload, at_us: int
) -> ActionNotified | None:
    """After a NOTIFY-gated tool ran: what ran, with what result, under which rule."""
    if not isinstance(payload, ToolCallCompleted):
        return None
    verdict = state.notify.get(payload.call)
    if verdict is None:
        return None
    scheduled = _last_schedule(history, payload.call)
    started = history[0].payload if history else None
    return ActionNotified(
        run_id=state.run_id,
        agent=state.agent,
        agent_version=state.agent_version,
        requested_by=started.requested_by if isinstance(started, RunStarted) else "",
        call=payload.call,
        tool=verdict.tool,
        args=scheduled.args if scheduled is not None else {},
        result=payload.result,
        policy=verdict.policy,
        rule=verdict.rule,
        reason=verdict.reason,
        risk=verdict.risk,
        confidence=verdict.confidence,
        notified_at_us=at_us,
    )


def _last_schedule(history: Sequence[EventEnvelope], call: int) -> ToolCallScheduled | None:
    for envelope in reversed(history):
        event = envelope.payload
        if isinstance(event, ToolCallScheduled) and event.call == call:
            return event
    return None
