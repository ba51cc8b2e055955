"""Pure command handling: a decision and the run's state in, the event to append out.

Nothing here touches a log; the worker turns the verdicts into records. The checks, in order:
a repeated decision id gets its first outcome again; a decided, expired or finished interrupt
refuses; an interrupt not raised yet holds the decision (`DecisionHeld`) while the run can
still raise it; then kind, digest, deadline, who decides (separation of duties, earlier
levels, approvers and roles, one vote per person) and the edit or answer against its schema.
An approval short of a k-of-n quorum is a `VoteRecorded`; the one that meets it closes the
interrupt with a `DecisionAccepted` naming every approver.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.agent.app import App
from engine.agent.argspec import validate
from engine.agent.authorization import (
    EMPTY_DIRECTORY,
    Directory,
    among,
    refusal_for_principal,
)
from engine.core.gating import gate_purpose
from engine.core.ids import interrupt_id_for
from engine.core.limits import DEFAULT_LIMITS
from engine.core.state import EXPIRED, WITHDRAWN, RunState
from events.approval import DECISION_KINDS, ApprovalRequest
from events.commands import ResumeRun, SubmitDecision
from events.limits import MAX_ECHO_CHARS, clip
from events.run_events import (
    DecisionAccepted,
    DecisionHeld,
    DecisionRejected,
    InterruptRaised,
    VoteRecorded,
)

MAX_HELD_PER_RUN = DEFAULT_LIMITS.max_held
TIMEOUT_PRINCIPAL = "system:timeout"

Verdict = DecisionAccepted | DecisionRejected | VoteRecorded | DecisionHeld


@dataclass(frozen=True, slots=True)
class DecisionVerdict:
    """`event` is None when nothing is appended (unknown run, or a repeated decision id).

    `status` is what the sender is told: accepted, refused, counted (one vote of a quorum)
    or held (judged when its interrupt is raised)."""

    accepted: bool
    reason: str
    event: Verdict | None
    repeat: bool = False
    status: str = ""


def judge_decision(
    state: RunState | None,
    command: SubmitDecision,
    *,
    directory: Directory = EMPTY_DIRECTORY,
    now_us: int | None = None,
) -> DecisionVerdict:
    """Validate a decision before it touches a run. The first accepted decision wins."""
    if state is None:
        return DecisionVerdict(
            False, f"unknown run {_echo(command.run_id)}", None, status="refused"
        )
    earlier = state.decisions.get(command.decision_id)
    if earlier is not None:
        status = "accepted" if earlier.accepted else "refused"
        return DecisionVerdict(earlier.accepted, earlier.reason, None, repeat=True, status=status)
    if any(
        held.decision_id == command.decision_id
        for waiting in state.held.values()
        for held in waiting
    ):
        return DecisionVerdict(False, _held_reason(command), None, repeat=True, status="held")
    return _judge(state, command, directory, now_us)


def judge_held(
    state: RunState,
    held: DecisionHeld,
    *,
    directory: Directory = EMPTY_DIRECTORY,
    now_us: int | None = None,
) -> DecisionVerdict:
    """Judge a held decision now that its interrupt is raised (or the run has ended)."""
    return _judge(state, command_of(held, state.run_id), directory, now_us)


def held_ready(state: RunState) -> list[DecisionHeld]:
    """Held decisions that can be judged now: their interrupt is raised or decided, or the
    run has ended (so it never will be), in arrival order."""
    ready: list[DecisionHeld] = []
    for interrupt_id, waiting in state.held.items():
        if (
            state.terminal
            or interrupt_id in state.open_interrupts
            or interrupt_id in state.closed_interrupts
        ):
            ready.extend(waiting)
    return ready


def command_of(held: DecisionHeld, run_id: str) -> SubmitDecision:
    return SubmitDecision(
        decision_id=held.decision_id,
        run_id=run_id,
        interrupt_id=held.interrupt_id,
        kind=held.kind,
        decided_by=held.decided_by,
        issued_at_us=held.issued_at_us,
        reason=held.reason,
        edited_args=held.edited_args,
        response=held.response,
        digest=held.digest,
    )


def _judge(
    state: RunState, command: SubmitDecision, directory: Directory, now_us: int | None
) -> DecisionVerdict:
    reason = _stopped(state) or _closed(state, command)
    if reason:
        return _refuse(command, reason)
    interrupt = state.open_interrupts.get(command.interrupt_id)
    if interrupt is None:
        return _hold(state, command)
    reason = (
        _malformed(command, interrupt.request)
        or _late(interrupt.request, now_us)
        or _unauthorized(state, command, interrupt, directory)
        or _invalid_content(command, interrupt.request)
    )
    if reason:
        return _refuse(command, reason)
    return _accept(state, command, interrupt)


def _stopped(state: RunState) -> str:
    """A run the engine will not move on takes no decision: accepting one would record an
    approval that nothing acts on."""
    if state.quarantined:
        return (
            f"run {state.run_id} is quarantined: its log holds records that break its chain; "
            "an operator must cancel it or accept its chain (countersign runs quarantined)"
        )
    if state.status == "parked":
        return (
            f"run {state.run_id} is parked: it takes no decision until it is resumed "
            f"(countersign runs resume-parked {state.run_id}) or cancelled; "
            f"why it stopped: countersign runs show {state.run_id}"
        )
    return ""


def _closed(state: RunState, command: SubmitDecision) -> str:
    interrupt = _echo(command.interrupt_id)
    closed_by = state.closed_interrupts.get(command.interrupt_id)
    if closed_by == EXPIRED:
        return f"interrupt {interrupt} expired before this decision"
    if closed_by == WITHDRAWN:
        return f"interrupt {interrupt} was withdrawn: run {state.run_id} is {state.status}"
    if closed_by is not None:
        return f"interrupt {interrupt} was already decided by decision {closed_by}"
    if state.terminal:
        return (
            f"interrupt {interrupt} was never raised and never will be: "
            f"run {state.run_id} is {state.status}"
        )
    return ""


def _hold(state: RunState, command: SubmitDecision) -> DecisionVerdict:
    if not command.decided_by:
        return _refuse(command, "a decision must say who made it (decided_by)")
    if command.kind not in DECISION_KINDS:
        return _refuse(command, _unknown_kind(command.kind))
    if sum(len(waiting) for waiting in state.held.values()) >= MAX_HELD_PER_RUN:
        return _refuse(
            command,
            f"unknown interrupt {_echo(command.interrupt_id)} for run {state.run_id} "
            f"(and {MAX_HELD_PER_RUN} decisions are already held for it)",
        )
    held = DecisionHeld(
        interrupt_id=command.interrupt_id,
        decision_id=command.decision_id,
        kind=command.kind,
        decided_by=command.decided_by,
        issued_at_us=command.issued_at_us,
        reason=command.reason,
        edited_args=command.edited_args,
        response=command.response,
        digest=command.digest,
    )
    return DecisionVerdict(False, _held_reason(command), held, status="held")


def _held_reason(command: SubmitDecision) -> str:
    return (
        f"interrupt {_echo(command.interrupt_id)} is not raised yet; the decision is held and "
        "will be judged when it is (or refused if the run ends first)"
    )


def _unknown_kind(kind: str) -> str:
    return f"unknown decision kind {_echo(kind)!r}; one of {', '.join(DECISION_KINDS)}"


def _malformed(command: SubmitDecision, request: ApprovalRequest) -> str:
    if command.kind not in DECISION_KINDS:
        return _unknown_kind(command.kind)
    if command.kind not in request.allowed:
        return f"{_echo(command.kind)!r} is not allowed here; allowed: {', '.join(request.allowed)}"
    if command.digest and command.digest != request.digest:
        return "digest does not match the request (it changed, or the decision is for another)"
    if not command.decided_by:
        return "a decision must say who made it (decided_by)"
    return ""


def _late(request: ApprovalRequest, now_us: int | None) -> str:
    if now_us is not None and request.deadline_us is not None and now_us >= request.deadline_us:
        return "the deadline of this request has passed"
    return ""


def _unauthorized(
    state: RunState, command: SubmitDecision, interrupt: InterruptRaised, directory: Directory
) -> str:
    """Separation of duties covers every decision that lets a tool run or supplies its result
    (approve, edit, and respond to an in-doubt call); anyone listed may reject or answer a
    question. Listed means: among `approvers` (by name or role), and not `excluded`."""
    request = interrupt.request
    gives_effect = command.kind in ("approve", "edit") or (
        command.kind == "respond" and request.kind != "question"
    )
    principal = command.decided_by
    if (
        gives_effect
        and principal in request.excluded
        and _edited_this_call(state, interrupt, principal)
    ):
        return f"{principal} edited this call; an edit is approved by someone else"
    reason = refusal_for_principal(
        command.decided_by,
        approvers=request.approvers,
        excluded=request.excluded if gives_effect else (),
        requester=state.requested_by,
        separation_of_duties=gives_effect,
        directory=directory,
    )
    if reason:
        return reason
    voters = state.votes.get(command.interrupt_id, ())
    if among(command.decided_by, voters):
        return (
            f"{_echo(command.decided_by)} already approved this request; "
            "each approval needs a different person"
        )
    return ""


_GATES_LOOKED_AT = 100
"""How many earlier approval interrupts of one call are looked at to name an editor."""


def _edited_this_call(state: RunState, interrupt: InterruptRaised, principal: str) -> bool:
    """Whether `principal` edited an earlier approval of the same call (their edit is what
    is being approved now). Interrupt ids are derived from the call, so they can be listed."""
    edits = {
        record.interrupt_id
        for record in state.decisions.values()
        if record.decided_by == principal and record.kind == "edit"
    }
    if not edits:
        return False
    return any(
        interrupt_id_for(state.run_id, interrupt.call, gate_purpose(asked)) in edits
        for asked in range(_GATES_LOOKED_AT)
    )


def _invalid_content(command: SubmitDecision, request: ApprovalRequest) -> str:
    if command.kind == "edit":
        if not isinstance(command.edited_args, dict):
            return "an edit must carry the new arguments as a JSON object"
        errors = validate(command.edited_args, request.args_schema)
        if errors:
            return "the edited arguments are invalid: " + "; ".join(errors)
    if command.kind == "respond" and request.answer_schema is not None:
        errors = validate(command.response, request.answer_schema, "the answer")
        if errors:
            return "the answer does not fit the request's answer schema: " + "; ".join(errors)
    return ""


def _accept(
    state: RunState, command: SubmitDecision, interrupt: InterruptRaised
) -> DecisionVerdict:
    quorum = interrupt.request.quorum
    voters = state.votes.get(command.interrupt_id, ())
    if command.kind == "approve" and len(voters) + 1 < quorum:
        vote = VoteRecorded(
            interrupt_id=command.interrupt_id,
            decision_id=command.decision_id,
            decided_by=command.decided_by,
            votes=len(voters) + 1,
            quorum=quorum,
            reason=command.reason,
        )
        reason = f"approval {vote.votes} of {quorum} counted"
        return DecisionVerdict(True, reason, vote, status="counted")
    approved_by = (*voters, command.decided_by) if command.kind in ("approve", "edit") else ()
    accepted = DecisionAccepted(
        interrupt_id=command.interrupt_id,
        decision_id=command.decision_id,
        kind=command.kind,  # type: ignore[arg-type]  # checked by _malformed
        decided_by=command.decided_by,
        reason=command.reason,
        edited_args=command.edited_args if command.kind == "edit" else None,
        response=command.response if command.kind == "respond" else None,
        approved_by=approved_by if len(approved_by) > 1 else (),
    )
    return DecisionVerdict(True, command.reason, accepted, status="accepted")


def _refuse(command: SubmitDecision, reason: str) -> DecisionVerdict:
    refused = DecisionRejected(
        interrupt_id=command.interrupt_id,
        decision_id=command.decision_id,
        kind=command.kind,
        decided_by=command.decided_by,
        reason=reason,
    )
    return DecisionVerdict(False, reason, refused, status="refused")


def _echo(value: str) -> str:
    """A value from the command quoted in a reason, clipped (docs/schemas.md, limits)."""
    return clip(value, MAX_ECHO_CHARS)


def resume_refusal(state: RunState | None, command: ResumeRun, app: App) -> str:
    """Why a parked run cannot be resumed by `command` here, or "" when it can: it must be
    parked (not finished, not quarantined), the command must say who asks, and this worker
    must have the run's agent version (deploy the fixed code, or the old version, first)."""
    if state is None:
        return f"run {command.run_id} is not live here: unknown, or finished"
    if not command.resumed_by:
        return "a resume must say who asks for it (resumed_by)"
    if state.quarantined:
        return f"run {state.run_id} is quarantined: cancel it or accept its chain first"
    if state.status != "parked":
        return f"run {state.run_id} is {state.status}, not parked: nothing to resume"
    if app.find_agent(state.agent, state.agent_version) is None:
        return (
            f"this worker has no agent {state.agent!r} version {state.agent_version!r}: "
            "deploy it (the fixed code, or the old version again), then resume"
        )
    return ""
