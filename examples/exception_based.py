"""Exception-based: fully automatic until something looks wrong, then a person is asked.

    countersign worker --app examples.exception_based:app
    countersign start invoice-sync --input '{"batches": ["b1", "b2"], "budget": 100}' --by ops

The agent syncs invoice batches without asking anyone. Before going on after each batch it
checks three anomalies and, if one fires, raises an interrupt that names it:
- scale: a batch returned far more rows than expected (`SCALE_FACTOR` times);
- budget: the spend so far is close to the run's budget (`BUDGET_SHARE`);
- slowness: a step took much longer than usual (`SLOW_FACTOR` times), timed with `ctx.now()`
  (recorded, so a replay sees the same durations).
approve = carry on; reject = stop here; respond = carry on with a note (kept in the output).
"""

from __future__ import annotations

from engine import App, RunContext
from events.json import Json, JsonObject

app = App("exception-based-example")

EXPECTED_ROWS = 100
SCALE_FACTOR = 10
BUDGET_SHARE = 0.9
USUAL_STEP_S = 2.0
SLOW_FACTOR = 5
COST_PER_ROW = 0.01

ROWS: dict[str, int] = {}
"""Rows per batch id the fake source returns (tests set it); default EXPECTED_ROWS."""


@app.tool(idempotent=True)
async def sync_batch(batch: str) -> Json:
    rows = ROWS.get(batch, EXPECTED_ROWS)
    return {"batch": batch, "rows": rows, "cost": round(rows * COST_PER_ROW, 2)}


def anomalies(rows: int, spent: float, budget: float, seconds: float) -> list[str]:
    """The anomalies one step shows (pure; the thresholds are the module's constants)."""
    found: list[str] = []
    if rows > SCALE_FACTOR * EXPECTED_ROWS:
        found.append(f"scale: {rows} rows, expected about {EXPECTED_ROWS}")
    if budget > 0 and spent >= BUDGET_SHARE * budget:
        found.append(f"budget: {spent:g} of {budget:g} spent")
    if seconds > SLOW_FACTOR * USUAL_STEP_S:
        found.append(f"slow: the step took {seconds:g}s, usually {USUAL_STEP_S:g}s")
    return found


@app.agent("invoice-sync", version="1")
async def invoice_sync(ctx: RunContext, input: JsonObject) -> Json:
    batches = input.get("batches", [])
    budget = input.get("budget", 0)
    assert isinstance(batches, list)
    assert isinstance(budget, int | float)
    spent = 0.0
    done: list[Json] = []
    notes: list[Json] = []
    for batch in batches:
        started = ctx.now()
        result = await ctx.tool("sync_batch", {"batch": batch})
        seconds = (ctx.now() - started).total_seconds()
        if not result.ok or not isinstance(result.value, dict):
            return {"status": "failed", "batch": batch, "reason": result.reason}
        rows = result.value["rows"]
        cost = result.value["cost"]
        assert isinstance(rows, int)
        assert isinstance(cost, int | float)
        spent += cost
        done.append(batch)
        found = anomalies(rows, spent, float(budget), seconds)
        if not found:
            continue
        named: list[Json] = [*found]
        decision = await ctx.interrupt(
            f"Anomaly after batch {batch}: {'; '.join(found)}",
            allowed=("approve", "reject", "respond"),
            context={"batch": batch, "anomalies": named, "rows": rows, "spent": spent},
            risk="medium",
        )
        if decision.kind == "reject":
            return {"status": "stopped", "after": batch, "by": decision.decided_by, "done": done}
        if decision.kind == "respond":
            notes.append(decision.response)
    return {"status": "synced", "done": done, "spent": round(spent, 2), "notes": notes}
