"""Histories for the projections' integration tests: runs with one gated tool call each,
encoded with contiguous seqs and the hash chain, as a worker writes them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from engine.log.port import EventLog, Outgoing
from events.approval import ApprovalRequest, RiskLevel
from events.codec import Codec
from events.envelope import GENESIS_HASH, EventEnvelope, hash_encoded
from events.json import JsonObject
from events.run_events import (
    DecisionAccepted,
    GateEvaluated,
    InterruptEscalated,
    InterruptExpired,
    InterruptRaised,
    RunCompleted,
    RunEventPayload,
    RunStarted,
    ToolCallCompleted,
    ToolCallScheduled,
)

CODEC = Codec()
T0 = 1_763_700_000_000_000  # 2025-11-21, µs
SECOND = 1_000_000
Outcome = Literal["auto", "approved", "edited", "rejected", "expired", "escalated", "open"]


class Stream:
    """One run's events, encoded in order."""

    def __init__(self, run_id: str, agent: str = "refunds") -> None:
        self.run_id = run_id
        self.agent = agent
        self.seq = 0
        self.prev_hash = GENESIS_HASH

    def encode(self, payload: RunEventPayload, at_us: int) -> bytes:
        envelope = EventEnvelope(
            event_id=f"{self.run_id}/{self.seq}",
            run_id=self.run_id,
            seq=self.seq,
            occurred_at_us=at_us,
            agent=self.agent,
            agent_version="1",
            causation_id="",
            correlation_id=self.run_id,
            prev_hash=self.prev_hash,
            payload=payload,
        )
        data = CODEC.encode(envelope)
        self.seq += 1
        self.prev_hash = hash_encoded(data)
        return data


@dataclass(kw_only=True)
class Call:
    """One run: a gated call of `tool` and how it went."""

    run_id: str = field(default_factory=lambda: f"run-{uuid.uuid4().hex[:10]}")
    agent: str = "refunds"
    tool: str = "refund"
    args: JsonObject = field(default_factory=lambda: {"order": "A-1", "amount": 2400.0})
    outcome: Outcome = "approved"
    risk: RiskLevel = "high"
    confidence: float | None = None
    requested_by: str = "bob"
    approvers: tuple[str, ...] = ("role:support-lead",)
    decided_by: str = "alice"
    decide_after_s: float = 60.0
    deadline_s: float | None = 3600.0
    start_us: int = T0
    edited_args: JsonObject | None = None
    reason: str = ""

    @property
    def interrupt_id(self) -> str:
        return f"{self.run_id}:approval"

    def payloads(self) -> list[tuple[RunEventPayload, int]]:
        at = self.start_us
        action = "auto" if self.outcome == "auto" else "approve"
        amount = self.args.get("amount")
        events: list[tuple[RunEventPayload, int]] = [
            (RunStarted(input=self.args, requested_by=self.requested_by, command_id="c"), at),
            (
                GateEvaluated(
                    call=0,
                    tool=self.tool,
                    args_digest="d",
                    action=action,
                    policy=f"{self.tool}-policy@1",
                    risk=self.risk,
                    confidence=self.confidence,
                    amount=float(amount) if isinstance(amount, int | float) else None,
                ),
                at + 1,
            ),
        ]
        if self.outcome == "auto":
            return [*events, *self._ran(self.args, at + 2)]
        events.append(
            (
                InterruptRaised(call=0, interrupt_id=self.interrupt_id, request=self._request(at)),
                at + 2,
            )
        )
        decided = at + 2 + int(self.decide_after_s * SECOND)
        match self.outcome:
            case "open":
                return events
            case "expired":
                expired = InterruptExpired(interrupt_id=self.interrupt_id, action="reject")
                return [*events, (expired, decided), (RunCompleted(output="gave up"), decided + 1)]
            case "escalated":
                return [
                    *events,
                    (InterruptExpired(interrupt_id=self.interrupt_id, action="escalate"), decided),
                    (
                        InterruptEscalated(
                            interrupt_id=self.interrupt_id,
                            level=1,
                            approvers=("role:cfo",),
                            reason="no decision",
                        ),
                        decided + 1,
                    ),
                ]
            case _:
                kind = {"approved": "approve", "edited": "edit", "rejected": "reject"}[self.outcome]
                decision = DecisionAccepted(
                    interrupt_id=self.interrupt_id,
                    decision_id=f"{self.run_id}:d",
                    kind=kind,  # type: ignore[arg-type]
                    decided_by=self.decided_by,
                    reason=self.reason,
                    edited_args=self.edited_args if kind == "edit" else None,
                )
                events.append((decision, decided))
                if kind == "reject":
                    return [*events, (RunCompleted(output="rejected"), decided + 1)]
                return [*events, *self._ran(self.edited_args or self.args, decided + 1)]

    def _request(self, at: int) -> ApprovalRequest:
        amount = self.args.get("amount")
        return ApprovalRequest(
            kind="tool",
            title=f"{self.tool}({self.args})",
            tool=self.tool,
            args=self.args,
            reasoning="the customer asked",
            risk=self.risk,
            amount=float(amount) if isinstance(amount, int | float) else None,
            deadline_us=None if self.deadline_s is None else at + int(self.deadline_s * SECOND),
            allowed=("approve", "edit", "reject"),
            approvers=self.approvers,
            policy=f"{self.tool}-policy@1",
            confidence=self.confidence,
        )

    def _ran(self, args: JsonObject, at: int) -> list[tuple[RunEventPayload, int]]:
        scheduled = ToolCallScheduled(
            call=0,
            tool=self.tool,
            args=args,
            args_digest="d",
            idempotency_key=f"{self.run_id}:0",
            idempotent=False,
        )
        return [
            (scheduled, at),
            (ToolCallCompleted(call=0, result={"ok": True}), at + 1),
            (RunCompleted(output={"ok": True}), at + 2),
        ]

    def encoded(self) -> list[bytes]:
        stream = Stream(self.run_id, self.agent)
        return [stream.encode(payload, at) for payload, at in self.payloads()]


async def publish(log: EventLog, topic: str, calls: Sequence[Call]) -> int:
    """Publish the runs interleaved, as concurrent runs would be; the number of events."""
    streams = [c.encoded() for c in calls]
    longest = max((len(s) for s in streams), default=0)
    count = 0
    for position in range(longest):
        batch = [
            Outgoing(topic, call.run_id, stream[position])
            for call, stream in zip(calls, streams, strict=True)
            if position < len(stream)
        ]
        count += len(batch)
        await log.publish(batch)
    return count
