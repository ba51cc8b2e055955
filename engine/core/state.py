"""A run's state as a pure fold over its events: `evolve(state, envelope) -> state`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal, TypeAlias, TypeVar

from events.envelope import EventEnvelope
from events.run_events import (
    DecisionAccepted,
    DecisionHeld,
    DecisionRejected,
    GateEvaluated,
    InterruptExpired,
    InterruptRaised,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunParked,
    RunStarted,
    VoteRecorded,
)

RunStatus: TypeAlias = Literal["running", "waiting", "parked", "completed", "failed", "cancelled"]
V = TypeVar("V")
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
EXPIRED = "expired"
WITHDRAWN = "withdrawn"


@dataclass(frozen=True, kw_only=True, slots=True)
class DecisionRecord:
    """What became of one decision id, so that a repeat gets the same answer."""

    decision_id: str
    interrupt_id: str
    accepted: bool
    kind: str
    decided_by: str
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class RunState:
    run_id: str
    agent: str
    agent_version: str
    requested_by: str
    start_command_id: str
    status: RunStatus = "running"
    next_seq: int = 0
    open_interrupts: Mapping[str, InterruptRaised] = field(default_factory=dict)
    closed_interrupts: Mapping[str, str] = field(default_factory=dict)
    """interrupt id → the decision id that closed it, "expired", or "withdrawn" (the run
    ended while it was open)."""
    decisions: Mapping[str, DecisionRecord] = field(default_factory=dict)
    votes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """interrupt id → who approved it so far (k-of-n), while it is open."""
    held: Mapping[str, tuple[DecisionHeld, ...]] = field(default_factory=dict)
    """interrupt id → decisions that arrived before it was raised, in arrival order."""
    notify: Mapping[int, GateEvaluated] = field(default_factory=dict)
    """call → the NOTIFY verdict of a call that runs without asking."""

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def _with(mapping: Mapping[str, V], key: str, value: V) -> Mapping[str, V]:
    copy = dict(mapping)
    copy[key] = value
    return MappingProxyType(copy)


def _without(mapping: Mapping[str, V], key: str) -> Mapping[str, V]:
    copy = dict(mapping)
    copy.pop(key, None)
    return MappingProxyType(copy)


def evolve(state: RunState | None, envelope: EventEnvelope) -> RunState:
    event = envelope.payload
    if state is None:
        if not isinstance(event, RunStarted):
            raise ValueError(f"run {envelope.run_id} does not start with RunStarted")
        return RunState(
            run_id=envelope.run_id,
            agent=envelope.agent,
            agent_version=envelope.agent_version,
            requested_by=event.requested_by,
            start_command_id=event.command_id,
            next_seq=envelope.seq + 1,
        )
    if envelope.seq != state.next_seq:
        raise ValueError(f"run {state.run_id}: expected seq {state.next_seq}, got {envelope.seq}")
    state = replace(state, next_seq=envelope.seq + 1)
    if isinstance(event, DecisionAccepted | DecisionRejected | VoteRecorded):
        state = _unhold(state, event.interrupt_id, event.decision_id)
    match event:
        case InterruptRaised(interrupt_id=interrupt_id):
            opened = _with(state.open_interrupts, interrupt_id, event)
            return replace(state, open_interrupts=opened, status=_status(state, opened))
        case DecisionAccepted(interrupt_id=interrupt_id, decision_id=decision_id):
            record = DecisionRecord(
                decision_id=decision_id,
                interrupt_id=interrupt_id,
                accepted=True,
                kind=event.kind,
                decided_by=event.decided_by,
                reason=event.reason,
            )
            return _close(state, interrupt_id, decision_id, record)
        case DecisionRejected(decision_id=decision_id):
            record = DecisionRecord(
                decision_id=decision_id,
                interrupt_id=event.interrupt_id,
                accepted=False,
                kind=event.kind,
                decided_by=event.decided_by,
                reason=event.reason,
            )
            decisions = _with(state.decisions, decision_id, record)
            return replace(state, decisions=decisions)
        case VoteRecorded(interrupt_id=interrupt_id, decision_id=decision_id):
            record = DecisionRecord(
                decision_id=decision_id,
                interrupt_id=interrupt_id,
                accepted=True,
                kind="approve",
                decided_by=event.decided_by,
                reason=f"approval {event.votes} of {event.quorum} counted",
            )
            voters = (*state.votes.get(interrupt_id, ()), event.decided_by)
            return replace(
                state,
                decisions=_with(state.decisions, decision_id, record),
                votes=_with(state.votes, interrupt_id, voters),
            )
        case DecisionHeld(interrupt_id=interrupt_id):
            waiting = (*state.held.get(interrupt_id, ()), event)
            return replace(state, held=_with(state.held, interrupt_id, waiting))
        case GateEvaluated(call=call, action=action):
            if action == "notify":
                return replace(state, notify=_with_call(state.notify, call, event))
            return replace(state, notify=_without_call(state.notify, call))
        case InterruptExpired(interrupt_id=interrupt_id):
            return _close(state, interrupt_id, EXPIRED, None)
        case RunCompleted():
            return _ended(state, "completed")
        case RunFailed():
            return _ended(state, "failed")
        case RunCancelled():
            return _ended(state, "cancelled")
        case RunParked():
            return replace(state, status="parked")
        case _:
            return state


def _with_call(mapping: Mapping[int, V], key: int, value: V) -> Mapping[int, V]:
    copy = dict(mapping)
    copy[key] = value
    return MappingProxyType(copy)


def _without_call(mapping: Mapping[int, V], key: int) -> Mapping[int, V]:
    if key not in mapping:
        return mapping
    copy = dict(mapping)
    copy.pop(key)
    return MappingProxyType(copy)


def _ended(state: RunState, status: RunStatus) -> RunState:
    closed = dict(state.closed_interrupts)
    closed.update(dict.fromkeys(state.open_interrupts, WITHDRAWN))
    return replace(
        state,
        status=status,
        open_interrupts=MappingProxyType({}),
        closed_interrupts=MappingProxyType(closed),
        votes=MappingProxyType({}),
    )


def _unhold(state: RunState, interrupt_id: str, decision_id: str) -> RunState:
    waiting = state.held.get(interrupt_id)
    if not waiting or all(h.decision_id != decision_id for h in waiting):
        return state
    rest = tuple(h for h in waiting if h.decision_id != decision_id)
    held = _with(state.held, interrupt_id, rest) if rest else _without(state.held, interrupt_id)
    return replace(state, held=held)


def _close(
    state: RunState, interrupt_id: str, closed_by: str, record: DecisionRecord | None
) -> RunState:
    opened = _without(state.open_interrupts, interrupt_id)
    closed = _with(state.closed_interrupts, interrupt_id, closed_by)
    decisions = state.decisions if record is None else _with(state.decisions, closed_by, record)
    return replace(
        state,
        open_interrupts=opened,
        closed_interrupts=closed,
        decisions=decisions,
        votes=_without(state.votes, interrupt_id),
        status=_status(state, opened),
    )


def _status(state: RunState, opened: Mapping[str, InterruptRaised]) -> RunStatus:
    if state.status != "running" and state.status != "waiting":
        return state.status
    return "waiting" if opened else "running"


def fold(envelopes: Iterable[EventEnvelope]) -> RunState | None:
    state: RunState | None = None
    for envelope in envelopes:
        state = evolve(state, envelope)
    return state
