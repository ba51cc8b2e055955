"""A tool call whose arguments break the tool's schema is refused before any policy sees it:
the agent gets a failed call, no gate is evaluated, nothing is scheduled, the tool never runs,
and a rebuild from the history reproduces the same refusal."""

from __future__ import annotations

from engine.agent.app import AgentSpec
from engine.agent.context import RunContext
from engine.core.executor import INVALID_ARGUMENTS
from events.json import Json, JsonObject
from events.run_events import (
    GateEvaluated,
    RunCompleted,
    ToolCallFailed,
    ToolCallScheduled,
)
from tests.unit.test_executor import APP, Driver, effects_so_far, started


async def _refund_as_text(ctx: RunContext, input: JsonObject) -> Json:
    """Proposes a refund with the amount as a string: the Limit could not read it."""
    result = await ctx.tool("refund", {"order_id": "A-17", "amount": "25000"})
    return {"status": result.status, "reason": result.reason}


TEXT_AMOUNT = AgentSpec(name="text-amount", version="1", fn=_refund_as_text)


def test_invalid_arguments_go_back_to_the_agent_and_the_tool_never_runs() -> None:
    before = effects_so_far()
    driver = Driver(TEXT_AMOUNT, started())

    step = driver.advance()

    [failed, completed] = step.events
    assert isinstance(failed, ToolCallFailed)
    assert failed.error_type == INVALID_ARGUMENTS
    assert "amount must be number or integer, not string" in failed.error
    assert isinstance(completed, RunCompleted)
    assert completed.output == {
        "status": "failed",
        "reason": f"{INVALID_ARGUMENTS}: {failed.error}",
    }
    assert step.effects == []
    assert not any(isinstance(e, GateEvaluated | ToolCallScheduled) for e in driver.history)
    assert effects_so_far() == before


def test_a_rebuild_replays_the_refusal_without_asking_again() -> None:
    driver = Driver(TEXT_AMOUNT, started())
    [_, completed] = driver.advance().events
    driver.history.pop()  # as a worker that restored the run before it completed

    rebuilt = driver.fresh()  # its services explode if asked for anything recorded
    assert rebuilt.advance().events == [completed]  # the refusal is read, not made again


def test_the_app_schema_is_what_is_checked() -> None:
    refund = APP.get_tool("refund")
    assert refund is not None
    assert refund.args_schema["required"] == ["order_id", "amount"]
