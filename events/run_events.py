"""Run events: the payloads appended to a run's stream, in past tense.

A run's history is these payloads wrapped in `EventEnvelope`s. `call` is the position of the
agent code's call through its run context (0, 1, 2, ... in program order); replay matches
recorded events to calls by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from events.approval import ApprovalRequest, DecisionKind, GateAction, RiskLevel, TimeoutAction
from events.fields import json_field
from events.json import Json, JsonObject

ToolMode: TypeAlias = Literal["live", "dry-run", "idempotent"]


@dataclass(frozen=True, kw_only=True, slots=True)
class RunStarted:
    """A run began. A fork (`countersign fork`) names the run it was forked from and the
    origin's seq its history copies up to, and how its tools run."""

    input: JsonObject = json_field()
    requested_by: str
    command_id: str
    forked_from: str = ""
    forked_at: int = -1
    forked_by: str = ""
    """Who forked it. A fork keeps its origin's `requested_by`: it replays their request, and
    the same people may (and may not) decide on it."""
    origin_hash: str = ""
    """sha256 of the origin's event at `forked_at`, as its log holds it: where the fork
    leaves the origin's chain (empty when the worker could not check the prefix)."""
    tool_mode: ToolMode = "live"
    """live: tools run; dry-run: none runs (`ctx.dry_run`; the origin's recorded result, a
    tool's own dry run, or a stand-in); idempotent: only idempotent tools run."""
    recorded_results: Json = json_field(default=None)
    """dry-run: the origin's tool results after the fork point, [{tool, args_digest, result}]."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelCalled:
    call: int
    request_digest: str
    request: Json = json_field()
    response: Json = json_field()


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolCallScheduled:
    """Written before a tool runs, so that a crash mid-call is visible to the next owner."""

    call: int
    tool: str
    args: JsonObject = json_field()
    args_digest: str
    idempotency_key: str
    idempotent: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolCallCompleted:
    call: int
    result: Json = json_field()


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolCallFailed:
    call: int
    error_type: str
    error: str


@dataclass(frozen=True, kw_only=True, slots=True)
class InterruptRaised:
    call: int
    interrupt_id: str
    request: ApprovalRequest


@dataclass(frozen=True, kw_only=True, slots=True)
class DecisionAccepted:
    interrupt_id: str
    decision_id: str
    kind: DecisionKind
    decided_by: str
    reason: str = ""
    edited_args: JsonObject | None = json_field(default=None)
    response: Json = json_field(default=None)
    approved_by: tuple[str, ...] = ()
    """Every principal whose approval counted (k-of-n); empty means just `decided_by`."""


@dataclass(frozen=True, kw_only=True, slots=True)
class GateEvaluated:
    """A policy looked at a proposed tool call and decided what it needs.

    `action` is auto (run it), notify (run it, then tell people), approve (ask first) or
    escalate (hand it to someone above). `policy` names the deciding policy and its version
    (`name@version`), `rule` the rule inside it. `round` is 1 for the call as the agent made
    it and counts up for every edit that was re-evaluated. The rest is the approval plan the
    engine follows: `levels` is a list of `{"approvers": [...], "quorum": k}`, one per level.
    Replay follows the recorded plan, so a policy changed later never changes a decided call.
    """

    call: int
    tool: str
    args_digest: str
    action: GateAction
    policy: str
    rule: str = ""
    reason: str = ""
    risk: RiskLevel = "medium"
    confidence: float | None = None
    amount: float | None = None
    round: int = 1
    levels: Json = json_field(default=None)
    allowed: tuple[DecisionKind, ...] = ("approve", "edit", "reject")
    deadline_s: float | None = None
    on_timeout: TimeoutAction = "reject"
    escalate_to: tuple[str, ...] = ()
    relevant_args: Json = json_field(default=None)
    """Arguments (a list) whose change by an edit always goes back for approval; null or
    empty: only an edit that makes the call more demanding goes back."""


@dataclass(frozen=True, kw_only=True, slots=True)
class VoteRecorded:
    """One approval towards a k-of-n quorum; the interrupt stays open until `quorum` is met."""

    interrupt_id: str
    decision_id: str
    decided_by: str
    votes: int
    quorum: int
    reason: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class DecisionHeld:
    """A decision for an interrupt this run has not raised yet (ids are deterministic, so a
    system may know one early). It is judged when the interrupt is raised, and refused if the
    run ends without raising it."""

    interrupt_id: str
    decision_id: str
    kind: str
    decided_by: str
    issued_at_us: int
    reason: str = ""
    edited_args: JsonObject | None = json_field(default=None)
    response: Json = json_field(default=None)
    digest: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class DecisionRejected:
    """A decision that was refused; the run is unchanged. `reason` says why."""

    interrupt_id: str
    decision_id: str
    kind: str
    decided_by: str
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class InterruptExpired:
    interrupt_id: str
    action: Literal["reject", "escalate", "approve", "respond"]
    """`respond`: the question's default answer (its answer schema's `default`) is the answer."""


@dataclass(frozen=True, kw_only=True, slots=True)
class InterruptEscalated:
    """The expired interrupt's call goes to `approvers`, as a new interrupt due `deadline_us`."""

    interrupt_id: str
    level: int
    approvers: tuple[str, ...]
    reason: str
    deadline_us: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ValueRecorded:
    """A non-deterministic value the agent asked for (now, uuid, random), or a patch marker
    (`kind="patch"`, the value is the change id): the run took the new branch of
    `ctx.patched(change_id)`."""

    call: int
    kind: Literal["now", "uuid", "random", "patch"]
    value: Json = json_field()


@dataclass(frozen=True, kw_only=True, slots=True)
class RunCompleted:
    output: Json = json_field()


@dataclass(frozen=True, kw_only=True, slots=True)
class RunFailed:
    error_type: str
    error: str


@dataclass(frozen=True, kw_only=True, slots=True)
class RunCancelled:
    cancelled_by: str
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class RunParked:
    """Replay diverged from the recorded history (or the run cannot go on); an operator must act.

    `expected` and `actual` are one-line signatures of the recorded and the new call; `detail`
    is the explanation for people: the step, both calls with their arguments and their
    difference, the source line of the new call and the likely fix (empty before release 2).
    """

    reason: str
    call: int
    expected: str
    actual: str
    detail: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class RunResumed:
    """A parked run goes on: someone asked (`ResumeRun`), once its code replays again. The
    worker replays it from its history at once; if it diverges again, it is parked again."""

    resumed_by: str
    reason: str
    command_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class RunQuarantined:
    """A restore found records of this run that do not extend its chain (undecodable, forged,
    duplicated, forked). The run takes no decision and runs no tool until an operator cancels
    it (`RunCancelled`) or accepts its chain as it is (`QuarantineLifted`). `strays` lists
    them: `[{"offset": n, "why": "..."}]` (at most 100); a later restore knows them."""

    reason: str
    strays: Json = json_field()


@dataclass(frozen=True, kw_only=True, slots=True)
class QuarantineLifted:
    """An operator accepted the run's chain as it is: the strays stay outside it, and the run
    goes on from where it stood."""

    lifted_by: str
    reason: str
    command_id: str


RunEventPayload: TypeAlias = (
    RunStarted
    | ModelCalled
    | ToolCallScheduled
    | ToolCallCompleted
    | ToolCallFailed
    | InterruptRaised
    | DecisionAccepted
    | DecisionRejected
    | InterruptExpired
    | InterruptEscalated
    | ValueRecorded
    | RunCompleted
    | RunFailed
    | RunCancelled
    | RunParked
    | GateEvaluated
    | VoteRecorded
    | DecisionHeld
    | RunQuarantined
    | QuarantineLifted
    | RunResumed
)

RUN_EVENT_TYPES: tuple[type[RunEventPayload], ...] = (
    RunStarted,
    ModelCalled,
    ToolCallScheduled,
    ToolCallCompleted,
    ToolCallFailed,
    InterruptRaised,
    DecisionAccepted,
    DecisionRejected,
    InterruptExpired,
    InterruptEscalated,
    ValueRecorded,
    RunCompleted,
    RunFailed,
    RunCancelled,
    RunParked,
    GateEvaluated,
    VoteRecorded,
    DecisionHeld,
    RunQuarantined,
    QuarantineLifted,
    RunResumed,
)

TERMINAL_TYPES: tuple[type[RunEventPayload], ...] = (RunCompleted, RunFailed, RunCancelled)
