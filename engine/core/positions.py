"""Which call of the agent each recorded event belongs to, and histories with calls moved. Pure.

Events about a call carry its position (`call`); decisions, expiries, escalations and votes
name an interrupt, which belongs to the call that raised it. Replay tooling uses this to say
at which seq a call starts, and to build the "what if the code had moved this call" histories
that explain a divergence (`remap`, `stub_events`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from engine.agent.context import Call, InterruptCall, ToolCall
from events.approval import ApprovalRequest, DecisionKind
from events.json import digest
from events.run_events import (
    DecisionAccepted,
    InterruptRaised,
    RunEventPayload,
    RunParked,
    ToolCallCompleted,
    ToolCallScheduled,
    ValueRecorded,
)

__all__ = ["call_of", "first_seqs", "interrupt_owners", "remap", "stub_events"]

STUB = "replay-stub"
"""Who decided, and the key, in events made up to test a hypothesis (never written anywhere)."""


def interrupt_owners(payloads: Iterable[RunEventPayload]) -> dict[str, int]:
    """interrupt id → the call that raised it."""
    return {p.interrupt_id: p.call for p in payloads if isinstance(p, InterruptRaised)}


def call_of(payload: RunEventPayload, owners: dict[str, int]) -> int | None:
    """The call an event is about, if any (a `RunParked` names a call but belongs to none)."""
    if isinstance(payload, RunParked):
        return None
    call = getattr(payload, "call", None)
    if isinstance(call, int):
        return call
    interrupt_id = getattr(payload, "interrupt_id", None)
    return owners.get(interrupt_id) if isinstance(interrupt_id, str) else None


def first_seqs(payloads: Sequence[RunEventPayload]) -> dict[int, int]:
    """call → the seq of the first event about it (events are by seq from 0)."""
    owners = interrupt_owners(payloads)
    out: dict[int, int] = {}
    for seq, payload in enumerate(payloads):
        call = call_of(payload, owners)
        if call is not None:
            out.setdefault(call, seq)
    return out


def remap(
    payloads: Sequence[RunEventPayload], where: Callable[[int], int | None]
) -> list[RunEventPayload]:
    """The history with each call moved to `where(call)`, or dropped (with the decisions on
    its interrupts) where that is None. Parked markers are dropped: a hypothesis is replayed
    from scratch."""
    owners = interrupt_owners(payloads)
    out: list[RunEventPayload] = []
    for payload in payloads:
        if isinstance(payload, RunParked):
            continue
        call = call_of(payload, owners)
        if call is None:
            out.append(payload)
            continue
        moved = where(call)
        if moved is None:
            continue
        out.append(_renumbered(payload, moved) if moved != call else payload)
    return out


def _renumbered(payload: RunEventPayload, call: int) -> RunEventPayload:
    if hasattr(payload, "call"):
        renumbered: RunEventPayload = replace(payload, call=call)  # type: ignore[arg-type]
        return renumbered
    return payload  # a decision follows its interrupt's id, not a position


def stub_events(position: int, call: Call | str) -> list[RunEventPayload]:
    """Events that answer `call` at `position` with a neutral result: a tool returns null, an
    interrupt gets its first allowed decision, a value is zero-like. `call` is a call object,
    or a value kind ("now", "uuid", "random")."""
    if isinstance(call, ToolCall):
        return [
            ToolCallScheduled(
                call=position,
                tool=call.tool,
                args=call.args,
                args_digest=digest(call.args),
                idempotency_key=STUB,
                idempotent=True,
            ),
            ToolCallCompleted(call=position, result=None),
        ]
    if isinstance(call, InterruptCall):
        interrupt_id = f"{STUB}-{position}"
        request = ApprovalRequest(kind="question", title=call.title, allowed=call.allowed)
        decision: DecisionKind = call.allowed[0] if call.allowed else "approve"
        return [
            InterruptRaised(call=position, interrupt_id=interrupt_id, request=request),
            DecisionAccepted(
                interrupt_id=interrupt_id, decision_id=STUB, kind=decision, decided_by=STUB
            ),
        ]
    if call == "now":
        return [ValueRecorded(call=position, kind="now", value=0)]
    if call == "uuid":
        zero = "00000000-0000-0000-0000-000000000000"
        return [ValueRecorded(call=position, kind="uuid", value=zero)]
    return [ValueRecorded(call=position, kind="random", value=0.5)]
