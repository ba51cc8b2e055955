"""The client other systems use to start runs and publish decisions.

It only appends commands to the commands topic (key = run id); it never talks to a worker.
The outcome of a decision comes back on the approvals topic, which `wait_for_outcome` reads.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from engine.log.port import EventLog, Outgoing, Topics, partition_for
from events.codec import Codec
from events.commands import CancelRun, Command, StartRun, SubmitDecision
from events.errors import DecodeError
from events.json import Json, JsonObject
from events.notices import DecisionOutcome


class OutcomeTimeout(TimeoutError):
    """No outcome for the decision arrived in time (is a worker running?)."""


def _now_us() -> int:
    return time.time_ns() // 1000


class CommandPublisher:
    def __init__(self, event_log: EventLog, topics: Topics, codec: Codec) -> None:
        self._log = event_log
        self._topics = topics
        self._codec = codec

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

    async def outcome_position(self, run_id: str) -> tuple[int, int]:
        """Where outcomes for `run_id` will appear; take it before publishing a decision."""
        partitions = await self._log.partition_count(self._topics.approvals)
        partition = partition_for(run_id, partitions)
        return partition, await self._log.end_offset(self._topics.approvals, partition)

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
        partition, start = position

        async def scan() -> DecisionOutcome:
            async for record in self._log.read(
                self._topics.approvals, partition, start, follow=True
            ):
                try:
                    notice = self._codec.decode_notice(record.value)
                except DecodeError:
                    continue  # not ours to judge; the approvals topic has other readers
                if isinstance(notice, DecisionOutcome) and notice.decision_id == decision_id:
                    if notice.status == "held" and not accept_held:
                        continue  # judged later, when its interrupt is raised
                    return notice
            raise OutcomeTimeout(decision_id)  # pragma: no cover - follow never ends

        try:
            return await asyncio.wait_for(scan(), timeout_s)
        except TimeoutError as exc:
            raise OutcomeTimeout(
                f"no outcome for decision {decision_id} within {timeout_s:.0f}s "
                "(is a worker running for this topic prefix?)"
            ) from exc
