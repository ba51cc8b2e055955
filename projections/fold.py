"""The core projections as a pure fold: events in, row changes out. No I/O, clock or logging.

A run's read-model state before an event is a `RunView` (its `cs_runs` row and the interrupts
the event may touch); `project(view, event)` says what the event changes; `RunView.after`
moves the view on. `fold` does this for a batch in log order and returns each run's and each
interrupt's final row once, so the store upserts one row per key however many events of a run
the batch holds. The events index row of an event (`event_row`) needs no state.

The fold is idempotent per interrupt: raising a known interrupt or closing one that is not
open again changes no count, so a duplicated event cannot skew `open_interrupts`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, assert_never

from events.envelope import EventEnvelope
from events.json import Json, JsonObject
from events.run_events import (
    DecisionAccepted,
    DecisionHeld,
    DecisionRejected,
    GateEvaluated,
    InterruptEscalated,
    InterruptExpired,
    InterruptRaised,
    ModelCalled,
    QuarantineLifted,
    RunCancelled,
    RunCompleted,
    RunEventPayload,
    RunFailed,
    RunParked,
    RunQuarantined,
    RunResumed,
    RunStarted,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallScheduled,
    ValueRecorded,
    VoteRecorded,
)
from projections.batch import LoggedEvent
from projections.describe import payload_json
from projections.rows import (
    FINISHED_STATUSES,
    QUARANTINE_ACTOR,
    AuditAction,
    AuditRow,
    EventRow,
    InterruptRow,
    InterruptStatus,
    RunRow,
    RunStatus,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TIMEOUT_ACTOR = "system:timeout"
ESCALATION_ACTOR = "system:escalation"
ENGINE_ACTOR = "system:engine"

_PASSIVE: frozenset[type[RunEventPayload]] = frozenset(
    {
        ModelCalled,
        ToolCallScheduled,
        ToolCallCompleted,
        ToolCallFailed,
        ValueRecorded,
        GateEvaluated,
    }
)
"""Events that change no read-model state beyond the run's `last_seq` and `updated_at` (a
gate evaluation adds an audit row, which needs no state)."""

_CLOSED_BY: dict[str, InterruptStatus] = {
    "approve": "approved",
    "edit": "edited",
    "reject": "rejected",
    "respond": "responded",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class RowChanges:
    """What one event does to the stateful tables: the run's new row, the interrupts it
    creates or changes, and its audit entry if it is auditable."""

    run: RunRow
    interrupts: tuple[InterruptRow, ...] = ()
    audit: AuditRow | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class RunView:
    """A run's state as the fold needs it: its row (None before its first event), all its open
    interrupts and any closed one that an event refers to."""

    run: RunRow | None = None
    interrupts: Mapping[str, InterruptRow] = field(default_factory=dict)

    def after(self, changes: RowChanges) -> RunView:
        if not changes.interrupts:
            return RunView(run=changes.run, interrupts=self.interrupts)
        merged = dict(self.interrupts)
        merged.update((i.interrupt_id, i) for i in changes.interrupts)
        return RunView(run=changes.run, interrupts=merged)


@dataclass(frozen=True, kw_only=True, slots=True)
class Folded:
    """The final rows of a batch: one per run and per interrupt touched, audit in log order."""

    runs: tuple[RunRow, ...] = ()
    interrupts: tuple[InterruptRow, ...] = ()
    audit: tuple[AuditRow, ...] = ()


_NO_VIEW = RunView()


def timestamp(us: int) -> datetime:
    """Microseconds since the epoch as an aware UTC datetime (OverflowError when out of range)."""
    return _EPOCH + timedelta(0, 0, us)  # positional: a third faster than microseconds=


def event_row(event: LoggedEvent) -> EventRow:
    env = event.envelope
    return EventRow(
        run_id=env.run_id,
        seq=env.seq,
        event_id=env.event_id,
        type=env.type,
        occurred_at=timestamp(env.occurred_at_us),
        agent=env.agent,
        agent_version=env.agent_version,
        causation_id=env.causation_id,
        correlation_id=env.correlation_id,
        payload=payload_json(env.payload),
        partition=event.partition,
        offset=event.offset,
        hash=event.hash,
        prev_hash=env.prev_hash,
        raw=event.raw,
    )


def fold(views: Mapping[str, RunView], events: Sequence[LoggedEvent]) -> Folded:
    """Project `events` (in log order) onto the runs' `views`; final rows per key.

    Same result as `project` event by event, but an event that only moves a run's
    `last_seq` / `updated_at` (model and tool calls, recorded values, gate evaluations) is
    merged into the next row change of its run instead of building a row of its own: most
    events are such.
    """
    current = dict(views)
    pending: dict[str, tuple[int, int]] = {}  # run → (seq, µs) of passive events not in its row
    runs: dict[str, RunRow] = {}
    interrupts: dict[str, InterruptRow] = {}
    audit: list[AuditRow] = []
    for event in events:
        env = event.envelope
        run_id = env.run_id
        view = current.get(run_id) or _NO_VIEW
        kind = type(env.payload)
        if kind in _PASSIVE and view.run is not None:
            seq, at_us = env.seq, env.occurred_at_us
            known = pending.get(run_id)
            if known is not None:  # the later of each, as max() gives: most events are these
                if known[0] > seq:
                    seq = known[0]
                if known[1] > at_us:
                    at_us = known[1]
            pending[run_id] = (seq, at_us)
            if type(env.payload) is GateEvaluated:  # narrows the payload for mypy
                audit.append(_gated(env, env.payload, timestamp(env.occurred_at_us)))
            continue
        merged = pending.pop(run_id, None)
        if (
            merged is not None
            and view.run is not None
            and (merged[0] > env.seq or merged[1] > env.occurred_at_us)
        ):
            # Only passive events later than this one still show in the row once it is
            # bumped to this event: most of the time no row is built here.
            bumped = _bumped(view.run, merged[0], timestamp(merged[1]))
            view = RunView(run=bumped, interrupts=view.interrupts)
        changes = project(view, event)
        current[run_id] = view.after(changes)
        runs[run_id] = changes.run
        for interrupt in changes.interrupts:
            interrupts[interrupt.interrupt_id] = interrupt
        if changes.audit is not None:
            audit.append(changes.audit)
    for run_id, (seq, at_us) in pending.items():
        run = current[run_id].run
        assert run is not None  # only runs with a row have pending events
        runs[run_id] = _bumped(run, seq, timestamp(at_us))
    return Folded(
        runs=tuple(runs.values()), interrupts=tuple(interrupts.values()), audit=tuple(audit)
    )


def project(view: RunView, event: LoggedEvent) -> RowChanges:
    """What `event` changes, given the run's state before it."""
    env = event.envelope
    at = timestamp(env.occurred_at_us)
    payload = env.payload
    if view.run is None and type(payload) is RunStarted:  # the usual first event: one row
        return RowChanges(run=_new_run(env, at, payload.requested_by, payload.input))
    run = _touch(view.run, env, at)
    match payload:
        case RunStarted():
            started = _replace(
                run, requested_by=payload.requested_by, input=payload.input, started_at=at
            )
            return RowChanges(run=started)
        case InterruptRaised():
            return _raised(view, run, env, payload, at)
        case DecisionAccepted():
            return _accepted(view, run, env, payload, at)
        case DecisionRejected():
            return RowChanges(run=run, audit=_refused(view, env, payload, at))
        case InterruptExpired():
            return _expired(view, run, env, payload, at)
        case InterruptEscalated():
            return _escalated(view, run, env, payload, at)
        case RunCompleted():
            return _finished(view, run, at, "completed", output=payload.output)
        case RunFailed():
            error = f"{payload.error_type}: {payload.error}"
            return _finished(view, run, at, "failed", output=run.output, error=error)
        case RunCancelled():
            audit = _audit(env, at, "run_cancelled", payload.cancelled_by, reason=payload.reason)
            return _finished(view, run, at, "cancelled", output=run.output, audit=audit)
        case RunParked():
            return _parked(view, run, env, payload, at)
        case VoteRecorded():
            return _voted(view, run, env, payload, at)
        case DecisionHeld():
            return RowChanges(run=run, audit=_held(env, payload, at))
        case ModelCalled() | ToolCallScheduled() | ToolCallCompleted() | ToolCallFailed():
            return RowChanges(run=run)
        case GateEvaluated():
            return RowChanges(run=run, audit=_gated(env, payload, at))
        case ValueRecorded():
            return RowChanges(run=run)
        case RunQuarantined():
            audit = _audit(
                env,
                at,
                "run_quarantined",
                QUARANTINE_ACTOR,
                reason=payload.reason,
                detail={"strays": payload.strays},
            )
            return RowChanges(run=run, audit=audit)
        case QuarantineLifted():
            audit = _audit(env, at, "quarantine_lifted", payload.lifted_by, reason=payload.reason)
            return RowChanges(run=run, audit=audit)
        case RunResumed():
            return _resumed(view, run, env, payload, at)
        case _:  # pragma: no cover - the union is closed; mypy checks every arm is here
            assert_never(payload)


def edit_diff(requested: JsonObject | None, executed: JsonObject) -> JsonObject:
    """Keys an edit changed, added or removed, from the requested arguments to the edited."""
    before = requested or {}
    changed: JsonObject = {
        key: {"from": before[key], "to": value}
        for key, value in executed.items()
        if key in before and not _same(before[key], value)
    }
    added: JsonObject = {k: v for k, v in executed.items() if k not in before}
    removed: JsonObject = {k: v for k, v in before.items() if k not in executed}
    return {"changed": changed, "added": added, "removed": removed}


# -- the run row ------------------------------------------------------------------------------


def _touch(run: RunRow | None, env: EventEnvelope, at: datetime) -> RunRow:
    if run is None:
        return _new_run(env, at, "", None)
    return _bumped(run, env.seq, at)


def _new_run(env: EventEnvelope, at: datetime, requested_by: str, run_input: Json) -> RunRow:
    return RunRow(
        run_id=env.run_id,
        agent=env.agent,
        agent_version=env.agent_version,
        requested_by=requested_by,
        status="running",
        started_at=at,
        updated_at=at,
        finished_at=None,
        last_seq=env.seq,
        open_interrupts=0,
        input=run_input,
        output=None,
        error=None,
    )


def _bumped(run: RunRow, seq: int, at: datetime) -> RunRow:
    if seq <= run.last_seq and at <= run.updated_at:
        return run
    return _replace(run, last_seq=max(run.last_seq, seq), updated_at=max(run.updated_at, at))


def _recount(run: RunRow, view: RunView, changed: tuple[InterruptRow, ...]) -> RunRow:
    """The run with its open-interrupt count (and so its waiting/running status) brought up to
    date after `changed`; a finished run keeps its status."""
    merged = {**view.interrupts, **{i.interrupt_id: i for i in changed}}
    count = sum(1 for i in merged.values() if i.status == "open")
    status: RunStatus = run.status
    if status not in FINISHED_STATUSES:
        status = "waiting" if count else "running"
    return _replace(run, open_interrupts=count, status=status)


def _finished(
    view: RunView,
    run: RunRow,
    at: datetime,
    status: RunStatus,
    *,
    output: Json,
    error: str | None = None,
    audit: AuditRow | None = None,
) -> RowChanges:
    """A finishing event: the status it names, and every open interrupt withdrawn."""
    withdrawn = tuple(
        _replace(i, status="withdrawn", closed_at=at)
        for i in view.interrupts.values()
        if i.status == "open"
    )
    done = _replace(
        run, status=status, finished_at=at, open_interrupts=0, output=output, error=error
    )
    return RowChanges(run=done, interrupts=withdrawn, audit=audit)


def _parked(
    view: RunView, run: RunRow, env: EventEnvelope, payload: RunParked, at: datetime
) -> RowChanges:
    detail: JsonObject = {
        "call": payload.call,
        "expected": payload.expected,
        "actual": payload.actual,
    }
    if payload.detail:
        detail["explanation"] = payload.detail
    audit = _audit(env, at, "run_parked", ENGINE_ACTOR, reason=payload.reason, detail=detail)
    error = f"{payload.reason} (call {payload.call}: expected {payload.expected}, "
    error += f"got {payload.actual})"
    if payload.detail:
        error += f"\n{payload.detail}"
    return _finished(view, run, at, "parked", output=run.output, error=error, audit=audit)


def _resumed(
    view: RunView, run: RunRow, env: EventEnvelope, payload: RunResumed, at: datetime
) -> RowChanges:
    """A parked run goes on: the requests its parking withdrew are open again (a parked run
    took no decision and no expiry, so every withdrawn request of it is one of those)."""
    audit = _audit(env, at, "run_resumed", payload.resumed_by, reason=payload.reason)
    if run.status != "parked":
        return RowChanges(run=run, audit=audit)
    reopened = tuple(
        _replace(i, status="open", closed_at=None)
        for i in view.interrupts.values()
        if i.status == "withdrawn"
    )
    going = _replace(run, status="running", finished_at=None, error=None)
    return RowChanges(run=_recount(going, view, reopened), interrupts=reopened, audit=audit)


# -- interrupts -------------------------------------------------------------------------------


def _raised(
    view: RunView, run: RunRow, env: EventEnvelope, payload: InterruptRaised, at: datetime
) -> RowChanges:
    if payload.interrupt_id in view.interrupts:  # a duplicate: already projected
        return RowChanges(run=run)
    request = payload.request
    interrupt = InterruptRow(
        interrupt_id=payload.interrupt_id,
        run_id=env.run_id,
        seq=env.seq,
        call=payload.call,
        kind=request.kind,
        title=request.title,
        tool=request.tool,
        args=request.args,
        risk=request.risk,
        amount=request.amount,
        policy=request.policy,
        approvers=request.approvers,
        allowed=tuple(request.allowed),
        deadline=None if request.deadline_us is None else timestamp(request.deadline_us),
        on_timeout=request.on_timeout,
        level=request.level,
        quorum=request.quorum,
        votes=0,
        status="open",
        raised_at=at,
        closed_at=None,
        decided_by=None,
        decision_kind=None,
        reason=None,
        agent=env.agent,
        requested_by=run.requested_by,
        reasoning=request.reasoning,
        impact=request.impact,
        rule=request.rule,
        confidence=request.confidence,
        escalation=request.escalation,
        levels=request.levels,
        excluded=request.excluded,
    )
    detail: JsonObject = {
        "title": request.title,
        "approvers": list(request.approvers),
        "allowed": list(request.allowed),
        "deadline": None if interrupt.deadline is None else interrupt.deadline.isoformat(),
    }
    audit = _audit(
        env,
        at,
        "interrupt_raised",
        f"agent:{env.agent}",
        interrupt=interrupt,
        kind=request.kind,
        reason=request.reasoning or request.title,
        detail=detail,
    )
    return RowChanges(run=_recount(run, view, (interrupt,)), interrupts=(interrupt,), audit=audit)


def _close(
    known: InterruptRow | None,
    status: InterruptStatus,
    at: datetime,
    *,
    by: str,
    kind: str,
    reason: str,
) -> tuple[InterruptRow, ...]:
    if known is None or known.status != "open":
        return ()
    closed = _replace(
        known, status=status, closed_at=at, decided_by=by, decision_kind=kind, reason=reason
    )
    return (closed,)


def _accepted(
    view: RunView, run: RunRow, env: EventEnvelope, payload: DecisionAccepted, at: datetime
) -> RowChanges:
    known = view.interrupts.get(payload.interrupt_id)
    status = _CLOSED_BY[payload.kind]
    changed = _close(
        known, status, at, by=payload.decided_by, kind=payload.kind, reason=payload.reason
    )
    if changed and payload.kind == "edit":
        changed = (_replace(changed[0], edited_args=payload.edited_args),)
    diff = None
    if payload.kind == "edit" and payload.edited_args is not None:
        diff = edit_diff(known.args if known else None, payload.edited_args)
    audit = _audit(
        env,
        at,
        "decision_accepted",
        payload.decided_by,
        interrupt=known,
        interrupt_id=payload.interrupt_id,
        decision_id=payload.decision_id,
        kind=payload.kind,
        reason=payload.reason,
        edited_args=payload.edited_args,
        diff=diff,
        detail=_decision_detail(payload),
    )
    return RowChanges(run=_recount(run, view, changed), interrupts=changed, audit=audit)


def _decision_detail(payload: DecisionAccepted) -> JsonObject | None:
    detail: JsonObject = {}
    if payload.response is not None:
        detail["response"] = payload.response
    if payload.approved_by:
        detail["approved_by"] = list(payload.approved_by)
    return detail or None


def _voted(
    view: RunView, run: RunRow, env: EventEnvelope, payload: VoteRecorded, at: datetime
) -> RowChanges:
    """One approval towards a quorum: counted on the interrupt, which stays open."""
    known = view.interrupts.get(payload.interrupt_id)
    changed: tuple[InterruptRow, ...] = ()
    if known is not None and known.status == "open":
        changed = (_replace(known, votes=payload.votes, quorum=payload.quorum),)
    audit = _audit(
        env,
        at,
        "vote_recorded",
        payload.decided_by,
        interrupt=known,
        interrupt_id=payload.interrupt_id,
        decision_id=payload.decision_id,
        kind="approve",
        reason=payload.reason,
        detail={"votes": payload.votes, "quorum": payload.quorum},
    )
    return RowChanges(run=run, interrupts=changed, audit=audit)


def _held(env: EventEnvelope, payload: DecisionHeld, at: datetime) -> AuditRow:
    """A decision that arrived before its interrupt was raised; judged when it is."""
    return _audit(
        env,
        at,
        "decision_held",
        payload.decided_by,
        interrupt_id=payload.interrupt_id,
        decision_id=payload.decision_id,
        kind=payload.kind,
        reason=payload.reason,
        edited_args=payload.edited_args,
        detail={"issued_at": timestamp(payload.issued_at_us).isoformat()},
    )


def _refused(
    view: RunView, env: EventEnvelope, payload: DecisionRejected, at: datetime
) -> AuditRow:
    return _audit(
        env,
        at,
        "decision_refused",
        payload.decided_by,
        interrupt=view.interrupts.get(payload.interrupt_id),
        interrupt_id=payload.interrupt_id,
        decision_id=payload.decision_id,
        kind=payload.kind,
        reason=payload.reason,
    )


def _expired(
    view: RunView, run: RunRow, env: EventEnvelope, payload: InterruptExpired, at: datetime
) -> RowChanges:
    # The executor resumes the run on any expiry (escalate counts as a reject there), so an
    # expiry closes the interrupt whatever its action.
    known = view.interrupts.get(payload.interrupt_id)
    reason = "deadline passed"
    changed = _close(known, "expired", at, by=TIMEOUT_ACTOR, kind=payload.action, reason=reason)
    audit = _audit(
        env,
        at,
        "interrupt_expired",
        TIMEOUT_ACTOR,
        interrupt=known,
        interrupt_id=payload.interrupt_id,
        kind=payload.action,
        reason=reason,
    )
    return RowChanges(run=_recount(run, view, changed), interrupts=changed, audit=audit)


def _escalated(
    view: RunView, run: RunRow, env: EventEnvelope, payload: InterruptEscalated, at: datetime
) -> RowChanges:
    known = view.interrupts.get(payload.interrupt_id)
    changed: tuple[InterruptRow, ...] = ()
    if known is not None:
        changed = (_replace(known, level=payload.level, approvers=payload.approvers),)
    detail: JsonObject = {"level": payload.level, "approvers": list(payload.approvers)}
    audit = _audit(
        env,
        at,
        "interrupt_escalated",
        ESCALATION_ACTOR,
        interrupt=known,
        interrupt_id=payload.interrupt_id,
        reason=payload.reason,
        detail=detail,
    )
    return RowChanges(run=run, interrupts=changed, audit=audit)


# -- audit ------------------------------------------------------------------------------------


def _gated(env: EventEnvelope, payload: GateEvaluated, at: datetime) -> AuditRow:
    """A policy's verdict on a tool call: who (the policy), what (the tool, the action), why."""
    detail: JsonObject = {
        "call": payload.call,
        "round": payload.round,
        "rule": payload.rule,
        "confidence": payload.confidence,
        "levels": payload.levels,
    }
    return AuditRow(
        run_id=env.run_id,
        seq=env.seq,
        at=at,
        action="gate_evaluated",
        actor=f"policy:{payload.policy}",
        tool=payload.tool,
        kind=payload.action,
        reason=payload.reason,
        policy=payload.policy,
        risk=payload.risk,
        amount=payload.amount,
        detail=detail,
        agent=env.agent,
    )


def _audit(
    env: EventEnvelope,
    at: datetime,
    action: AuditAction,
    actor: str,
    *,
    interrupt: InterruptRow | None = None,
    interrupt_id: str | None = None,
    decision_id: str | None = None,
    kind: str | None = None,
    reason: str | None = None,
    edited_args: JsonObject | None = None,
    diff: JsonObject | None = None,
    detail: JsonObject | None = None,
) -> AuditRow:
    """An audit entry; what the interrupt asked for (tool, args, policy, risk, amount) is
    copied from it when it is known."""
    return AuditRow(
        run_id=env.run_id,
        seq=env.seq,
        at=at,
        action=action,
        interrupt_id=interrupt.interrupt_id if interrupt is not None else interrupt_id,
        decision_id=decision_id,
        actor=actor,
        tool=interrupt.tool if interrupt is not None else None,
        kind=kind,
        reason=reason,
        policy=interrupt.policy if interrupt is not None else None,
        risk=interrupt.risk if interrupt is not None else None,
        amount=interrupt.amount if interrupt is not None else None,
        args=interrupt.args if interrupt is not None else None,
        edited_args=edited_args,
        diff=diff,
        detail=detail,
        agent=env.agent,
    )


_Row = TypeVar("_Row", RunRow, InterruptRow)
_Copier = Callable[[Any, dict[str, Any]], Any]
_COPIERS: dict[type[Any], tuple[frozenset[str], _Copier]] = {}


def _replace(row: _Row, **changes: Any) -> _Row:
    """`dataclasses.replace` for the rows (which have no `__post_init__`), about twice as
    fast: it runs about once per event. An unknown field is a TypeError, as there."""
    cls = type(row)
    found = _COPIERS.get(cls)
    if found is None:
        found = _COPIERS[cls] = _copier(cls)
    names, copy = found
    if not names.issuperset(changes):
        raise TypeError(f"{cls.__name__} has no field {sorted(set(changes) - names)}")
    copied: _Row = copy(row, changes)
    return copied


def _copier(cls: type[Any]) -> tuple[frozenset[str], _Copier]:
    """A function that copies a frozen row with `changes`, compiled once per row type (as
    dataclasses compiles `__init__`): attribute reads and slot stores, no keyword parsing."""
    names = tuple(f.name for f in fields(cls))
    lines = [
        f"    set_(new, {n!r}, changes[{n!r}] if {n!r} in changes else row.{n})" for n in names
    ]
    source = (
        "def copy(row, changes):\n    new = new_(cls)\n" + "\n".join(lines) + "\n    return new"
    )
    scope: dict[str, Any] = {"new_": object.__new__, "set_": object.__setattr__, "cls": cls}
    exec(compile(source, f"<copy {cls.__name__}>", "exec"), scope)
    copy: _Copier = scope["copy"]
    return frozenset(names), copy


def _same(a: Json, b: Json) -> bool:
    """JSON equality: 1 == 1.0, but true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b
