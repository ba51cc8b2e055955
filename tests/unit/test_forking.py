"""The pure side of forks (engine.core.forking): fork ids in the origin's partition, interrupt
ids of the fork's own, the prefix checks, the copied history, and how a fork's tools run."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from engine.agent.app import App
from engine.core.executor import ExecuteTool
from engine.core.forking import (
    NOT_RUN_IN_FORK,
    colocated_id,
    fork_command,
    fork_events,
    fork_interrupt_id,
    prefix_problem,
    recorded_results,
    tool_plan,
)
from engine.log.port import partition_for
from events.approval import ApprovalRequest
from events.envelope import EventEnvelope
from events.json import Json, digest
from events.run_events import (
    DecisionAccepted,
    DecisionHeld,
    InterruptRaised,
    RunEventPayload,
    RunStarted,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallScheduled,
)

app = App("forking")


@app.tool(idempotent=True)
async def look(q: str) -> Json:
    return q


@app.tool()
async def pay(amount: float) -> Json:
    return amount


@app.tool()
async def mail(to: str, dry_run: bool) -> Json:
    return to


def _envelopes(payloads: list[RunEventPayload], run_id: str = "origin") -> list[EventEnvelope]:
    return [
        EventEnvelope(
            event_id=f"e{seq}",
            run_id=run_id,
            seq=seq,
            occurred_at_us=1_000_000 * seq,
            agent="a",
            agent_version="1",
            causation_id="c",
            correlation_id=run_id,
            prev_hash="",
            payload=payload,
        )
        for seq, payload in enumerate(payloads)
    ]


START = RunStarted(input={"q": "x"}, requested_by="ann", command_id="c0")


def _raised(interrupt_id: str, call: int, deadline_us: int | None = None) -> InterruptRaised:
    request = ApprovalRequest(kind="question", title="Go?", deadline_us=deadline_us)
    return InterruptRaised(call=call, interrupt_id=interrupt_id, request=request)


def test_fork_ids_land_in_the_origins_partition_and_interrupt_ids_are_the_forks() -> None:
    counter = itertools.count()
    for partitions in (1, 3, 12):
        fork = colocated_id("origin-run", partitions, lambda: str(next(counter)))
        assert partition_for(fork, partitions) == partition_for("origin-run", partitions)
    assert fork_interrupt_id("f1", "i") == fork_interrupt_id("f1", "i")
    assert fork_interrupt_id("f1", "i") != fork_interrupt_id("f2", "i")


def test_the_prefix_must_be_the_origins_up_to_the_interrupt() -> None:
    prefix = _envelopes([START, _raised("i1", 0)])

    assert prefix_problem(prefix, "origin", "i1") == ""
    assert "another run" in prefix_problem(prefix, "someone-else", "i1")
    assert "does not end" in prefix_problem(prefix, "origin", "i2")
    assert "RunStarted" in prefix_problem(prefix[1:], "origin", "i1")
    with pytest.raises(ValueError, match="raised no interrupt i9"):
        fork_command(
            prefix,
            [b""] * 2,
            at_interrupt="i9",
            fork_id="f",
            requested_by="dev",
            tool_mode="dry-run",
            command_id="c",
            issued_at_us=1,
        )


def test_the_copy_renames_interrupts_restarts_open_deadlines_and_drops_held_decisions() -> None:
    held = DecisionHeld(
        interrupt_id="i2", decision_id="d0", kind="approve", decided_by="bo", issued_at_us=1
    )
    accepted = DecisionAccepted(
        interrupt_id="i1", decision_id="d1", kind="approve", decided_by="bo"
    )
    prefix = _envelopes([START, _raised("i1", 0), accepted, held, _raised("i2", 1, 9_000_000)])
    started = dataclasses.replace(START, forked_from="origin", forked_at=4)

    copied = fork_events(prefix, "f", started, now_us=100_000_000)

    assert [type(p).__name__ for p, _ in copied] == [
        "RunStarted", "InterruptRaised", "DecisionAccepted", "InterruptRaised",
    ]  # fmt: skip
    assert [tell for _, tell in copied] == [False, False, False, True]  # the open one only
    closed, decided, still_open = (p for p, _ in copied[1:])
    assert isinstance(closed, InterruptRaised)
    assert isinstance(decided, DecisionAccepted)
    assert isinstance(still_open, InterruptRaised)
    assert closed.interrupt_id == decided.interrupt_id == fork_interrupt_id("f", "i1")
    assert still_open.interrupt_id == fork_interrupt_id("f", "i2")
    assert still_open.request.deadline_us == 100_000_000 + (9_000_000 - 4_000_000)


def _effect(tool: str, args: dict[str, Json]) -> ExecuteTool:
    return ExecuteTool(call=3, tool=tool, args=args, idempotency_key="k")


def test_how_a_forks_tools_run() -> None:
    look_tool, pay_tool, mail_tool = (app.get_tool(n) for n in ("look", "pay", "mail"))
    assert look_tool is not None
    assert pay_tool is not None
    assert mail_tool is not None
    recorded = [{"tool": "pay", "args_digest": digest({"amount": 5}), "result": {"paid": 5}}]
    dry = dataclasses.replace(START, tool_mode="dry-run", recorded_results=recorded)
    idempotent = dataclasses.replace(START, tool_mode="idempotent")

    assert tool_plan(START, pay_tool, _effect("pay", {"amount": 5})) == "run"
    assert tool_plan(dry, pay_tool, _effect("pay", {"amount": 5})) == ToolCallCompleted(
        call=3, result={"paid": 5}
    )
    assert tool_plan(dry, pay_tool, _effect("pay", {"amount": 6})) == ToolCallCompleted(
        call=3, result={"dry_run": True, "tool": "pay"}
    )
    assert tool_plan(dry, mail_tool, _effect("mail", {"to": "x"})) == "run-dry"
    assert tool_plan(idempotent, look_tool, _effect("look", {"q": "x"})) == "run"
    refused = tool_plan(idempotent, pay_tool, _effect("pay", {"amount": 5}))
    assert isinstance(refused, ToolCallFailed)
    assert refused.error_type == NOT_RUN_IN_FORK


def test_recorded_results_are_keyed_by_the_arguments_that_ran() -> None:
    after = _envelopes(
        [
            START,
            ToolCallScheduled(
                call=2,
                tool="pay",
                args={"amount": 5},
                args_digest=digest({"amount": 9}),  # an edit ran other arguments than the call's
                idempotency_key="k",
                idempotent=False,
            ),
            ToolCallCompleted(call=2, result={"paid": 5}),
            ToolCallCompleted(call=7, result="no schedule: not kept"),
        ]
    )

    assert recorded_results(after) == [
        {"tool": "pay", "args_digest": digest({"amount": 5}), "result": {"paid": 5}}
    ]
