"""The outbox: which approvals-topic notices and dead letters a step publishes. Pure.

One rule per message, in one place:
- an `InterruptRaised` event asks for a decision: `ApprovalRequested`;
- every judged decision (accepted, refused, counted toward a quorum, held for an interrupt
  not raised yet, or a repeat of an earlier one) tells its sender: `DecisionOutcome`, from
  the verdict;
- a tool that ran under a NOTIFY policy tells the people watching: `ActionNotified`;
- a run quarantined by a restore tells the operators: `QuarantineNotified`;
- a command that cannot be handled goes to the dead-letter topic with its reason and where
  it came from.
The worker appends these to the same atomic commit as the events they follow from.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.core.handling import DecisionVerdict
from engine.core.state import RunState
from engine.log.port import Headers, Outgoing, Record
from events.commands import SubmitDecision
from events.envelope import EventEnvelope
from events.notices import (
    ActionNotified,
    ApprovalRequested,
    DecisionOutcome,
    Notice,
    QuarantineNotified,
)
from events.run_events import (
    InterruptRaised,
    RunQuarantined,
    RunStarted,
    ToolCallCompleted,
    ToolCallScheduled,
)

__all__ = ["dead_letter", "event_notices", "outcome"]


def event_notices(
    state: RunState, history: Sequence[EventEnvelope], envelope: EventEnvelope
) -> list[Notice]:
    """What the approvals topic hears of one appended event (`state` and `history` include it)."""
    event = envelope.payload
    if isinstance(event, InterruptRaised):
        return [
            ApprovalRequested(
                run_id=envelope.run_id,
                interrupt_id=event.interrupt_id,
                agent=envelope.agent,
                agent_version=envelope.agent_version,
                requested_by=state.requested_by,
                requested_at_us=envelope.occurred_at_us,
                request=event.request,
            )
        ]
    if isinstance(event, ToolCallCompleted):
        notified = _action_notice(state, history, event, envelope.occurred_at_us)
        return [notified] if notified is not None else []
    if isinstance(event, RunQuarantined):
        strays = len(event.strays) if isinstance(event.strays, list) else 0
        quarantined = QuarantineNotified(
            run_id=envelope.run_id,
            agent=envelope.agent,
            agent_version=envelope.agent_version,
            reason=event.reason,
            strays=strays,
            notified_at_us=envelope.occurred_at_us,
        )
        return [quarantined]
    return []


def outcome(decision: SubmitDecision, verdict: DecisionVerdict, at_us: int) -> DecisionOutcome:
    """What the sender of `decision` learns: the verdict, whatever it appended (if anything)."""
    return DecisionOutcome(
        run_id=decision.run_id,
        interrupt_id=decision.interrupt_id,
        decision_id=decision.decision_id,
        accepted=verdict.accepted,
        kind=decision.kind,
        decided_by=decision.decided_by,
        reason=verdict.reason,
        decided_at_us=at_us,
        status=verdict.status,
    )


def dead_letter(record: Record, reason: str, dlq_topic: str, *, trace: Headers = ()) -> Outgoing:
    """The record's exact bytes for the dead-letter topic, with why and where it came from
    (and `trace`: the trace context of its handling, `engine.core.trace_context`)."""
    headers = (
        ("countersign.reason", reason.encode()),
        ("countersign.source.topic", record.topic.encode()),
        ("countersign.source.partition", str(record.partition).encode()),
        ("countersign.source.offset", str(record.offset).encode()),
        *trace,
    )
    return Outgoing(dlq_topic, record.key or "", record.value, headers=headers)


def _action_notice(
    state: RunState, history: Sequence[EventEnvelope], event: ToolCallCompleted, at_us: int
) -> ActionNotified | None:
    """After a NOTIFY-gated tool ran: what ran, with what result, under which rule."""
    verdict = state.notify.get(event.call)
    if verdict is None:
        return None
    scheduled = _last_schedule(history, event.call)
    started = history[0].payload if history else None
    return ActionNotified(
        run_id=state.run_id,
        agent=state.agent,
        agent_version=state.agent_version,
        requested_by=started.requested_by if isinstance(started, RunStarted) else "",
        call=event.call,
        tool=verdict.tool,
        args=scheduled.args if scheduled is not None else {},
        result=event.result,
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
