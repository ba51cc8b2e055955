"""Deadlines, derived from the log: which open interrupts are due, and what their expiry appends.

Timers are not state a worker keeps: `next_due_us(state)` and `expire_due(state, now_us)` are
pure functions of a run's folded state, so whichever worker owns the run after a restart
fires the same deadlines. A decision and an expiry are both appended by that one owner, in
order: the first one closes the interrupt, and the other is refused (a late decision) or
simply not produced (an expiry of a decided interrupt is never due).

On expiry the request's `on_timeout` applies: reject (the default); approve, only when the
request is low risk (anything else is rejected); escalate: the interrupt expires and an
`InterruptEscalated` hands its call to `escalate_to` for another `timeout_s` (with nobody to
escalate to, it is rejected); or respond, for a question whose answer schema has a `default`:
that default is the answer.
"""

from __future__ import annotations

from engine.core.state import RunState
from events.approval import ApprovalRequest, TimeoutAction
from events.json import Json
from events.run_events import InterruptEscalated, InterruptExpired, InterruptRaised

ExpiryEvent = InterruptExpired | InterruptEscalated


def _live(state: RunState) -> bool:
    return state.moving  # a quarantined run's requests wait with it


def next_due_us(state: RunState) -> int | None:
    """The earliest deadline among the run's open interrupts (None: nothing to wait for)."""
    if not _live(state):
        return None
    deadlines = [
        raised.request.deadline_us
        for raised in state.open_interrupts.values()
        if raised.request.deadline_us is not None
    ]
    return min(deadlines, default=None)


def timeout_action(request: ApprovalRequest) -> TimeoutAction:
    """What the request's timeout policy comes to, with the safety rules applied."""
    if request.on_timeout == "approve" and request.risk != "low":
        return "reject"
    if request.on_timeout == "respond" and not has_default_answer(request):
        return "reject"
    if request.on_timeout == "escalate" and not request.escalate_to:
        return "reject"
    return request.on_timeout


def has_default_answer(request: ApprovalRequest) -> bool:
    """A question whose answer schema names a `default`: the answer when nobody gives one."""
    schema = request.answer_schema
    return request.kind == "question" and isinstance(schema, dict) and "default" in schema


def default_answer(request: ApprovalRequest) -> Json:
    schema = request.answer_schema
    return schema.get("default") if isinstance(schema, dict) else None


def expire_due(state: RunState, now_us: int) -> list[ExpiryEvent]:
    """The events that expire every open interrupt whose deadline is at or before `now_us`,
    earliest deadline first."""
    if not _live(state):
        return []
    due = sorted(
        (
            raised
            for raised in state.open_interrupts.values()
            if raised.request.deadline_us is not None and raised.request.deadline_us <= now_us
        ),
        key=lambda raised: (raised.request.deadline_us or 0, raised.call, raised.interrupt_id),
    )
    events: list[ExpiryEvent] = []
    for raised in due:
        events.extend(_expiry(raised, now_us))
    return events


def _expiry(raised: InterruptRaised, now_us: int) -> list[ExpiryEvent]:
    request = raised.request
    action = timeout_action(request)
    expired = InterruptExpired(interrupt_id=raised.interrupt_id, action=action)
    if action != "escalate":
        return [expired]
    window = request.timeout_s
    escalated = InterruptEscalated(
        interrupt_id=raised.interrupt_id,
        level=request.escalation + 1,
        approvers=request.escalate_to,
        reason=f"no decision by the deadline; escalated to {', '.join(request.escalate_to)}",
        deadline_us=None if window is None else now_us + int(window * 1_000_000),
    )
    return [expired, escalated]
