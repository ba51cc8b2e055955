"""The client other systems use to start runs and publish decisions.

It only appends commands to the commands topic (key = run id); it never talks to a worker.
The outcome of a decision comes back on the approvals topic, which `wait_for_outcome` reads
through the approvals feed (`consumers.approvals`).
"""

from __future__ import annotations

import time
import uuid

from consumers.approvals import ApprovalsFeed, FeedTimeout
from engine.log.port import EventLog, Outgoing, Topics
from events.codec import Codec
from events.commands import CancelRun, Command, LiftQuarantine, StartRun, SubmitDecision
from events.json import Json, JsonObject
from events.notices import DecisionOutcome


class OutcomeTimeout(FeedTimeout):
    """No outcome for the decision arrived in time (is a worker running?)."""


def _now_us() -> int:
    return time.time_ns() // 1000


class CommandPublisher:
    def __init__(self, event_log: EventLog, topics: Topics, codec: Codec) -> None:
        self._log = event_log
        self._topics = topics
        self._codec = codec
        self._feed = ApprovalsFeed(event_log, topics, codec)

    async def publish(self, command: Command) -> None:
        encoded = self._codec.encode(command)
        headers = (self._codec.schema_header(encoded),)
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
    ) -> str:
        run_id = run_id or str(uuid.uuid4())
        await self.publish(
            StartRun(
                command_id=str(uuid.uuid4()),
                run_id=run_id,
                agent=agent,
                input=input,
                requested_by=requested_by,
                issued_at_us=_now_us(),
                agent_version=agent_version,
            )
        )
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
