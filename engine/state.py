"""A run's state as a pure fold over its events: `evolve(state, envelope) -> state`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal, TypeAlias, TypeVar

from events.envelope import EventEnvelope
from events.run_events import (
    DecisionAccepted,
    DecisionRejected,
    InterruptExpired,
    InterruptRaised,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunParked,
    RunStarted,
)

RunStatus: TypeAlias = Literal["running", "waiting", "parked", "completed", "failed", "cancelled"]
V = TypeVar("V")
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})


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
    """interrupt id → the decision id that closed it, or "expired"."""
    decisions: Mapping[str, DecisionRecord] = field(default_factory=dict)

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
        case InterruptExpired(interrupt_id=interrupt_id):
            return _close(state, interrupt_id, "expired", None)
        case RunCompleted():
            return replace(state, status="completed", open_interrupts={})
        case RunFailed():
            return replace(state, status="failed", open_interrupts={})
        case RunCancelled():
            return replace(state, status="cancelled", open_interrupts={})
        case RunParked():
            return replace(state, status="parked")
        case _:
            return state


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
