"""A deliberately non-deterministic agent: what `countersign dev` catches at the first decision.

    countersign dev --app examples.nondeterministic:app
    countersign start lottery --by alice

The agent draws a number with the `random` module (not `ctx.random()`) and asks whether to
keep it. While the worker keeps the run in memory nothing seems wrong; replayed from its
history (after a restart, on another worker, or at every resume under `dev`) it draws another
number, so its question no longer matches the history and the run is parked, with both
calls, what differs, the source line and the fix (`ctx.random()`).
"""

from __future__ import annotations

import random

from engine import App, RunContext
from events.json import Json, JsonObject

app = App("nondeterministic-example")


@app.tool(idempotent=True)
async def log_note(text: str) -> Json:
    """Notes something down (idempotent: it only records)."""
    return {"noted": text}


@app.agent("lottery", version="1")
async def lottery(ctx: RunContext, input: JsonObject) -> Json:
    draw = random.randint(1, 10**12)  # the bug: ctx.random() would be recorded
    answer = await ctx.interrupt(f"Keep the draw {draw}?", allowed=("approve", "reject"))
    if answer.kind == "approve":
        await ctx.tool("log_note", {"text": f"kept {draw}"})
    return {"draw": draw, "kept": answer.kind == "approve"}
