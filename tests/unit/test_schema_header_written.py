"""Every record a worker or the publisher writes carries the `countersign-schema` header that
names its writer schema, so an older release can tell "newer" from "corrupt"."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from engine.agent.app import App
from engine.agent.context import RunContext
from engine.agent.policies import Always
from engine.log.memory import MemoryLog
from engine.log.port import Record, Topics
from events.json import Json, JsonObject
from events.run_events import RunCompleted, RunEventPayload
from events.schema_header import SCHEMA_HEADER, SchemaClaim
from tests.approvals_harness import Clock, Harness

app = App("headers")


@app.tool(policy=Always(risk="medium"))
async def pay(amount: float) -> Json:
    return {"paid": amount}


@app.agent("pay")
async def pay_agent(ctx: RunContext, input: JsonObject) -> Json:
    return (await ctx.tool("pay", {"amount": input["amount"]})).value


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    event_log = MemoryLog(default_partitions=1)
    topics = Topics("headers")
    await event_log.ensure_topics(topics, 1)
    h = Harness(event_log, topics, timeout=10.0)
    try:
        yield h
    finally:
        await h.halt_all()


def _completed(payloads: list[RunEventPayload]) -> bool:
    return any(isinstance(p, RunCompleted) for p in payloads)


async def _records(h: Harness, topic: str) -> list[Record]:
    return [r async for r in h.log.read(topic, 0, 0)]


async def test_runs_approvals_and_commands_records_name_their_writer_schema(h: Harness) -> None:
    await h.start_worker(app, Clock())
    run_id = await h.publisher.start_run("pay", {"amount": 3}, requested_by="alice")
    [raised] = await h.open_interrupts(run_id, 1)
    await h.publisher.submit_decision(run_id, raised.interrupt_id, "approve", decided_by="bob")
    await h.wait_for(run_id, _completed, "the run completes")

    for topic in (h.topics.runs, h.topics.approvals, h.topics.commands):
        records = await _records(h, topic)
        assert records, topic
        for record in records:
            value = record.header(SCHEMA_HEADER)
            assert value is not None, topic
            claim = SchemaClaim.parse(value)
            assert claim is not None
            released = h.codec.catalog.find(claim.name, claim.version)
            assert released is not None  # the release that first wrote this version
            assert claim.release == released.release <= h.codec.release
            assert claim.fingerprint == record.value[2:10]
            assert h.codec.type_of(record.value) is not None
