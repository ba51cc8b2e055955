"""A run's state as a pure fold over its events: `evolve(state, envelope) -> state`. Pure.

The maps in a state are persistent (`immutables.Map`, a hash array mapped trie): adding an
entry shares the rest with the previous state, so folding an event costs the same however
many decisions or interrupts a run already holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeAlias, TypeVar

from immutables import Map

from events.envelope import EventEnvelope
from events.run_events import (
    DecisionAccepted,
    DecisionHeld,
    DecisionRejected,
    GateEvaluated,
    InterruptExpired,
    InterruptRaised,
    QuarantineLifted,
    RunCancelled,
    RunCompleted,
    RunEventPayload,
    RunFailed,
    RunParked,
    RunQuarantined,
    RunResumed,
    RunStarted,
    VoteRecorded,
)

RunStatus: TypeAlias = Literal["running", "waiting", "parked", "completed", "failed", "cancelled"]
K = TypeVar("K")
V = TypeVar("V")
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
EXPIRED = "expired"
WITHDRAWN = "withdrawn"


_NONE: Map[Any, Any] = Map()
"""The one empty map every new state starts with (a map is immutable: sharing it is safe,
and a state per waiting run held five empty ones of its own, ~300 bytes)."""


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
    open_interrupts: Map[str, InterruptRaised] = field(default=_NONE)
    closed_interrupts: Map[str, str] = field(default=_NONE)
    """interrupt id → the decision id that closed it, "expired", or "withdrawn" (the run
    ended while it was open)."""
    decisions: Map[str, DecisionRecord] = field(default=_NONE)
    votes: Map[str, tuple[str, ...]] = field(default=_NONE)
    """interrupt id → who approved it so far (k-of-n), while it is open."""
    held: Map[str, tuple[DecisionHeld, ...]] = field(default=_NONE)
    """interrupt id → decisions that arrived before it was raised, in arrival order."""
    notify: Map[int, GateEvaluated] = field(default=_NONE)
    refused: int = 0
    """How many refused decisions the run records (`DecisionRejected` events)."""
    quarantined: bool = False
    """Its log holds records that break its chain (`RunQuarantined`), and no operator has
    accepted them yet: it takes no decision and runs no tool."""
    """call → the NOTIFY verdict of a call that runs without asking."""

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def moving(self) -> bool:
        """Whether the engine may move it on: running or waiting, and not quarantined."""
        return self.status in ("running", "waiting") and not self.quarantined


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
    changes = _changes(state, event)
    changes["next_seq"] = envelope.seq + 1
    return _copy(state, changes)


Changes: TypeAlias = dict[str, object]


def _changes(state: RunState, event: RunEventPayload) -> Changes:
    """The fields `event` changes (the rest of the state is shared, not copied)."""
    changes: Changes = {}
    if isinstance(event, DecisionAccepted | DecisionRejected | VoteRecorded):
        _unhold(state, event.interrupt_id, event.decision_id, changes)
    match event:
        case InterruptRaised(interrupt_id=interrupt_id):
            opened = state.open_interrupts.set(interrupt_id, event)
            changes.update(open_interrupts=opened, status=_status(state, opened))
        case DecisionAccepted(interrupt_id=interrupt_id, decision_id=decision_id):
            record = _record(event, accepted=True, kind=event.kind, reason=event.reason)
            _close(state, interrupt_id, decision_id, record, changes)
        case DecisionRejected(decision_id=decision_id):
            record = _record(event, accepted=False, kind=event.kind, reason=event.reason)
            changes["decisions"] = state.decisions.set(decision_id, record)
            changes["refused"] = state.refused + 1
        case VoteRecorded(interrupt_id=interrupt_id, decision_id=decision_id):
            reason = f"approval {event.votes} of {event.quorum} counted"
            record = _record(event, accepted=True, kind="approve", reason=reason)
            voters = (*state.votes.get(interrupt_id, ()), event.decided_by)
            changes.update(
                decisions=state.decisions.set(decision_id, record),
                votes=state.votes.set(interrupt_id, voters),
            )
        case DecisionHeld(interrupt_id=interrupt_id):
            waiting = (*state.held.get(interrupt_id, ()), event)
            changes["held"] = state.held.set(interrupt_id, waiting)
        case GateEvaluated(call=call, action=action):
            if action == "notify":
                changes["notify"] = state.notify.set(call, event)
            else:
                changes["notify"] = _without(state.notify, call)
        case InterruptExpired(interrupt_id=interrupt_id):
            _close(state, interrupt_id, EXPIRED, None, changes)
        case RunCompleted():
            _ended(state, "completed", changes)
        case RunFailed():
            _ended(state, "failed", changes)
        case RunCancelled():
            _ended(state, "cancelled", changes)
        case RunParked():
            changes["status"] = "parked"
        case RunResumed():
            if state.status == "parked":  # back to where it stood: its interrupts stayed open
                changes["status"] = "waiting" if state.open_interrupts else "running"
        case RunQuarantined():
            changes["quarantined"] = True
        case QuarantineLifted():
            changes["quarantined"] = False
        case _:
            pass
    return changes


_FIELDS = tuple(f.name for f in fields(RunState))


def _copy(state: RunState, changes: Changes) -> RunState:
    """`dataclasses.replace` without its per-call introspection (a third of a fold's cost)."""
    new = object.__new__(RunState)
    for name in _FIELDS:
        object.__setattr__(new, name, changes[name] if name in changes else getattr(state, name))
    return new


def _record(
    event: DecisionAccepted | DecisionRejected | VoteRecorded,
    *,
    accepted: bool,
    kind: str,
    reason: str,
) -> DecisionRecord:
    return DecisionRecord(
        decision_id=event.decision_id,
        interrupt_id=event.interrupt_id,
        accepted=accepted,
        kind=kind,
        decided_by=event.decided_by,
        reason=reason,
    )


def _without(mapping: Map[K, V], key: K) -> Map[K, V]:
    return mapping.delete(key) if key in mapping else mapping


def _ended(state: RunState, status: RunStatus, changes: Changes) -> None:
    closed = state.closed_interrupts.update(dict.fromkeys(state.open_interrupts, WITHDRAWN))
    changes.update(status=status, open_interrupts=Map(), closed_interrupts=closed, votes=Map())


def _unhold(state: RunState, interrupt_id: str, decision_id: str, changes: Changes) -> None:
    waiting = state.held.get(interrupt_id)
    if not waiting or all(h.decision_id != decision_id for h in waiting):
        return
    rest = tuple(h for h in waiting if h.decision_id != decision_id)
    held = state.held.set(interrupt_id, rest) if rest else state.held.delete(interrupt_id)
    changes["held"] = held


def _close(
    state: RunState,
    interrupt_id: str,
    closed_by: str,
    record: DecisionRecord | None,
    changes: Changes,
) -> None:
    opened = _without(state.open_interrupts, interrupt_id)
    decisions = state.decisions if record is None else state.decisions.set(closed_by, record)
    changes.update(
        open_interrupts=opened,
        closed_interrupts=state.closed_interrupts.set(interrupt_id, closed_by),
        decisions=decisions,
        votes=_without(state.votes, interrupt_id),
        status=_status(state, opened),
    )


def _status(state: RunState, opened: Map[str, InterruptRaised]) -> RunStatus:
    if state.status != "running" and state.status != "waiting":
        return state.status
    return "waiting" if opened else "running"


def fold(envelopes: Iterable[EventEnvelope]) -> RunState | None:
    state: RunState | None = None
    for envelope in envelopes:
        state = evolve(state, envelope)
    return state
