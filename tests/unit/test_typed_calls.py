"""Typed tool calls (`ctx.call(tool, ...)`), `ToolResult.unwrap()`, and `ctx.patched()` branches
that keep old runs on the old code across a pause."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypedDict

import pytest

from engine import Always, App, RunContext, ToolNotOk, ToolResult
from events.json import Json, JsonObject
from events.run_events import (
    InterruptRaised,
    RunCompleted,
    RunFailed,
    RunParked,
    ToolCallScheduled,
    ValueRecorded,
)
from tests.unit.approvals_sim import Sim


class Invoice(TypedDict):
    invoice_id: str
    amount: float


app = App("typed")


@app.tool(idempotent=True)
async def lookup_invoice(invoice_id: str) -> Invoice:
    return {"invoice_id": invoice_id, "amount": 120.0}


@app.tool(policy=Always(name="pay-always", approvers=("carol",)))
async def pay(vendor: str, amount: float, idempotency_key: str = "") -> str:
    return f"paid {amount:g} to {vendor} ({idempotency_key})"


async def not_a_tool(x: int) -> int:
    return x


@app.agent("payer")
async def payer(ctx: RunContext, input: JsonObject) -> Json:
    invoice = (await ctx.call(lookup_invoice, "INV-7")).unwrap()
    result: ToolResult[str] = await ctx.call(
        pay, vendor="acme", amount=invoice["amount"]
    ).explained("the invoice is due", impact="120 leaves the account", confidence=0.7)
    if not result.ok:
        return {"paid": False, "why": result.reason}
    return {"paid": True, "receipt": result.unwrap(), "by": result.decided_by}


def test_a_typed_call_records_named_arguments_and_returns_the_typed_result() -> None:
    sim = Sim(app, "payer", {})

    lookup = sim.of_type(ToolCallScheduled)[0]
    assert (lookup.tool, lookup.args) == ("lookup_invoice", {"invoice_id": "INV-7"})
    [raised] = sim.of_type(InterruptRaised)
    assert raised.request.args == {"vendor": "acme", "amount": 120.0}
    assert raised.request.reasoning == "the invoice is due"
    assert raised.request.impact == "120 leaves the account"
    assert raised.request.confidence == 0.7

    sim.decide(raised.interrupt_id, "approve", "carol")

    assert sim.output == {"paid": True, "receipt": "paid 120 to acme (run-1:1)", "by": "carol"}
    assert sim.replayed().advance().events == [sim.events[-1]]  # replays as recorded


def test_unwrap_of_a_rejected_call_raises_with_the_reason() -> None:
    rejected: ToolResult[str] = ToolResult(status="rejected", reason="not this month")

    with pytest.raises(ToolNotOk, match="the tool call was rejected: not this month"):
        rejected.unwrap()
    assert ToolResult(status="ok", value=3).unwrap() == 3


def test_a_rejection_fed_back_through_a_typed_call() -> None:
    sim = Sim(app, "payer", {})

    sim.decide(sim.only_open().interrupt_id, "reject", "carol", reason="pay next month")

    assert sim.output == {"paid": False, "why": "pay next month"}


async def _calls(ctx: RunContext, input: JsonObject) -> Json:
    which = str(input["which"])
    if which == "not-a-tool":
        await ctx.call(not_a_tool, 3)  # typed fine: only the app knows its tools
    elif which == "key":
        await ctx.call(pay, vendor="x", amount=1, idempotency_key="mine")
    return None


@pytest.mark.parametrize(
    ("which", "says"),
    [
        ("not-a-tool", "'not_a_tool' is not a tool of this app"),
        ("key", "idempotency_key is the engine's to give"),
    ],
)
def test_a_typed_call_the_engine_cannot_make_parks_the_run_with_why(which: str, says: str) -> None:
    misuse = App("misuse", include=(app,))
    misuse.agent("misuse")(_calls)

    sim = Sim(misuse, "misuse", {"which": which})

    [parked] = sim.of_type(RunParked)
    assert parked.reason == "ConfigurationError"
    assert says in parked.actual


# -- patched ---------------------------------------------------------------------------------

CODE = {"version": "old"}
"""Which code the agent runs: switching it under a paused run is a deploy."""

patching = App("patching")


@patching.tool(idempotent=True)
async def note(text: str) -> str:
    return text


@patching.agent("noter")
async def noter(ctx: RunContext, input: JsonObject) -> Json:
    if CODE["version"] == "old":
        first = await ctx.call(note, "old step")
    elif CODE["version"] == "deprecated":
        ctx.deprecate_patch("new-step")
        first = await ctx.call(note, "new step")
    elif ctx.patched("new-step"):
        first = await ctx.call(note, "new step")
    else:
        first = await ctx.call(note, "old step")
    answer = await ctx.interrupt("Go on?", allowed=("approve", "reject"))
    return {"first": first.unwrap(), "answer": answer.kind}


@pytest.fixture
def code() -> Iterator[dict[str, str]]:
    yield CODE
    CODE["version"] = "old"


def _deploy(sim: Sim, version: str) -> None:
    """The new code reaches a paused run: the next worker rebuilds it from its history."""
    CODE["version"] = version
    sim.replayer = sim.replayed()


def test_a_run_paused_under_the_old_code_keeps_the_old_branch(code: dict[str, str]) -> None:
    sim = Sim(patching, "noter", {})
    _deploy(sim, "patched")

    sim.decide(sim.only_open().interrupt_id, "approve", "bob")

    assert sim.output == {"first": "old step", "answer": "approve"}
    assert not sim.of_type(ValueRecorded)
    assert not sim.of_type(RunParked)


def test_a_run_started_under_the_new_code_records_and_keeps_the_new_branch(
    code: dict[str, str],
) -> None:
    CODE["version"] = "patched"
    sim = Sim(patching, "noter", {})
    [marker] = sim.of_type(ValueRecorded)
    assert (marker.call, marker.kind, marker.value) == (0, "patch", "new-step")
    _deploy(sim, "patched")  # rebuilt from its history after the pause

    sim.decide(sim.only_open().interrupt_id, "approve", "bob")

    assert sim.output == {"first": "new step", "answer": "approve"}
    assert len(sim.of_type(ValueRecorded)) == 1


def test_a_deprecated_patch_replays_past_its_marker(code: dict[str, str]) -> None:
    CODE["version"] = "patched"
    sim = Sim(patching, "noter", {})
    _deploy(sim, "deprecated")

    sim.decide(sim.only_open().interrupt_id, "approve", "bob")

    assert sim.output == {"first": "new step", "answer": "approve"}


def test_without_a_patch_the_changed_code_would_park_the_paused_run(code: dict[str, str]) -> None:
    sim = Sim(patching, "noter", {})
    _deploy(sim, "deprecated")  # the new code, no branch for old runs

    sim.decide(sim.only_open().interrupt_id, "approve", "bob")

    [parked] = sim.of_type(RunParked)
    assert '"old step"' in parked.detail
    assert '"new step"' in parked.detail
    assert not sim.of_type(RunCompleted)
    assert not sim.of_type(RunFailed)


def test_a_tool_is_found_by_its_function_in_the_app_or_an_included_one() -> None:
    assert app.tool_name(pay) == "pay"
    assert App("outer", include=(app,)).tool_name(lookup_invoice) == "lookup_invoice"
    assert app.tool_name(not_a_tool) is None
