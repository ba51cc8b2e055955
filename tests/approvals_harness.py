"""Workers in-process on any event log (in-memory twin or Kafka), for the approval tests.

Workers run as asyncio tasks (`Worker.run(stop)`), commands go in through the same
`CommandPublisher` other systems use, and tests read what happened from the runs and
approvals topics, waiting on observable progress with `eventually` (never sleeping).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from consumers.publisher import CommandPublisher
from engine.agent.app import App
from engine.core.executor import Services
from engine.core.integrity import check_run
from engine.core.limits import DEFAULT_LIMITS, RunLimits
from engine.core.state import fold
from engine.log.port import EventLog, Record, Topics, partition_for
from engine.log.schema_registry import SchemaRegistry
from engine.privacy.keys import SubjectKeys
from engine.runtime.worker import Worker, WorkerSettings
from engine.trust.jws import SigningKey
from engine.trust.loading import Trust
from events.codec import Codec
from events.envelope import EventEnvelope
from events.notices import DecisionOutcome, Notice
from events.run_events import InterruptRaised, RunEventPayload
from tests.helpers import eventually

START_US = 1_700_000_000_000_000


class Clock:
    """A clock tests move by hand; each worker can have its own."""

    def __init__(self, now_us: int = START_US) -> None:
        self.now_us = now_us

    def __call__(self) -> int:
        return self.now_us

    def advance(self, seconds: float) -> None:
        self.now_us += int(seconds * 1_000_000)


_ids = itertools.count()


def services(clock: Callable[[], int]) -> Services:
    return Services(
        clock_us=clock,
        new_uuid=lambda: f"00000000-0000-4000-8000-{next(_ids):012d}",
        random=lambda: 0.5,
    )


@dataclass
class Running:
    worker: Worker
    task: asyncio.Task[None]
    stop: asyncio.Event

    async def halt(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 30)


class Harness:
    def __init__(
        self,
        event_log: EventLog,
        topics: Topics,
        *,
        timeout: float = 20.0,
        codec: Codec | None = None,
        schema_registry: SchemaRegistry | None = None,
    ) -> None:
        self.log = event_log
        self.topics = topics
        self.codec = codec or Codec()
        self.schema_registry = schema_registry
        self.publisher = CommandPublisher(event_log, topics, self.codec)
        self.timeout = timeout
        self.running: list[Running] = []
        self.chain_only = False

    async def start_worker(
        self,
        app: App,
        clock: Callable[[], int],
        *,
        group: str | None = None,
        limits: RunLimits = DEFAULT_LIMITS,
        keep_finished_runs: int = 1_000,
        trust: Trust | None = None,
        anchor_key: SigningKey | None = None,
        anchor_every_events: int = 256,
        anchor_every_s: float = 2.0,
        check_determinism: bool = False,
        release_waiting: bool = False,
        subject_keys: SubjectKeys | None = None,
    ) -> Running:
        settings = WorkerSettings(
            group=group or f"{self.topics.prefix}.workers",
            poll_timeout_s=0.05,
            limits=limits,
            keep_finished_runs=keep_finished_runs,
            anchor_every_events=anchor_every_events,
            anchor_every_s=anchor_every_s,
            check_determinism=check_determinism,
            release_waiting=release_waiting,
        )
        worker = Worker(
            app,
            self.log,
            self.topics,
            self.codec,
            services=services(clock),
            settings=settings,
            schema_registry=self.schema_registry,
            trust=trust,
            anchor_key=anchor_key,
            subject_keys=subject_keys,
        )
        stop = asyncio.Event()
        running = Running(worker, asyncio.create_task(worker.run(stop)), stop)
        self.running.append(running)
        await eventually(
            lambda: running.worker.owned_partitions or running.task.done(),
            timeout=self.timeout,
            message="the worker owns no partition",
        )
        if running.task.done():
            running.task.result()  # raise what stopped it
        return running

    async def halt_all(self) -> None:
        for running in self.running:
            if not running.task.done():
                await running.halt()
        self.running.clear()

    # -- reading what happened -----------------------------------------------------------------

    async def _partition(self, topic: str, run_id: str) -> int:
        return partition_for(run_id, await self.log.partition_count(topic))

    async def events(self, run_id: str) -> list[EventEnvelope]:
        """The run's events in log order; with `chain_only`, only those that extend its
        chain (a test that plants strays reads what the engine trusts)."""
        partition = await self._partition(self.topics.runs, run_id)
        records = [
            (record.offset, record.value)
            async for record in self.log.read(self.topics.runs, partition, 0)
            if record.key == run_id
        ]
        if self.chain_only:
            checked = check_run(lambda _, value: self.codec.decode_event(value), run_id, records)
            return [envelope for envelope, _, _ in checked.chain]
        return [
            envelope
            for envelope in (self.codec.decode_event(value) for _, value in records)
            if envelope.run_id == run_id
        ]

    async def dead_letters(self) -> list[Record]:
        out = []
        for partition in range(await self.log.partition_count(self.topics.dlq)):
            out.extend([r async for r in self.log.read(self.topics.dlq, partition, 0)])
        return out

    async def payloads(self, run_id: str) -> list[RunEventPayload]:
        return [envelope.payload for envelope in await self.events(run_id)]

    async def notices(self, run_id: str) -> list[Notice]:
        partition = await self._partition(self.topics.approvals, run_id)
        out = []
        async for record in self.log.read(self.topics.approvals, partition, 0):
            notice = self.codec.decode_notice(record.value)
            if notice.run_id == run_id:
                out.append(notice)
        return out

    async def wait_for(
        self, run_id: str, predicate: Callable[[list[RunEventPayload]], Any], what: str
    ) -> list[RunEventPayload]:
        async def check() -> list[RunEventPayload] | None:
            payloads = await self.payloads(run_id)
            return payloads if predicate(payloads) else None

        found: list[RunEventPayload] = await eventually(check, timeout=self.timeout, message=what)
        return found

    async def open_interrupts(
        self, run_id: str, count: int, *, besides: Collection[str] = ()
    ) -> list[InterruptRaised]:
        """Wait until the run has exactly `count` open interrupts, none of them in `besides`
        (ids seen before: wait for the next ones); in call order."""

        async def check() -> list[InterruptRaised] | None:
            state = fold(await self.events(run_id))
            if state is None:
                return None
            found = sorted(state.open_interrupts.values(), key=lambda r: (r.call, r.interrupt_id))
            if any(raised.interrupt_id in besides for raised in found):
                return None
            return found if len(found) == count else None

        result: list[InterruptRaised] = await eventually(
            check, timeout=self.timeout, message=f"{count} open interrupts in {run_id}"
        )
        return result

    async def outcome(self, decision_id: str, run_id: str, status: str = "") -> DecisionOutcome:
        async def check() -> DecisionOutcome | None:
            for notice in await self.notices(run_id):
                if (
                    isinstance(notice, DecisionOutcome)
                    and notice.decision_id == decision_id
                    and (not status or notice.status == status)
                ):
                    return notice
            return None

        found: DecisionOutcome = await eventually(
            check, timeout=self.timeout, message=f"an outcome for decision {decision_id}"
        )
        return found
