"""The fault-injection suite's workload: several steps, idempotent and non-idempotent tools,
a question and an approval gate per run.

    countersign worker --app examples.chaos:app
    countersign start chaos --input '{"item": 7}' --by requester

Each run: two idempotent lookups at once (`fetch`, `enrich`), a non-idempotent `reserve`
(runs without asking), a question (answered with `respond`), a non-idempotent `charge`
behind an approval gate, and an idempotent `notify`. Every tool appends one JSON line per
effect to `$COUNTERSIGN_EFFECTS_FILE` ({tool, key, pid, at_ns}) *before* it returns, so a
crash after the effect and before its result is committed shows up as an effect the log
has no result for. `$COUNTERSIGN_CHAOS_TOOL_MS` (default 0) makes each tool take a random
0..N ms, to widen the windows a kill can hit. Tool results carry the pid that ran them.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time

from engine import Always, App, RunContext
from events.json import Json, JsonObject

app = App("chaos-example")

REQUESTER = "chaos-requester"


def _effect(tool: str, key: str) -> Json:
    path = os.environ.get("COUNTERSIGN_EFFECTS_FILE")
    line = {"tool": tool, "key": key, "pid": os.getpid(), "at_ns": time.time_ns()}
    if path:
        with open(path, "a", encoding="utf-8") as out:  # one short write: atomic with O_APPEND
            out.write(json.dumps(line) + "\n")
    return {"tool": tool, "key": key, "pid": os.getpid()}


async def _work() -> None:
    limit_ms = float(os.environ.get("COUNTERSIGN_CHAOS_TOOL_MS", "0"))
    if limit_ms > 0:
        await asyncio.sleep(random.uniform(0, limit_ms) / 1000)


@app.tool(idempotent=True)
async def fetch(item: int, idempotency_key: str) -> Json:
    await _work()
    return _effect("fetch", idempotency_key)


@app.tool(idempotent=True)
async def enrich(item: int, idempotency_key: str) -> Json:
    await _work()
    return _effect("enrich", idempotency_key)


@app.tool()
async def reserve(item: int, idempotency_key: str) -> Json:
    """Not idempotent: after a crash mid-call a person says whether it ran."""
    await _work()
    return _effect("reserve", idempotency_key)


@app.tool(policy=Always(name="chaos-charge", risk="high", reason="charges need a person"))
async def charge(item: int, amount: float, idempotency_key: str) -> Json:
    """Not idempotent, and gated: runs only once a person approved it."""
    await _work()
    return _effect("charge", idempotency_key)


@app.tool(idempotent=True)
async def notify(item: int, idempotency_key: str) -> Json:
    await _work()
    return _effect("notify", idempotency_key)


@app.agent("chaos", version="1")
async def chaos_agent(ctx: RunContext, input: JsonObject) -> Json:
    item = input["item"]
    fetched, enriched = await ctx.all(
        ctx.tool("fetch", {"item": item}), ctx.tool("enrich", {"item": item})
    )
    reserved = await ctx.tool("reserve", {"item": item})
    answer = await ctx.interrupt("how many units?", allowed=("respond",), risk="low")
    charged = await ctx.tool("charge", {"item": item, "amount": 10.0})
    notified = await ctx.tool("notify", {"item": item})
    return {
        "item": item,
        "units": answer.response,
        "steps": [r.status for r in (fetched, enriched, reserved, charged, notified)],
    }
