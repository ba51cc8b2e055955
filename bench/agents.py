"""Agents only the benchmarks run (`bench/skeleton.py --agent credit`).

`credit` is the refund example with its money-moving tool declared idempotent (a provider
that deduplicates by the idempotency key): the same approval, but the tool need not be
scheduled durably before it runs, so a decision costs one transaction instead of two.
"""

from __future__ import annotations

from engine import App, RunContext, When
from events.json import Json, JsonObject

LIMIT = 500.0

app = App("bench-agents", directory={"alice": ["support-lead"]})


@app.tool(idempotent=True)
async def lookup_order(order_id: str) -> Json:
    return {"order_id": order_id, "customer": "c-42", "paid": 2400.0, "currency": "EUR"}


@app.tool(
    idempotent=True,
    policy=When(
        lambda args: float(args["amount"]) > LIMIT,  # type: ignore[arg-type]
        name="credit-limit",
        reason=f"credits over {LIMIT:.0f} need a person",
        amount_arg="amount",
        approvers=("role:support-lead",),
    ),
)
async def credit(order_id: str, amount: float, idempotency_key: str) -> Json:
    return {"credit_id": f"cr-{idempotency_key}", "order_id": order_id, "amount": amount}


@app.agent("credit", version="1")
async def credit_agent(ctx: RunContext, input: JsonObject) -> Json:
    order = await ctx.tool("lookup_order", {"order_id": input["order_id"]})
    if not order.ok:
        return {"status": "lookup failed"}
    result = await ctx.tool("credit", {"order_id": input["order_id"], "amount": input["amount"]})
    return {"status": result.status, "credit": result.value}
