"""An index of a run's recorded events by call position, which replay reads from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.privacy.sealing import withheld_in
from events.json import digest
from events.run_events import (
    DecisionAccepted,
    GateEvaluated,
    InterruptEscalated,
    InterruptExpired,
    InterruptRaised,
    ModelCalled,
    RunEventPayload,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallScheduled,
    ValueRecorded,
)


@dataclass(slots=True, init=False)
class CallRecord:
    """What the history says about one call position."""

    kind: str
    name: str
    digest: str
    evaluations: tuple[GateEvaluated, ...]
    """The policy's verdicts on this call, by round (1: as called; then one per edit)."""
    gates: tuple[InterruptRaised, ...]
    """Approval interrupts for this call, in order (levels, re-approvals, escalations)."""
    in_doubt: tuple[InterruptRaised, ...]
    """One per crash mid-call, in order: the k-th asks about the k-th schedule."""
    schedules: int
    questions: tuple[InterruptRaised, ...]
    """A question, then one re-asked question per escalation."""
    scheduled: ToolCallScheduled | None
    completed: ToolCallCompleted | None
    failed: ToolCallFailed | None
    value: ValueRecorded | None
    model: ModelCalled | None

    def __init__(self, kind: str, name: str, digest: str) -> None:
        # Written by hand: a rebuild makes one record per call, and the generated __init__
        # (keyword defaults, a sentinel test per list) cost ~45 % more instructions. Tuples,
        # the shared empty one until an event comes: most calls have no gate, doubt or
        # question, and four new lists were a tenth of a rebuild.
        self.kind = kind
        self.name = name
        self.digest = digest
        self.evaluations = self.gates = self.in_doubt = self.questions = ()
        self.schedules = 0
        self.scheduled = self.completed = self.failed = self.value = self.model = None

    def matches(self, kind: str, name: str, call_digest: str) -> bool:
        """Whether a call made now is the one recorded here. A call refused for its
        arguments before any gate recorded only its failure: its name and digest are
        unknown and match anything of its kind."""
        if self.kind != kind:
            return False
        if self.name and self.name != name:
            return False
        return not (self.digest and self.digest != call_digest)

    def signature(self) -> str:
        return f"{self.kind} {self.name} {self.digest[:12]}"

    @property
    def question(self) -> InterruptRaised | None:
        return self.questions[0] if self.questions else None


def _once(
    events: tuple[InterruptRaised, ...], event: InterruptRaised
) -> tuple[InterruptRaised, ...]:
    if all(known.interrupt_id != event.interrupt_id for known in events):
        return (*events, event)
    return events


class HistoryIndex:
    """Mutable index owned by one replayer; adding the same event twice is harmless."""

    def __init__(self) -> None:
        self.calls: dict[int, CallRecord] = {}
        self.outcomes: dict[str, DecisionAccepted | InterruptExpired] = {}
        self.escalations: dict[str, InterruptEscalated] = {}
        self.max_position = -1
        """The highest recorded call position (-1: none). Kept as records are made, not
        computed from `calls`: `replaying` reads it on every log line of the agent."""

    def add(self, event: RunEventPayload) -> None:
        HISTORY_ADDS.get(type(event), HistoryIndex._add_any)(self, event)

    def _add_scheduled(self, event: ToolCallScheduled) -> None:
        rec = self._record(event.call, "tool", event.tool, event.args_digest)
        if rec.scheduled is not event:
            rec.schedules += 1
        rec.scheduled = event

    def _add_completed(self, event: ToolCallCompleted) -> None:
        # Nearly always after its schedule: the record exists, the lookup is enough.
        call = event.call
        (self.calls.get(call) or self._record(call, "tool", "", "")).completed = event

    def _add_any(self, event: RunEventPayload) -> None:
        match event:  # the classes are unrelated: the most frequent come first
            case ToolCallScheduled():  # a subclass: `add` picks these two by exact class
                self._add_scheduled(event)
            case ToolCallCompleted():
                self._add_completed(event)
            case InterruptRaised(call=call, request=request):
                if request.kind == "tool":
                    # Arguments whose personal values were erased match by name alone.
                    known = "" if withheld_in(request.args) else digest(request.args)
                    rec = self._record(call, "tool", request.tool or "", known)
                    rec.gates = _once(rec.gates, event)
                elif request.kind == "in_doubt":
                    rec = self._record(call, "tool", request.tool or "", "")
                    rec.in_doubt = _once(rec.in_doubt, event)
                else:
                    rec = self._record(call, "interrupt", "", digest(request.title))
                    rec.questions = _once(rec.questions, event)
            case GateEvaluated(call=call):
                rec = self._record(call, "tool", event.tool, event.args_digest)
                if all(known.round != event.round for known in rec.evaluations):
                    rec.evaluations = (*rec.evaluations, event)
            case ToolCallFailed(call=call):
                self._record(call, "tool", "", "").failed = event
            case ValueRecorded(call=call, kind=kind):
                self._record(call, "value", kind, "").value = event
            case ModelCalled(call=call):
                self._record(call, "model", "", event.request_digest).model = event
            case (
                DecisionAccepted(interrupt_id=interrupt_id)
                | InterruptExpired(interrupt_id=interrupt_id)
            ):
                self.outcomes.setdefault(interrupt_id, event)
            case InterruptEscalated(interrupt_id=interrupt_id):
                self.escalations.setdefault(interrupt_id, event)
            case _:
                pass

    def _record(self, call: int, kind: str, name: str, call_digest: str) -> CallRecord:
        rec = self.calls.get(call)
        if rec is None:
            rec = self.calls[call] = CallRecord(kind, name, call_digest)
            if call > self.max_position:
                self.max_position = call
        elif not rec.digest and call_digest:
            rec.digest = call_digest
        return rec


# By exact class, the two events of every recorded tool call; the rest go through the
# `match` (which hands a subclass of these two to the same handlers).
HISTORY_ADDS: dict[type, Callable[[HistoryIndex, Any], None]] = {
    ToolCallScheduled: HistoryIndex._add_scheduled,
    ToolCallCompleted: HistoryIndex._add_completed,
}
