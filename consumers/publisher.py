"""The client other systems use to start runs and publish decisions.

It only appends commands to the commands topic (key = run id); it never talks to a worker.
The outcome of a decision comes back on the approvals topic, which `wait_for_outcome` reads
through the approvals feed (`consumers.approvals`); what a resume came to is read from the
run's own events (`wait_for_resumed`). Given a signing key it signs every command it
publishes (the `countersign-proof` header over the exact bytes: docs/signing.md); workers on
Kafka refuse unsigned commands.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from consumers.agents import Agents
from consumers.approvals import ApprovalsFeed, FeedTimeout
from engine.log.port import EventLog, Outgoing, Topics, partition_for
from engine.trust.jws import SigningKey
from engine.trust.signing import DEFAULT_LIFETIME_S, proof_header
from events.codec import Codec
from events.commands import (
    CancelRun,
    Command,
    LiftQuarantine,
    ResumeRun,
    StartRun,
    SubmitDecision,
)
from events.envelope import EventEnvelope
from events.errors import DecodeError
from events.json import Json, JsonObject
from events.notices import DecisionOutcome
from events.run_events import RunResumed


class OutcomeTimeout(FeedTimeout):
    """No outcome for the decision arrived in time (is a worker running?)."""


def _now_us() -> int:
    return time.time_ns() // 1000


class CommandPublisher:
    def __init__(
        self,
        event_log: EventLog,
        topics: Topics,
        codec: Codec,
        *,
        key: SigningKey | None = None,
        lifetime_s: int = DEFAULT_LIFETIME_S,
    ) -> None:
        self._log = event_log
        self._topics = topics
        self._codec = codec
        self._feed = ApprovalsFeed(event_log, topics, codec)
        self._key = key
        self._lifetime_s = lifetime_s

    async def publish(self, command: Command) -> None:
        encoded = self._codec.encode(command)
        headers: tuple[tuple[str, bytes], ...] = (self._codec.schema_header(encoded),)
        if self._key is not None:
            now_s = int(time.time())
            proof = proof_header(
                encoded, command, self._key, now_s=now_s, lifetime_s=self._lifetime_s
            )
            headers = (*headers, proof)
        await self._log.publish(
            [Outgoing(self._topics.commands, command.run_id, encoded, headers=headers)]
        )

    async def start_run(
        self,
        agent: str,
        input: JsonObject,
        *,
        requested_by: str,
        run_id: str | None = None,
        agent_version: str = "",
        agents: Agents | None = None,
        patience_s: float = 0.0,
    ) -> str:
        """Start a run; with `agents`, only one a worker serves (looked for `patience_s`), with
        an input that fits the agent's schema (`UnknownAgent`, `InvalidInput` otherwise:
        nothing is sent)."""
        run_id = run_id or str(uuid.uuid4())
        start = StartRun(
            command_id=str(uuid.uuid4()),
            run_id=run_id,
            agent=agent,
            input=input,
            requested_by=requested_by,
            issued_at_us=_now_us(),
            agent_version=agent_version,
        )
        if agents is not None:
            await agents.check(start, patience_s=patience_s)
        await self.publish(start)
        return run_id

    async def submit_decision(
        self,
        run_id: str,
        interrupt_id: str,
        kind: str,
        *,
        decided_by: str,
        reason: str = "",
        edited_args: JsonObject | None = None,
        response: Json = None,
        digest: str = "",
        decision_id: str | None = None,
    ) -> str:
        decision_id = decision_id or str(uuid.uuid4())
        await self.publish(
            SubmitDecision(
                decision_id=decision_id,
                run_id=run_id,
                interrupt_id=interrupt_id,
                kind=kind,
                decided_by=decided_by,
                issued_at_us=_now_us(),
                reason=reason,
                edited_args=edited_args,
                response=response,
                digest=digest,
            )
        )
        return decision_id

    async def cancel_run(self, run_id: str, *, cancelled_by: str, reason: str = "") -> None:
        await self.publish(
            CancelRun(
                command_id=str(uuid.uuid4()),
                run_id=run_id,
                cancelled_by=cancelled_by,
                issued_at_us=_now_us(),
                reason=reason,
            )
        )

    async def lift_quarantine(self, run_id: str, *, lifted_by: str, reason: str = "") -> None:
        """Accept a quarantined run's chain as it is, so that it goes on (an operator's act)."""
        await self.publish(
            LiftQuarantine(
                command_id=str(uuid.uuid4()),
                run_id=run_id,
                lifted_by=lifted_by,
                issued_at_us=_now_us(),
                reason=reason,
            )
        )

    async def resume_run(self, run_id: str, *, resumed_by: str, reason: str = "") -> str:
        """Ask a parked run to go on; the command id (the `RunResumed` it causes names it)."""
        command_id = str(uuid.uuid4())
        await self.publish(
            ResumeRun(
                command_id=command_id,
                run_id=run_id,
                resumed_by=resumed_by,
                issued_at_us=_now_us(),
                reason=reason,
            )
        )
        return command_id

    async def run_position(self, run_id: str) -> tuple[int, int]:
        """Where the run's next events will appear; take it before publishing a command."""
        partitions = await self._log.partition_count(self._topics.runs)
        partition = partition_for(run_id, partitions)
        return partition, await self._log.end_offset(self._topics.runs, partition)

    async def wait_for_resumed(
        self, run_id: str, command_id: str, position: tuple[int, int], timeout_s: float = 30.0
    ) -> list[EventEnvelope]:
        """The `RunResumed` that `command_id` caused and the events committed with it (the
        replay that followed: a new interrupt, a completion, or the run parked again)."""
        partition, start = position

        async def resumed_offset() -> int:
            async for record in self._log.read(self._topics.runs, partition, start, follow=True):
                if record.key != run_id:
                    continue
                try:
                    envelope = self._codec.decode_event(record.value)
                except DecodeError:
                    continue  # not for us to judge: the run's owner quarantines such records
                if isinstance(envelope.payload, RunResumed) and (
                    envelope.payload.command_id == command_id
                ):
                    return record.offset
            raise TimeoutError  # pragma: no cover - follow never ends

        try:
            offset = await asyncio.wait_for(resumed_offset(), timeout_s)
        except TimeoutError as exc:
            raise OutcomeTimeout(command_id) from exc
        events = []
        async for record in self._log.read(self._topics.runs, partition, offset):
            if record.key == run_id:
                try:
                    events.append(self._codec.decode_event(record.value))
                except DecodeError:
                    continue
        return events

    async def outcome_position(self, run_id: str) -> tuple[int, int]:
        """Where outcomes for `run_id` will appear; take it before publishing a decision."""
        return await self._feed.position(run_id)

    async def wait_for_outcome(
        self,
        decision_id: str,
        position: tuple[int, int],
        timeout_s: float = 30.0,
        *,
        accept_held: bool = False,
    ) -> DecisionOutcome:
        """The outcome of `decision_id`: accepted, refused, or counted (one vote of a quorum).
        A decision held for an interrupt not raised yet is waited out unless `accept_held`."""
        try:
            return await self._feed.outcome(
                decision_id, position, timeout_s, accept_held=accept_held
            )
        except FeedTimeout as exc:
            raise OutcomeTimeout(
                f"no outcome for decision {decision_id} within {timeout_s:g}s "
                "(is a worker running for this topic prefix?)"
            ) from exc
