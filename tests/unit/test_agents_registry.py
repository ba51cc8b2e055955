"""Workers register what they serve; `start` checks a run against it before sending: an agent
(or a pinned version) no worker serves is refused, and so is an input that breaks the agent's
input schema (in-memory log)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from consumers.agents import Agents, InvalidInput, UnknownAgent
from engine.log.memory import MemoryLog
from engine.log.port import Topics
from examples import refund
from tests.approvals_harness import Clock, Harness
from tests.helpers import eventually


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    event_log = MemoryLog(default_partitions=2)
    topics = Topics("agents")
    await event_log.ensure_topics(topics, 2)
    harness = Harness(event_log, topics, timeout=10.0)
    try:
        yield harness
    finally:
        await harness.halt_all()


async def test_a_worker_registers_its_agents_and_start_is_checked_against_them(
    h: Harness,
) -> None:
    agents = Agents(h.log, h.topics, h.codec)
    assert await agents.all() == []
    with pytest.raises(UnknownAgent, match="is a worker running"):
        await h.publisher.start_run("refund", {}, requested_by="bob", agents=agents)

    await h.start_worker(refund.app, Clock())
    [registered] = await eventually(agents.all, message="the worker registered its agent")
    assert (registered.agent, registered.version, registered.app) == (
        "refund",
        "1",
        "refund-example",
    )
    assert registered.input_schema is not None
    assert {"name": "refund", "idempotent": False} in registered.tools  # type: ignore[operator]

    with pytest.raises(UnknownAgent, match=r"no worker serves agent refnud .*refund@1"):
        await h.publisher.start_run("refnud", {}, requested_by="bob", agents=agents)
    with pytest.raises(UnknownAgent, match="refund version 2"):
        await h.publisher.start_run(
            "refund",
            {"order_id": "A", "amount": 1},
            requested_by="b",
            agents=agents,
            agent_version="2",
        )
    with pytest.raises(InvalidInput, match=r"input\.order_id is required"):
        await h.publisher.start_run("refund", {"amount": 1}, requested_by="bob", agents=agents)
    with pytest.raises(InvalidInput, match="amount must be number or integer, not string"):
        await h.publisher.start_run(
            "refund", {"order_id": "A", "amount": "25000"}, requested_by="bob", agents=agents
        )
    assert await h.dead_letters() == []
    run_id = await h.publisher.start_run(
        "refund", {"order_id": "A-1", "amount": 20}, requested_by="bob", agents=agents
    )
    await h.wait_for(run_id, lambda p: len(p) > 2, "the checked run starts")
