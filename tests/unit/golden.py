"""Golden fixtures: readable JSON for messages and histories, and the generator that wrote them.

The files under `tests/golden/` are frozen records of what this code wrote once; tests check
that today's code still reads and replays them. Regenerate only on purpose, and say why:

    .venv/bin/python -m tests.unit.golden

JSON shape: a message is `{"type": <class name>, <field>: <value>, ...}`; a run event wrapped
in its envelope is `{"type": "EventEnvelope", <envelope fields>..., "payload": {...}}`; an
`ApprovalRequest` inside an event is a plain object of its fields; tuples are lists.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import itertools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.agent.app import AgentSpec
from engine.agent.context import RunContext
from engine.core.executor import Replayer, Services
from events.approval import ApprovalRequest
from events.checkpoints import Checkpoint
from events.codec import Codec, Message
from events.commands import (
    COMMAND_TYPES,
    CancelRun,
    ForkRun,
    LiftQuarantine,
    ResumeRun,
    StartRun,
    SubmitDecision,
)
from events.envelope import EventEnvelope
from events.json import Json, JsonObject
from events.notices import (
    NOTICE_TYPES,
    ActionNotified,
    ApprovalRequested,
    DecisionOutcome,
    QuarantineNotified,
)
from events.registry import AgentRegistered
from events.run_events import (
    RUN_EVENT_TYPES,
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

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
HISTORIES = GOLDEN / "histories"
RELEASE = 2
"""The release this code is; its payloads go to `payloads/release-<RELEASE>/`."""
PAYLOADS_ROOT = GOLDEN / "payloads"
PAYLOADS = PAYLOADS_ROOT / f"release-{RELEASE}"

_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (*RUN_EVENT_TYPES, *COMMAND_TYPES, *NOTICE_TYPES, Checkpoint, AgentRegistered)
}

# -- JSON <-> messages ------------------------------------------------------------------------


def _field_to_json(value: Any) -> Any:
    if isinstance(value, ApprovalRequest):
        return {f.name: _field_to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_field_to_json(item) for item in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def to_json(message: Message | RunEventPayload) -> dict[str, Any]:
    if isinstance(message, EventEnvelope):
        meta = {
            f.name: getattr(message, f.name)
            for f in dataclasses.fields(message)
            if f.name != "payload"
        }
        return {"type": "EventEnvelope", **meta, "payload": to_json(message.payload)}
    fields = {f.name: _field_to_json(getattr(message, f.name)) for f in dataclasses.fields(message)}
    return {"type": type(message).__name__, **fields}


def _build(cls: type[Any], data: dict[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name not in data:
            continue  # a field added after the fixture was written: its default applies
        value = data[field.name]
        annotation = str(field.type)
        if annotation == "ApprovalRequest":
            value = _build(ApprovalRequest, value)
        elif annotation == "tuple[bytes, ...]":
            value = tuple(base64.b64decode(item) for item in value)
        elif annotation.startswith("tuple[") and value is not None:
            value = tuple(value)
        kwargs[field.name] = value
    unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"{cls.__name__} has no fields {sorted(unknown)}")
    return cls(**kwargs)


def from_json(data: dict[str, Any]) -> Any:
    data = dict(data)
    kind = data.pop("type")
    if kind == "EventEnvelope":
        payload = from_json(data.pop("payload"))
        return EventEnvelope(payload=payload, **data)
    return _build(_TYPES[kind], data)


def load_history(path: Path) -> list[RunEventPayload]:
    events: list[RunEventPayload] = [from_json(item) for item in json.loads(path.read_text())]
    return events


def dump_history(events: Iterable[RunEventPayload], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    items = [to_json(event) for event in events]
    path.write_text(json.dumps(items, indent=2, ensure_ascii=False) + "\n")


# -- deterministic services -------------------------------------------------------------------

CLOCK_US = 1_700_000_000_000_000


def fixed_services(*, clock_us: int = CLOCK_US, random_values: Iterable[float] = ()) -> Services:
    """A fixed clock, counter uuids and a scripted random sequence (then 0.5 forever)."""
    counter = itertools.count()
    randoms = itertools.chain(random_values, itertools.repeat(0.5))
    return Services(
        clock_us=lambda: clock_us,
        new_uuid=lambda: f"00000000-0000-4000-8000-{next(counter):012d}",
        random=lambda: next(randoms),
    )


# -- generators ---------------------------------------------------------------------------------

REFUND_RUN_ID = "run-golden-refund"
REFUND_STARTED = RunStarted(
    input={"order_id": "A-17", "amount": 2400}, requested_by="alice", command_id="cmd-golden-1"
)


async def _record_refund_approved() -> list[RunEventPayload]:
    from examples.refund import app

    spec = app.find_agent("refund", "1")
    assert spec is not None
    replayer = Replayer(app, spec, REFUND_RUN_ID, REFUND_STARTED, fixed_services())
    history: list[RunEventPayload] = [REFUND_STARTED]
    while True:
        step = replayer.advance()
        history.extend(step.events)
        if step.finished:
            return history
        fed: list[RunEventPayload] = []
        for effect in step.effects:
            tool = app.get_tool(effect.tool)
            assert tool is not None
            result = await tool.invoke(effect.args, effect.idempotency_key)
            fed.append(ToolCallCompleted(call=effect.call, result=result))
        fed.extend(
            DecisionAccepted(
                interrupt_id=event.interrupt_id,
                decision_id="dec-golden-1",
                kind="approve",
                decided_by="bob",
                reason="checked the order",
            )
            for event in step.events
            if isinstance(event, InterruptRaised)
        )
        replayer.feed(fed)
        history.extend(fed)


def _record_refund_old_lookup() -> list[RunEventPayload]:
    """A run recorded by an older refund agent that called `lookup_order(order=...)`.

    Today's agent calls `lookup_order(order_id=...)`: replaying must park, not diverge.
    """
    from examples.refund import app

    async def old_refund_agent(ctx: RunContext, input: JsonObject) -> Json:
        order = await ctx.tool("lookup_order", {"order": input["order_id"]})
        return {"status": "looked up", "order": order.value}

    spec = AgentSpec(name="refund", version="0", fn=old_refund_agent)
    replayer = Replayer(app, spec, REFUND_RUN_ID, REFUND_STARTED, fixed_services())
    step = replayer.advance()
    scheduled = step.events[0]
    assert isinstance(scheduled, ToolCallScheduled)
    completed = ToolCallCompleted(
        call=scheduled.call, result={"order_id": "A-17", "customer": "c-42", "paid": 2400.0}
    )
    return [REFUND_STARTED, *step.events, completed]


PAYMENTS_RUN_ID = "run-golden-payments"
PAYMENTS_INPUT: JsonObject = {
    "payments": [
        {"payee": "acme", "amount": 25000, "confidence": 0.99},
        {"payee": "bolt", "amount": 300, "confidence": 0.6},
        {"payee": "cask", "amount": 20, "confidence": 0.85},
    ]
}


def _record_payments_approvals() -> list[RunEventPayload]:
    """examples/payments.py's payout: a NOTIFY call; a critical call through 2-of-n (with a
    duplicate approver refused), then a level-2 edit; a high call that times out and is
    escalated to the CFO, who approves. Recorded on a fixed clock."""
    from examples.payments import app
    from tests.unit.approvals_sim import Sim

    sim = Sim(app, "payout", PAYMENTS_INPUT, run_id=PAYMENTS_RUN_ID)
    critical, high = sim.open()
    sim.decide(critical.interrupt_id, "approve", "bob", decision_id="dec-bob")
    sim.decide(critical.interrupt_id, "approve", "bob", decision_id="dec-bob-again")
    sim.decide(critical.interrupt_id, "approve", "carol", decision_id="dec-carol")
    level_two = next(r for r in sim.open() if r.call == critical.call)
    edited: JsonObject = {"payee": "acme", "amount": 24000}
    sim.decide(level_two.interrupt_id, "edit", "erin", decision_id="dec-erin", edited_args=edited)
    assert high.request.deadline_us is not None
    sim.expire(at_us=high.request.deadline_us)
    escalated = sim.only_open()
    sim.decide(escalated.interrupt_id, "approve", "erin", decision_id="dec-erin-2")
    assert sim.run.status == "completed"
    return sim.events


def _envelope(seq: int, payload: RunEventPayload, prev_hash: str) -> EventEnvelope:
    return EventEnvelope(
        event_id=f"evt-{seq}",
        run_id="run-golden-1",
        seq=seq,
        occurred_at_us=CLOCK_US + seq,
        agent="refund",
        agent_version="1",
        causation_id="cmd-golden-1",
        correlation_id="run-golden-1",
        prev_hash=prev_hash,
        payload=payload,
    )


def payload_fixtures() -> dict[str, Message]:
    """Messages written once as `tests/golden/payloads/<name>.bin` with `<name>.json` beside."""
    request = ApprovalRequest(
        kind="tool",
        title='refund(order_id="A-17", amount=2400)',
        tool="refund",
        args={"order_id": "A-17", "amount": 2400},
        digest="d" * 64,
        reasoning="customer asked for a refund of 2400",
        context={"ticket": "T-9", "tags": ["vip", "eu"]},
        impact="2400 leaves the company account",
        risk="high",
        amount=2400.0,
        deadline_us=CLOCK_US + 86_400_000_000,
        on_timeout="reject",
        allowed=("approve", "edit", "reject"),
        approvers=("role:support-lead",),
        answer_schema=None,
        policy="refund-limit@1",
    )
    return {
        "run_started": _envelope(0, REFUND_STARTED, ""),
        "interrupt_raised": _envelope(
            3, InterruptRaised(call=1, interrupt_id="int-1", request=request), "a" * 64
        ),
        "decision_accepted_edit": _envelope(
            4,
            DecisionAccepted(
                interrupt_id="int-1",
                decision_id="dec-1",
                kind="edit",
                decided_by="bob",
                reason="only half",
                edited_args={"order_id": "A-17", "amount": 1200},
            ),
            "b" * 64,
        ),
        "start_run": StartRun(
            command_id="cmd-golden-1",
            run_id="run-golden-1",
            agent="refund",
            input={"order_id": "A-17", "amount": 2400, "note": "naïve café ✓"},
            requested_by="alice",
            issued_at_us=CLOCK_US,
            agent_version="1",
        ),
        "submit_decision": SubmitDecision(
            decision_id="dec-1",
            run_id="run-golden-1",
            interrupt_id="int-1",
            kind="respond",
            decided_by="bob",
            issued_at_us=CLOCK_US + 5,
            response={"answer": 42, "ok": True, "items": [1.5, None, "x"]},
            digest="d" * 64,
        ),
        "approval_requested": ApprovalRequested(
            run_id="run-golden-1",
            interrupt_id="int-1",
            agent="refund",
            agent_version="1",
            requested_by="alice",
            requested_at_us=CLOCK_US + 3,
            request=request,
        ),
        "gate_evaluated": _envelope(
            2,
            GateEvaluated(
                call=1,
                tool="refund",
                args_digest="c" * 64,
                action="approve",
                policy="refund-limit@1",
                rule="predicate",
                reason="refunds over 500 need a person",
                risk="critical",
                confidence=0.62,
                amount=2400.0,
                levels=[
                    {"approvers": ["role:support-lead"], "quorum": 1},
                    {"approvers": ["carol", "dave", "erin"], "quorum": 2},
                ],
                deadline_s=3600.0,
                on_timeout="escalate",
                escalate_to=("role:cfo",),
                relevant_args=["amount"],
            ),
            "e" * 64,
        ),
        "vote_recorded": _envelope(
            5,
            VoteRecorded(
                interrupt_id="int-2",
                decision_id="dec-2",
                decided_by="carol",
                votes=1,
                quorum=2,
                reason="fine by me",
            ),
            "f" * 64,
        ),
        "decision_held": _envelope(
            6,
            DecisionHeld(
                interrupt_id="int-3",
                decision_id="dec-3",
                kind="edit",
                decided_by="bob",
                issued_at_us=CLOCK_US + 7,
                edited_args={"order_id": "A-17", "amount": 100},
                digest="d" * 64,
            ),
            "0" * 64,
        ),
        "action_notified": ActionNotified(
            run_id="run-golden-1",
            agent="refund",
            agent_version="1",
            requested_by="alice",
            call=4,
            tool="refund",
            args={"order_id": "A-17", "amount": 80},
            result={"refund_id": "rf-1"},
            policy="confidence@2",
            rule="confidence>=0.75",
            reason="the agent's confidence is 0.8",
            risk="medium",
            confidence=0.8,
            notified_at_us=CLOCK_US + 8,
        ),
        **_more_payload_fixtures(),
        "decision_outcome": DecisionOutcome(
            run_id="run-golden-1",
            interrupt_id="int-1",
            decision_id="dec-1",
            accepted=False,
            kind="approve",
            decided_by="alice",
            reason="the requester may not approve",
            decided_at_us=CLOCK_US + 6,
        ),
    }


def _more_payload_fixtures() -> dict[str, Message]:
    """The types the first fixtures did not cover, so every type has a golden payload."""
    return {
        "model_called": _envelope(
            1,
            ModelCalled(
                call=0,
                request_digest="1" * 64,
                request={"messages": [{"role": "user", "content": "refund A-17?"}]},
                response={"content": "yes", "tokens": 12, "p": 0.25},
            ),
            "1" * 64,
        ),
        "tool_call_scheduled": _envelope(
            2,
            ToolCallScheduled(
                call=1,
                tool="refund",
                args={"order_id": "A-17", "amount": 2400},
                args_digest="c" * 64,
                idempotency_key="run-golden-1:1",
                idempotent=False,
            ),
            "2" * 64,
        ),
        "tool_call_completed": _envelope(
            3, ToolCallCompleted(call=1, result={"refund_id": "rf-1", "ok": True}), "3" * 64
        ),
        "tool_call_failed": _envelope(
            3,
            ToolCallFailed(call=1, error_type="TimeoutError", error="bank did not answer"),
            "4" * 64,
        ),
        "decision_rejected": _envelope(
            5,
            DecisionRejected(
                interrupt_id="int-1",
                decision_id="dec-9",
                kind="approve",
                decided_by="alice",
                reason="the requester may not approve",
            ),
            "5" * 64,
        ),
        "interrupt_expired": _envelope(
            6, InterruptExpired(interrupt_id="int-1", action="escalate"), "6" * 64
        ),
        "interrupt_escalated": _envelope(
            7,
            InterruptEscalated(
                interrupt_id="int-1",
                level=2,
                approvers=("role:cfo", "erin"),
                reason="no decision within 3600 s",
                deadline_us=CLOCK_US + 7_200_000_000,
            ),
            "7" * 64,
        ),
        "value_recorded": _envelope(
            8,
            ValueRecorded(call=2, kind="uuid", value="00000000-0000-4000-8000-000000000002"),
            "8" * 64,
        ),
        "run_completed": _envelope(
            9, RunCompleted(output={"status": "refunded", "amount": 2400}), "9" * 64
        ),
        "run_failed": _envelope(9, RunFailed(error_type="KeyError", error="'order_id'"), "a" * 64),
        "run_cancelled": _envelope(
            9, RunCancelled(cancelled_by="carol", reason="duplicate ticket"), "b" * 64
        ),
        "run_parked": _envelope(
            4,
            RunParked(
                reason="non-determinism", call=1, expected="tool refund", actual="tool lookup"
            ),
            "c" * 64,
        ),
        "cancel_run": CancelRun(
            command_id="cmd-golden-2",
            run_id="run-golden-1",
            cancelled_by="carol",
            issued_at_us=CLOCK_US + 9,
            reason="duplicate ticket",
        ),
        # Release 2: quarantine of runs whose log breaks their chain.
        "run_quarantined": _envelope(
            5,
            RunQuarantined(
                reason="1 record of the run does not extend its chain",
                strays=[{"offset": 41, "why": "seq 3 does not carry the hash of seq 2"}],
            ),
            "d" * 64,
        ),
        "quarantine_lifted": _envelope(
            6,
            QuarantineLifted(lifted_by="oscar", reason="a known replay bug", command_id="cmd-3"),
            "e" * 64,
        ),
        "lift_quarantine": LiftQuarantine(
            command_id="cmd-golden-3",
            run_id="run-golden-1",
            lifted_by="oscar",
            issued_at_us=CLOCK_US + 10,
            reason="a known replay bug",
        ),
        "agent_registered": AgentRegistered(
            app="refund-example",
            agent="refund",
            version="1",
            description="Refund an order; ask a person above 500.",
            input_schema={"type": "object", "required": ["order_id", "amount"]},
            tools=[{"name": "refund", "idempotent": False}],
            worker="host-1:4242",
            registered_at_us=CLOCK_US,
        ),
        # Release 2: parked runs explain themselves and can be resumed.
        "run_parked_detail": _envelope(
            4,
            RunParked(
                reason="non-determinism",
                call=0,
                expected='tool log_note {"text":"note 17"}',
                actual='tool log_note {"text":"note 42"}',
                detail="step 0 (tool log_note) differs from the history\n"
                "  text: recorded 'note 17', now 'note 42'\n"
                "likely fix: use ctx.random() instead of the random module",
            ),
            "f" * 64,
        ),
        "run_resumed": _envelope(
            5,
            RunResumed(resumed_by="oscar", reason="fixed the note", command_id="cmd-4"),
            "0" * 63 + "1",
        ),
        "resume_run": ResumeRun(
            command_id="cmd-golden-4",
            run_id="run-golden-1",
            resumed_by="oscar",
            issued_at_us=CLOCK_US + 11,
            reason="fixed the note",
        ),
        "checkpoint": Checkpoint(restore_from=1207, consumed=88, attempt_at=88, attempts=2),
        # Release 2: forks (countersign fork) and the forked run's start.
        "fork_run": ForkRun(
            command_id="cmd-golden-4",
            run_id="fork-golden-1",
            origin_run_id="run-golden-1",
            at_interrupt="int-1",
            requested_by="dana",
            issued_at_us=CLOCK_US + 11,
            prefix=(b"\xc3\x01 the origin's events, as logged", b"\x00\xff"),
            tool_mode="dry-run",
            recorded_results=[{"tool": "refund", "args_digest": "c" * 64, "result": {"ok": True}}],
        ),
        "run_started_forked": _envelope(
            0,
            RunStarted(
                input={"order_id": "A-17", "amount": 2400},
                requested_by="alice",
                command_id="cmd-golden-4",
                forked_from="run-golden-1",
                forked_at=3,
                forked_by="dana",
                origin_hash="f" * 64,
                tool_mode="dry-run",
                recorded_results=[{"tool": "refund", "args_digest": "c" * 64, "result": None}],
            ),
            "",
        ),
        "quarantine_notified": QuarantineNotified(
            run_id="run-golden-1",
            agent="refund",
            agent_version="1",
            reason="1 record of the run does not extend its chain",
            strays=1,
            notified_at_us=CLOCK_US + 5,
        ),
    }


def write_payloads(*, overwrite: bool = False) -> None:
    """This release's golden payloads; existing files are kept unless `overwrite`."""
    PAYLOADS.mkdir(parents=True, exist_ok=True)
    codec = Codec()
    for name, message in payload_fixtures().items():
        if (PAYLOADS / f"{name}.bin").exists() and not overwrite:
            continue
        (PAYLOADS / f"{name}.bin").write_bytes(codec.encode(message))
        (PAYLOADS / f"{name}.json").write_text(
            json.dumps(to_json(message), indent=2, ensure_ascii=False) + "\n"
        )


def write_all() -> None:
    """Rewrites every fixture except `refund_approved_before_gates.json`, which is frozen: it
    was recorded before `GateEvaluated` existed and proves such histories still replay."""
    dump_history(asyncio.run(_record_refund_approved()), HISTORIES / "refund_approved.json")
    dump_history(_record_refund_old_lookup(), HISTORIES / "refund_nondeterministic.json")
    dump_history(_record_payments_approvals(), HISTORIES / "payments_approvals.json")
    write_payloads(overwrite=True)


if __name__ == "__main__":
    write_all()
