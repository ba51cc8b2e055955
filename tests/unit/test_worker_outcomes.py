"""Every decision gets an outcome on the approvals topic, whatever the state of its run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from consumers.publisher import CommandPublisher
from engine.log.memory import MemoryLog
from engine.log.port import Topics
from engine.runtime.worker import Worker
from events.codec import Codec
from events.notices import ApprovalRequested, DecisionOutcome
from examples.refund import app
from tests.helpers import eventually

TOPICS = Topics("unit")
CODEC = Codec()


@pytest.fixture
async def running() -> AsyncIterator[tuple[MemoryLog, CommandPublisher]]:
    log = MemoryLog()
    await log.ensure_topics(TOPICS, 4)
    stop = asyncio.Event()
    task = asyncio.create_task(Worker(app, log, TOPICS, CODEC).run(stop))
    try:
        yield log, CommandPublisher(log, TOPICS, CODEC)
    finally:
        stop.set()
        await task


async def _notices(log: MemoryLog) -> list[object]:
    found = []
    for partition in range(4):
        async for record in log.read(TOPICS.approvals, partition, 0):
            found.append(CODEC.decode_notice(record.value))
    return found


async def _outcome(log: MemoryLog, decision_id: str) -> DecisionOutcome:
    async def find() -> DecisionOutcome | None:
        for notice in await _notices(log):
            if isinstance(notice, DecisionOutcome) and notice.decision_id == decision_id:
                return notice
        return None

    return await eventually(find, timeout=5)


async def test_a_second_decision_on_a_finished_run_is_refused_with_the_reason(
    running: tuple[MemoryLog, CommandPublisher],
) -> None:
    log, publisher = running
    run_id = await publisher.start_run(
        "refund", {"order_id": "A-1", "amount": 900}, requested_by="bob"
    )

    async def request() -> ApprovalRequested | None:
        return next((n for n in await _notices(log) if isinstance(n, ApprovalRequested)), None)

    asked = await eventually(request, timeout=5)
    first = await publisher.submit_decision(
        run_id, asked.interrupt_id, "approve", decided_by="alice"
    )
    assert (await _outcome(log, first)).accepted

    second = await publisher.submit_decision(
        run_id, asked.interrupt_id, "reject", decided_by="carol", reason="too late"
    )
    outcome = await _outcome(log, second)
    assert not outcome.accepted
    assert "already decided" in outcome.reason


async def test_a_decision_for_an_unknown_run_is_refused_with_the_reason(
    running: tuple[MemoryLog, CommandPublisher],
) -> None:
    log, publisher = running
    decision = await publisher.submit_decision(
        "no-such-run", "no-such-interrupt", "approve", decided_by="alice"
    )
    outcome = await _outcome(log, decision)
    assert not outcome.accepted
    assert "unknown run" in outcome.reason
