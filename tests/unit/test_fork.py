"""Forks through the real worker on the in-memory log: a new run from another run's history up
to an interrupt, another decision there; tools dry-run by default (effects counted), a live
fork runs idempotent tools once and refuses the others; a prefix the worker cannot check is
refused for a fork whose tools would run."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from engine.agent.app import App
from engine.agent.context import RunContext
from engine.core.forking import colocated_id, fork_command, fork_interrupt_id
from engine.log.memory import MemoryLog
from engine.log.port import Topics, partition_for
from events.commands import ForkRun
from events.envelope import hash_encoded
from events.json import Json, JsonObject
from events.notices import ApprovalRequested
from events.run_events import (
    InterruptRaised,
    RunCompleted,
    RunEventPayload,
    RunStarted,
    ToolCallFailed,
    ToolMode,
)
from tests.approvals_harness import Clock, Harness
from tests.helpers import eventually

PARTITIONS = 2
EFFECTS: list[str] = []

app = App("fork-test")


@app.tool(idempotent=True)
async def fetch(item: str) -> Json:
    EFFECTS.append(f"fetch {item}")
    return {"item": item, "stock": 3}


@app.tool()
async def ship(item: str) -> Json:
    EFFECTS.append(f"ship {item}")
    return {"shipped": item}


@app.tool()
async def email(to: str, dry_run: bool) -> Json:
    EFFECTS.append(f"email {to} dry_run={dry_run}")
    return {"sent": not dry_run}


@app.agent("shop", version="1")
async def shop(ctx: RunContext, input: JsonObject) -> Json:
    item = str(input["item"])
    await ctx.tool("fetch", {"item": item})
    go = await ctx.interrupt("Ship it?", allowed=("approve", "reject"))
    if go.kind != "approve":
        return {"shipped": False, "dry_run": ctx.dry_run}
    again = await ctx.tool("fetch", {"item": f"{item}-2"})
    shipped = await ctx.tool("ship", {"item": item})
    mail = await ctx.tool("email", {"to": "ops"})
    return {
        "again": again.value,
        "shipped": shipped.value,
        "ship_status": shipped.status,
        "mail": mail.value,
        "dry_run": ctx.dry_run,
    }


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    event_log = MemoryLog(default_partitions=PARTITIONS)
    topics = Topics("fork")
    await event_log.ensure_topics(topics, PARTITIONS)
    h = Harness(event_log, topics, timeout=10.0)
    await h.start_worker(app, Clock())
    EFFECTS.clear()
    try:
        yield h
    finally:
        await h.halt_all()


async def _raws(h: Harness, run_id: str) -> list[bytes]:
    partition = partition_for(run_id, PARTITIONS)
    return [r.value async for r in h.log.read(h.topics.runs, partition, 0) if r.key == run_id]


async def _origin_waiting(h: Harness) -> tuple[str, InterruptRaised]:
    run_id = await h.publisher.start_run("shop", {"item": "tea"}, requested_by="ann")
    [raised] = await h.open_interrupts(run_id, 1)
    return run_id, raised


async def _fork(h: Harness, origin: str, at: str, mode: ToolMode = "dry-run") -> ForkRun:
    events = await h.events(origin)
    command = fork_command(
        events,
        await _raws(h, origin),
        at_interrupt=at,
        fork_id=colocated_id(origin, PARTITIONS, lambda: uuid.uuid4().hex),
        requested_by="dev",
        tool_mode=mode,
        command_id=str(uuid.uuid4()),
        issued_at_us=1,
    )
    await h.publisher.publish(command)
    return command


async def _decide(h: Harness, fork: ForkRun, kind: str) -> list[RunEventPayload]:
    interrupt_id = fork_interrupt_id(fork.run_id, fork.at_interrupt)
    await h.open_interrupts(fork.run_id, 1)
    await h.publisher.submit_decision(fork.run_id, interrupt_id, kind, decided_by="dev")
    return await h.wait_for(
        fork.run_id, lambda ps: isinstance(ps[-1], RunCompleted), "the fork completes"
    )


async def test_a_dry_run_fork_runs_no_tool_and_links_its_origin(harness: Harness) -> None:
    origin, raised = await _origin_waiting(harness)
    assert EFFECTS == ["fetch tea"]
    origin_raws = await _raws(harness, origin)

    fork = await _fork(harness, origin, raised.interrupt_id)
    payloads = await _decide(harness, fork, "approve")

    assert EFFECTS == ["fetch tea", "email ops dry_run=True"]  # only the tool's own dry run
    started = payloads[0]
    assert isinstance(started, RunStarted)
    seq = len(fork.prefix) - 1
    assert (started.forked_from, started.forked_at, started.tool_mode) == (origin, seq, "dry-run")
    assert started.origin_hash == hash_encoded(origin_raws[seq])  # checked against the origin
    output = payloads[-1].output  # type: ignore[union-attr]
    assert output == {
        "again": {"dry_run": True, "tool": "fetch"},
        "shipped": {"dry_run": True, "tool": "ship"},
        "ship_status": "ok",
        "mail": {"sent": False},
        "dry_run": True,
    }
    assert [type(p).__name__ for p in payloads[1 : seq + 1]] == [
        type(e.payload).__name__ for e in (await harness.events(origin))[1 : seq + 1]
    ]
    assert (await harness.events(origin))[-1].payload == raised  # the origin waits on


async def test_only_the_forks_open_interrupt_is_announced(harness: Harness) -> None:
    origin, raised = await _origin_waiting(harness)

    fork = await _fork(harness, origin, raised.interrupt_id)
    [open_one] = await harness.open_interrupts(fork.run_id, 1)

    assert open_one.interrupt_id == fork_interrupt_id(fork.run_id, raised.interrupt_id)
    requests = [n for n in await harness.notices(fork.run_id) if isinstance(n, ApprovalRequested)]
    assert [r.interrupt_id for r in requests] == [open_one.interrupt_id]


async def test_another_decision_in_a_fork(harness: Harness) -> None:
    origin, raised = await _origin_waiting(harness)

    fork = await _fork(harness, origin, raised.interrupt_id)
    payloads = await _decide(harness, fork, "reject")

    assert payloads[-1] == RunCompleted(output={"shipped": False, "dry_run": True})
    assert EFFECTS == ["fetch tea"]


async def test_a_dry_run_fork_returns_what_the_origin_recorded(harness: Harness) -> None:
    origin, raised = await _origin_waiting(harness)
    await harness.publisher.submit_decision(origin, raised.interrupt_id, "approve", decided_by="bo")
    await harness.wait_for(origin, lambda ps: isinstance(ps[-1], RunCompleted), "the origin ends")
    ran = list(EFFECTS)

    fork = await _fork(harness, origin, raised.interrupt_id)
    payloads = await _decide(harness, fork, "approve")

    assert ran == EFFECTS  # nothing ran again
    output = payloads[-1].output  # type: ignore[union-attr]
    assert output["again"] == {"item": "tea-2", "stock": 3}  # type: ignore[index, call-overload]
    assert output["shipped"] == {"shipped": "tea"}  # type: ignore[index, call-overload]


async def test_a_live_fork_runs_an_idempotent_tool_once_and_refuses_the_others(
    harness: Harness,
) -> None:
    origin, raised = await _origin_waiting(harness)

    fork = await _fork(harness, origin, raised.interrupt_id, mode="idempotent")
    payloads = await _decide(harness, fork, "approve")

    assert EFFECTS == ["fetch tea", "fetch tea-2"]
    refused = [p for p in payloads if isinstance(p, ToolCallFailed)]
    assert [p.error_type for p in refused] == ["NotRunInFork", "NotRunInFork"]
    assert "ship is not (fork with --live --yes" in refused[0].error
    assert payloads[-1].output["ship_status"] == "failed"  # type: ignore[union-attr, index, call-overload]


async def test_a_fork_with_every_tool_live_runs_them(harness: Harness) -> None:
    origin, raised = await _origin_waiting(harness)

    fork = await _fork(harness, origin, raised.interrupt_id, mode="live")
    await _decide(harness, fork, "approve")

    assert EFFECTS == ["fetch tea", "fetch tea-2", "ship tea", "email ops dry_run=False"]


async def test_a_live_fork_of_a_run_the_worker_cannot_check_is_refused(harness: Harness) -> None:
    origin, raised = await _origin_waiting(harness)
    await harness.publisher.submit_decision(origin, raised.interrupt_id, "reject", decided_by="bo")
    await harness.wait_for(origin, lambda ps: isinstance(ps[-1], RunCompleted), "the origin ends")

    fork = await _fork(harness, origin, raised.interrupt_id, mode="idempotent")

    assert "needs its origin live on this worker" in await _refusal(harness)
    assert await harness.events(fork.run_id) == []


async def test_a_tampered_prefix_is_refused(harness: Harness) -> None:
    origin, raised = await _origin_waiting(harness)
    raws = await _raws(harness, origin)
    events = await harness.events(origin)
    tampered = [raws[0].replace(b"ann", b"eve"), *raws[1:]]
    command = fork_command(
        events,
        tampered,
        at_interrupt=raised.interrupt_id,
        fork_id=colocated_id(origin, PARTITIONS, lambda: uuid.uuid4().hex),
        requested_by="dev",
        tool_mode="dry-run",
        command_id="c",
        issued_at_us=1,
    )
    await harness.publisher.publish(command)

    assert "does not carry the hash" in await _refusal(harness)


async def _refusal(harness: Harness) -> str:
    async def reason() -> str | None:
        for record in await harness.dead_letters():
            why = (record.header("countersign.reason") or b"").decode()
            if why.startswith("fork refused"):
                return why
        return None

    found: str = await eventually(reason, timeout=10, message="a refused fork")
    return found
