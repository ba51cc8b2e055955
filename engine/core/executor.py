"""The replay executor: recorded history in, new events and effects out. Pure (no I/O).

A `Replayer` drives one run's agent coroutine. Calls whose results are recorded resolve at
once, without suspending, so rebuilding a run is just running its code. A call with no
recorded result emits the event that starts it (an interrupt, a scheduled tool call, a
recorded value) and suspends; the worker performs the effects, appends their results and
advances again. The clock, ids and randomness are passed in as `Services`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

from engine.agent.app import AgentSpec, App, ToolSpec
from engine.agent.argspec import validate
from engine.agent.context import (
    AllCalls,
    Call,
    Decision,
    InterruptCall,
    RunContext,
    ToolCall,
    ToolResult,
)
from engine.agent.guards import RunSignals, evaluate_call
from engine.agent.policies import Gate, Proposal
from engine.core.deadlines import default_answer
from engine.core.divergence import CallShape, Divergence, caller_site, recorded_shape
from engine.core.gating import (
    Cleared,
    GateContext,
    GateWalk,
    evaluation_event,
    gate_purpose,
    gate_request,
    legacy_evaluation,
    needs_decision,
    needs_reapproval,
    question_purpose,
    signals_before,
)
from engine.core.history import HISTORY_ADDS, CallRecord, HistoryIndex
from engine.core.ids import idempotency_key_for, interrupt_id_for
from engine.errors import AgentProtocolError, ConfigurationError, NonDeterminismError
from events.approval import ApprovalRequest
from events.json import Json, JsonObject, canonical_json, digest, has_digest
from events.run_events import (
    DecisionAccepted,
    GateEvaluated,
    InterruptEscalated,
    InterruptExpired,
    InterruptRaised,
    RunCompleted,
    RunEventPayload,
    RunFailed,
    RunParked,
    RunStarted,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallScheduled,
    ValueRecorded,
)

INVALID_ARGUMENTS = "InvalidArguments"
"""The error type of a tool call refused because its arguments break the tool's schema."""


@dataclass(frozen=True, slots=True)
class Services:
    """Where live values come from; replay never calls them for recorded calls."""

    clock_us: Callable[[], int]
    new_uuid: Callable[[], str]
    random: Callable[[], float]


@dataclass(frozen=True, slots=True)
class ExecuteTool:
    """An effect for the worker: run this tool and append its result."""

    call: int
    tool: str
    args: JsonObject
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class Advance:
    events: list[RunEventPayload]
    effects: list[ExecuteTool]
    finished: bool


_PENDING: tuple[bool, Any] = (False, None)
# A tuple, not `A | B`: the union would be built anew for every event fed.
_ENDS_A_CALL = (ToolCallCompleted, ToolCallFailed)


class Replayer:
    """Rebuilds and continues one run. Feed it recorded events, then `advance()`."""

    def __init__(
        self,
        app: App,
        agent: AgentSpec,
        run_id: str,
        started: RunStarted,
        services: Services,
    ) -> None:
        self._app = app.owner_of(agent.name)  # its tools, guards and ladders, when included
        self._agent = agent
        self._run_id = run_id
        self._started = started
        self._services = services
        self._index = HistoryIndex()
        self._next = 0
        self._in_flight: set[int] = set()
        self._emitted: list[RunEventPayload] = []
        self._effects: list[ExecuteTool] = []
        self._coro: Coroutine[Any, Any, Json] | None = None
        self._stop: RunEventPayload | None = None
        self.finished = False
        self.news = False
        """Whether events came in since the last `advance` that it did not emit itself (a
        decision, an expiry, a tool's result): the run resumes with something new."""
        self.context = RunContext(
            self,
            run_id=run_id,
            agent=agent.name,
            agent_version=agent.version,
            requested_by=started.requested_by,
            dry_run=started.tool_mode == "dry-run",
        )

    # -- the worker's side --------------------------------------------------------------------

    def feed(self, events: Iterable[RunEventPayload]) -> None:
        own = {id(event) for event in self._emitted}  # what advance emitted, fed back
        index, in_flight, news = self._index, self._in_flight, self.news
        # `HistoryIndex.add`'s dispatch by class, without its call per event.
        adds, add_any = HISTORY_ADDS, HistoryIndex.add
        for event in events:
            if not news and id(event) not in own:
                news = self.news = True
            adds.get(type(event), add_any)(index, event)
            if in_flight and isinstance(event, _ENDS_A_CALL):
                in_flight.discard(event.call)

    def advance(self) -> Advance:
        """Run the agent until it waits; return what it appended and asked for."""
        if self.finished:
            return Advance([], [], True)
        self._emitted, self._effects = [], []
        self.news = False
        try:
            if self._coro is None:
                self._coro = self._agent.fn(self.context, self._started.input)
            coro = self._coro
            yielded = coro.send(None)
            if self._stop is None and not isinstance(yielded, Call | AllCalls):
                raise AgentProtocolError(
                    f"agent awaited {type(yielded).__name__}; only run-context calls may be "
                    "awaited (use ctx.tool / ctx.interrupt / ctx.all)"
                )
        except StopIteration as stop:
            if self._stop is None:
                self._complete(stop.value)
        except NonDeterminismError:
            pass  # `_diverged` set the RunParked to append (agent code cannot swallow it)
        except (AgentProtocolError, ConfigurationError) as exc:
            self._park(self._next, "", str(exc), type(exc).__name__)
        except Exception as exc:  # the agent's own error ends the run; it is recorded, not lost
            if self._stop is None:
                self._finish(RunFailed(error_type=type(exc).__name__, error=str(exc)))
        if self._stop is not None and not self.finished:
            self._finish(self._stop)
        return Advance(self._emitted, self._effects, self.finished)

    def close(self) -> None:
        if self._coro is not None:
            self._coro.close()
        self.finished = True

    # -- the agent's side (called from RunContext / Call.__await__) ---------------------------

    @property
    def replaying(self) -> bool:
        return self._next <= self._index.max_position

    def next_position(self) -> int:
        position = self._next
        self._next += 1
        return position

    def record_value(self, kind: Literal["now", "uuid", "random"]) -> Json:
        if self._stop is not None:
            raise _Stopped()
        position = self.next_position()
        rec = self._index.calls.get(position)
        if rec is not None:
            self._expect(rec, position, "value", kind, "")
            assert rec.value is not None
            return rec.value.value
        value: Json
        if kind == "now":
            value = self._services.clock_us()
        elif kind == "uuid":
            value = self._services.new_uuid()
        else:
            value = self._services.random()
        self._emit(ValueRecorded(call=position, kind=kind, value=value))
        return value

    def patched(self, change_id: str) -> bool:
        """New code (True, recorded as a patch marker) unless this position of the history
        holds another call: then the run was recorded before the patch (False, and the
        position stays the old code's)."""
        if self._stop is not None:
            raise _Stopped()
        rec = self._index.calls.get(self._next)
        if rec is not None:
            if _is_patch(rec, change_id):
                self._next += 1
                return True
            return False
        if self.replaying:  # a position no call recorded (a call made but never awaited)
            return False
        position = self.next_position()
        self._emit(ValueRecorded(call=position, kind="patch", value=change_id))
        return True

    def deprecate_patch(self, change_id: str) -> None:
        if self._stop is not None:
            raise _Stopped()
        rec = self._index.calls.get(self._next)
        if rec is not None and _is_patch(rec, change_id):
            self._next += 1

    def tool_name(self, fn: Callable[..., Any]) -> str | None:
        return self._app.tool_name(fn)

    def resolve(self, call: Call) -> tuple[bool, Any]:
        if self._stop is not None:
            raise _Stopped()
        if isinstance(call, ToolCall):
            return self._resolve_tool(call)
        if isinstance(call, InterruptCall):
            return self._resolve_interrupt(call)
        raise AgentProtocolError(f"unknown call type {type(call).__name__}")  # pragma: no cover

    # -- resolution ---------------------------------------------------------------------------

    def _resolve_interrupt(self, call: InterruptCall) -> tuple[bool, Any]:
        rec = self._index.calls.get(call.position)
        if rec is None:
            self._raise_question(call, 0, None)
            return _PENDING
        self._expect(rec, call.position, "interrupt", "", digest(call.title), call.title)
        for asked, raised in enumerate(rec.questions):
            outcome = self._index.outcomes.get(raised.interrupt_id)
            if outcome is None:
                return _PENDING
            escalation = self._escalation_after(outcome, raised)
            if escalation is None:
                return True, _decision_of(outcome, raised.request)
            if asked + 1 == len(rec.questions):
                self._raise_question(call, asked + 1, escalation)
                return _PENDING
        return _PENDING  # pragma: no cover - a question record always has a question

    def _raise_question(
        self, call: InterruptCall, asked: int, escalation: InterruptEscalated | None
    ) -> None:
        interrupt_id = interrupt_id_for(self._run_id, call.position, question_purpose(asked))
        request = ApprovalRequest(
            kind="question",
            title=call.title,
            context=call.context,
            risk=call.risk,
            allowed=call.allowed,
            approvers=escalation.approvers if escalation else call.approvers,
            deadline_us=escalation.deadline_us if escalation else self._deadline(call.deadline_s),
            on_timeout="reject" if escalation else call.on_timeout,
            escalate_to=() if escalation else call.escalate_to,
            escalation=escalation.level if escalation else 0,
            timeout_s=call.deadline_s,
            answer_schema=call.answer_schema,
            digest=digest({"title": call.title, "interrupt_id": interrupt_id}),
        )
        self._emit(InterruptRaised(call=call.position, interrupt_id=interrupt_id, request=request))

    def _escalation_after(
        self, outcome: DecisionAccepted | InterruptExpired, raised: InterruptRaised
    ) -> InterruptEscalated | None:
        if isinstance(outcome, InterruptExpired) and outcome.action == "escalate":
            return self._index.escalations.get(raised.interrupt_id)
        return None

    def _resolve_tool(self, call: ToolCall[Any]) -> tuple[bool, Any]:
        tool = self._app.get_tool(call.tool)
        if tool is None:
            message = f"agent called tool {call.tool!r}, which the app does not have"
            self._stop = RunParked(
                reason="ConfigurationError", call=call.position, expected="", actual=message
            )
            raise ConfigurationError(message)
        rec = self._index.calls.get(call.position)
        if rec is not None:
            # The usual recorded call matches outright; anything else is judged by `_expect`.
            if rec.kind != "tool" or rec.name != call.tool or not has_digest(call.args, rec.digest):
                self._expect(rec, call.position, "tool", call.tool, digest(call.args), call.args)
            # A call no policy gated, recorded as scheduled and completed: most calls of a
            # rebuilt run. The result the gate walk and run phase reach for it (cleared with
            # no decider, the scheduled arguments), without walking them.
            completed, scheduled = rec.completed, rec.scheduled
            if (
                completed is not None
                and scheduled is not None
                and not rec.evaluations
                and not rec.gates
                and not rec.in_doubt
                and rec.failed is None
            ):
                return True, ToolResult._ran(completed.result, scheduled.args)
        refused = self._refused_arguments(call, tool, rec)
        if refused is not None:
            return True, refused
        verdict = self._gate_walk(call, tool, rec)
        if not isinstance(verdict, Cleared):
            return verdict
        rec = self._index.calls.get(call.position)
        return self._run_phase(call, tool, rec, verdict.args, verdict.decided_by)

    def _refused_arguments(
        self, call: ToolCall[Any], tool: ToolSpec, rec: CallRecord | None
    ) -> ToolResult[Any] | None:
        """Arguments that break the tool's schema go back to the agent as a failed call
        before any policy looks at them: a rule cannot be judged on what it cannot read,
        and the tool never runs. Recorded calls were checked when they were made."""
        if rec is None:
            errors = validate(call.args, tool.args_schema or None)
            if not errors:
                return None
            failed = ToolCallFailed(
                call=call.position, error_type=INVALID_ARGUMENTS, error="; ".join(errors)
            )
            self._emit(failed)
        elif rec.failed is not None and rec.failed.error_type == INVALID_ARGUMENTS:
            failed = rec.failed
        else:
            return None
        return ToolResult(
            status="failed", args=call.args, reason=f"{failed.error_type}: {failed.error}"
        )

    def _first_evaluation(
        self, call: ToolCall[Any], rec: CallRecord | None
    ) -> GateEvaluated | Cleared:
        if rec is not None and rec.evaluations:
            return rec.evaluations[0]
        if rec is not None and rec.gates:
            return legacy_evaluation(rec.gates[0])
        if rec is not None and rec.scheduled is not None:
            return Cleared(call.args, "")  # ungated, or recorded before gates were recorded
        gate = self._evaluate(call, call.args)
        if gate is None:
            return Cleared(call.args, "")
        return self._record_evaluation(call, gate, call.args, 1)

    def _evaluate(self, call: ToolCall[Any], args: JsonObject) -> Gate | None:
        tool = self._app.get_tool(call.tool)
        assert tool is not None
        proposal = Proposal(
            tool=call.tool, args=args, confidence=call.confidence, agent=self._agent.name
        )
        return evaluate_call(
            proposal,
            own=tool.policy,
            guards=self._app.guards,
            escalation=self._app.escalation,
            signals=(
                signals_before(self._index, call.position)
                if self._app.escalation is not None
                else RunSignals()
            ),
        )

    def _record_evaluation(
        self, call: ToolCall[Any], gate: Gate, args: JsonObject, round: int
    ) -> GateEvaluated:
        event = evaluation_event(
            gate,
            call=call.position,
            tool=call.tool,
            args=args,
            confidence=call.confidence,
            round=round,
            ladders=self._app.ladders,
        )
        self._emit(event)
        return event

    def _gate_walk(
        self, call: ToolCall[Any], tool: ToolSpec, rec: CallRecord | None
    ) -> tuple[bool, Any] | Cleared:
        """Follow the call's approval plan through its recorded interrupts and outcomes;
        raise the next interrupt when the plan needs one that is not recorded yet."""
        first = self._first_evaluation(call, rec)
        if isinstance(first, Cleared):
            return first
        walk = GateWalk(evaluation=first, args=call.args)
        gates = rec.gates if rec is not None else []
        asked = 0
        while needs_decision(walk.evaluation):
            if asked == len(gates):
                self._raise_gate(call, tool, walk, asked)
                return _PENDING
            raised = gates[asked]
            asked += 1
            outcome = self._index.outcomes.get(raised.interrupt_id)
            if outcome is None:
                return _PENDING
            walk.escalation = self._escalation_after(outcome, raised)
            if walk.escalation is not None:
                continue
            decision = _decision_of(outcome)
            if decision.kind == "respond":  # the person supplies the result; nothing runs
                return True, ToolResult(
                    status="ok",
                    value=decision.response,
                    args=walk.args,
                    decided_by=decision.decided_by,
                )
            if decision.kind not in ("approve", "edit"):
                return True, ToolResult(
                    status="rejected",
                    args=walk.args,
                    reason=decision.reason,
                    decided_by=decision.decided_by,
                )
            approvers = outcome.approved_by if isinstance(outcome, DecisionAccepted) else ()
            walk.approved(approvers or (decision.decided_by,), decision.decided_by)
            if decision.kind == "edit" and decision.edited_args is not None:
                done = self._edited(call, rec, walk, decision.edited_args)
            else:
                done = not walk.next_level()
            if done:
                break
        # Nobody had to decide: the policy that let the call run is its decider.
        return Cleared(walk.args, walk.decided_by or f"policy:{walk.evaluation.policy}")

    def _edited(
        self, call: ToolCall[Any], rec: CallRecord | None, walk: GateWalk, edited: JsonObject
    ) -> bool:
        """Re-evaluate the edited call; True when nothing more needs approving."""
        walk.round += 1
        recorded = rec.evaluations if rec is not None else []
        if walk.round <= len(recorded):
            new = recorded[walk.round - 1]
        else:
            gate = self._evaluate(call, edited) or Gate(action="auto", policy="none")
            new = self._record_evaluation(call, gate, edited, walk.round)
        old_args, walk.args = walk.args, edited
        walk.previous = old_args
        if not needs_decision(new):
            return True
        if needs_reapproval(walk.evaluation, new, old_args, edited):
            walk.restart(new)
            return False
        if walk.quorum > 1:
            walk.quorum -= 1  # the editor's approval counts; the others approve the edit
            return False
        return not walk.next_level()

    def _raise_gate(self, call: ToolCall[Any], tool: ToolSpec, walk: GateWalk, asked: int) -> None:
        interrupt_id = interrupt_id_for(self._run_id, call.position, gate_purpose(asked))
        escalation = walk.escalation
        request = gate_request(
            walk,
            GateContext(
                tool=tool.name,
                args_schema=tool.args_schema or None,
                agent=self._agent.name,
                version=self._agent.version,
                reasoning=call.reasoning,
                impact=call.impact,
                context=call.context,
                confidence=call.confidence,
            ),
            interrupt_id=interrupt_id,
            deadline_us=(
                escalation.deadline_us if escalation else self._deadline(walk.evaluation.deadline_s)
            ),
        )
        self._emit(InterruptRaised(call=call.position, interrupt_id=interrupt_id, request=request))

    def _run_phase(
        self,
        call: ToolCall[Any],
        tool: ToolSpec,
        rec: CallRecord | None,
        run_args: JsonObject,
        decided_by: str,
    ) -> tuple[bool, Any]:
        position = call.position
        if rec is not None and rec.completed is not None:
            args = rec.scheduled.args if rec.scheduled else run_args
            if rec.in_doubt:
                doubt = self._index.outcomes.get(rec.in_doubt[-1].interrupt_id)
                if doubt is not None and _decision_of(doubt).kind == "respond":
                    decided_by = _decision_of(doubt).decided_by
            return True, ToolResult(
                status="ok", value=rec.completed.result, args=args, decided_by=decided_by
            )
        if rec is not None and rec.failed is not None:
            return True, ToolResult(
                status="failed",
                args=run_args,
                reason=f"{rec.failed.error_type}: {rec.failed.error}",
            )
        if rec is None or rec.scheduled is None:
            self._emit(
                ToolCallScheduled(
                    call=position,
                    tool=tool.name,
                    args=run_args,
                    args_digest=digest(call.args),
                    idempotency_key=idempotency_key_for(self._run_id, position),
                    idempotent=tool.idempotent,
                )
            )
            self._start(position, tool, run_args)
            return _PENDING
        if position in self._in_flight:
            return _PENDING
        # Scheduled before a crash and never finished: it may or may not have run.
        if tool.idempotent:
            self._start(position, tool, rec.scheduled.args)
            return _PENDING
        return self._resolve_in_doubt(call, tool, rec)

    def _resolve_in_doubt(
        self, call: ToolCall[Any], tool: ToolSpec, rec: CallRecord
    ) -> tuple[bool, Any]:
        """A non-idempotent call was scheduled and never finished: ask, once per attempt."""
        assert rec.scheduled is not None
        if len(rec.in_doubt) < rec.schedules:
            attempt = rec.schedules
            interrupt_id = interrupt_id_for(self._run_id, call.position, f"in-doubt-{attempt}")
            request = ApprovalRequest(
                kind="in_doubt",
                title=f"{tool.name} may have run before a worker stopped: did it?",
                tool=tool.name,
                args=rec.scheduled.args,
                reasoning=(
                    "The tool is not declared idempotent, so it is not re-run silently. "
                    "approve = run it again; respond = it ran, here is its result; "
                    "reject = do not run it."
                ),
                risk="high",
                allowed=("approve", "respond", "reject"),
                digest=digest(
                    {"tool": tool.name, "args": rec.scheduled.args, "interrupt_id": interrupt_id}
                ),
                deadline_us=None,
            )
            self._emit(
                InterruptRaised(call=call.position, interrupt_id=interrupt_id, request=request)
            )
            return _PENDING
        outcome = self._index.outcomes.get(rec.in_doubt[-1].interrupt_id)
        if outcome is None:
            return _PENDING
        decision = _decision_of(outcome)
        if decision.kind == "respond":
            self._emit(ToolCallCompleted(call=call.position, result=decision.response))
            return True, ToolResult(
                status="ok",
                value=decision.response,
                args=rec.scheduled.args,
                decided_by=decision.decided_by,
            )
        if decision.kind == "approve":
            # A new schedule, so that a crash during this re-run asks again.
            self._emit(replace(rec.scheduled))
            self._start(call.position, tool, rec.scheduled.args)
            return _PENDING
        return True, ToolResult(
            status="rejected",
            args=rec.scheduled.args,
            reason=decision.reason,
            decided_by=decision.decided_by,
        )

    # -- helpers ------------------------------------------------------------------------------

    def _start(self, position: int, tool: ToolSpec, args: JsonObject) -> None:
        self._in_flight.add(position)
        self._effects.append(
            ExecuteTool(position, tool.name, args, idempotency_key_for(self._run_id, position))
        )

    def _expect(
        self,
        rec: CallRecord,
        position: int,
        kind: str,
        name: str,
        call_digest: str,
        args: Json = None,
    ) -> None:
        if not rec.matches(kind, name, call_digest):
            actual = f"{kind} {name} {call_digest[:12]}"
            self._diverged(rec, position, CallShape(kind, name, args), actual)

    def _diverged(self, rec: CallRecord, position: int, new: CallShape, actual: str) -> None:
        # Decided here, not by whoever catches the exception: agent code that swallows it
        # still cannot go on past the divergence.
        site = caller_site(sys._getframe())
        shown = CallShape(new.kind, new.name, new.args, site=site)
        divergence = Divergence(position, recorded_shape(rec), shown)
        self._stop = RunParked(
            reason="non-determinism",
            call=position,
            expected=rec.signature(),
            actual=actual,
            detail=divergence.explain(self._run_id),
        )
        raise NonDeterminismError(position, rec.signature(), actual)

    def _deadline(self, seconds: float | None) -> int | None:
        if seconds is None:
            return None
        return self._services.clock_us() + int(seconds * 1_000_000)

    def _emit(self, event: RunEventPayload) -> None:
        self._index.add(event)
        self._emitted.append(event)

    def _complete(self, output: Any) -> None:
        if self._index.max_position >= self._next:
            missing = (
                self._index.calls.get(self._next) or self._index.calls[self._index.max_position]
            )
            divergence = Divergence(self._next, recorded_shape(missing), None)
            self._park(
                self._next,
                self._index.calls[self._index.max_position].signature(),
                "agent returned",
                "non-determinism",
                divergence.explain(self._run_id),
            )
            return
        try:
            canonical_json(output)
        except (TypeError, ValueError) as exc:
            self._finish(RunFailed(error_type="OutputNotJson", error=str(exc)))
            return
        self._finish(RunCompleted(output=output))

    def _park(self, call: int, expected: str, actual: str, reason: str, detail: str = "") -> None:
        self._stop = RunParked(
            reason=reason, call=call, expected=expected, actual=actual, detail=detail
        )
        self._finish(self._stop)

    def _finish(self, event: RunEventPayload) -> None:
        if self.finished:
            return
        self._emit(event)
        self.finished = True
        self._effects.clear()
        if self._coro is not None:
            self._coro.close()


def _is_patch(rec: CallRecord, change_id: str) -> bool:
    return rec.value is not None and rec.value.kind == "patch" and rec.value.value == change_id


class _Stopped(Exception):
    """Raised into agent code after the run was parked, so that it cannot go on."""


def _decision_of(
    outcome: DecisionAccepted | InterruptExpired, request: ApprovalRequest | None = None
) -> Decision:
    if isinstance(outcome, InterruptExpired):
        if outcome.action == "respond" and request is not None:
            return Decision(
                kind="respond",
                decided_by="system:timeout",
                reason="deadline passed: the default answer",
                response=default_answer(request),
                expired=True,
            )
        kind: Any = "approve" if outcome.action == "approve" else "reject"
        return Decision(
            kind=kind, decided_by="system:timeout", reason="deadline passed", expired=True
        )
    return Decision(
        kind=outcome.kind,
        decided_by=outcome.decided_by,
        reason=outcome.reason,
        response=outcome.response,
        edited_args=outcome.edited_args,
    )
