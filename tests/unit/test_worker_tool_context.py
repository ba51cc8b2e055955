"""A tool runs in a copy of the worker's context: a contextvar it sets (structlog's bound
contextvars, say) is its own, never seen by the next tool or the worker's later work."""

from __future__ import annotations

import contextvars

from engine.agent.app import App
from engine.log.memory import MemoryLog
from engine.log.port import Topics
from events.json import Json, JsonObject
from events.run_events import RunCompleted
from tests.approvals_harness import Clock, Harness

SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="clean")

app = App("context")


@app.tool(idempotent=True)
async def first() -> Json:
    SEEN.set("leaked")
    return "set"


@app.tool(idempotent=True)
async def second() -> Json:
    return SEEN.get()


@app.agent("context")
async def context_agent(ctx, input: JsonObject) -> Json:  # type: ignore[no-untyped-def]
    await ctx.tool("first", {})
    seen = await ctx.tool("second", {})
    return seen.value  # type: ignore[no-any-return]


async def test_what_a_tool_sets_in_its_context_stays_its_own() -> None:
    event_log = MemoryLog(default_partitions=1)
    topics = Topics("context")
    await event_log.ensure_topics(topics, 1)
    h = Harness(event_log, topics, timeout=10.0)
    try:
        await h.start_worker(app, Clock())
        run_id = await h.publisher.start_run("context", {}, requested_by="alice")
        payloads = await h.wait_for(
            run_id, lambda p: bool(p) and isinstance(p[-1], RunCompleted), "the run completes"
        )
    finally:
        await h.halt_all()

    done = payloads[-1]
    assert isinstance(done, RunCompleted)
    assert done.output == "clean"
