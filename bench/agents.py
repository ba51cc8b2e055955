"""Agents only the benchmarks run (`bench/skeleton.py --agent credit`, `bench/peers/`).

`credit` is the refund example with its money-moving tool declared idempotent (a provider
that deduplicates by the idempotency key): the same approval, but the tool need not be
scheduled durably before it runs, so a decision costs one transaction instead of two.
`peer-refund` is the refund example with `steps` lookups before its gated, non-idempotent
refund: the workload of the peer comparison (docs/peers.md).
"""

from __future__ import annotations

from engine import App, RunContext, When
from events.json import Json, JsonObject

LIMIT = 500.0

app = App("bench-agents", directory={"alice": ["support-lead"]})


def over_limit(what: str) -> When:
    """A support lead approves a `what` over the limit (examples/refund.py's policy)."""
    return When(
        lambda args: float(args["amount"]) > LIMIT,  # type: ignore[arg-type]
        name=f"{what}-limit",
        reason=f"{what}s over {LIMIT:.0f} need a person",
        amount_arg="amount",
        approvers=("role:support-lead",),
    )


@app.tool(idempotent=True)
async def lookup_order(order_id: str) -> Json:
    return {"order_id": order_id, "customer": "c-42", "paid": 2400.0, "currency": "EUR"}


@app.tool(
    idempotent=True,
    policy=over_limit("credit"),
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


# -- bench/peers: the workload every side of the peer comparison runs ---------------------------

MAX_STEPS = 10_000  # the input is ours, but a typo should not grow a run without bound


@app.tool(
    policy=over_limit("refund"),
)
async def refund(order_id: str, amount: float, idempotency_key: str) -> Json:
    """Moves money: not idempotent, as in examples/refund.py."""
    return {"refund_id": f"rf-{idempotency_key}", "order_id": order_id, "amount": amount}


@app.agent("peer-refund", version="1")
async def peer_refund(ctx: RunContext, input: JsonObject) -> Json:
    """examples/refund.py's agent with `steps` lookups (default 1) before the gated refund."""
    steps = min(int(input.get("steps", 1)), MAX_STEPS)  # type: ignore[arg-type]
    for _ in range(steps):
        order = await ctx.tool("lookup_order", {"order_id": input["order_id"]})
        if not order.ok:
            return {"status": "lookup failed"}
    result = await ctx.tool("refund", {"order_id": input["order_id"], "amount": input["amount"]})
    return {"status": result.status, "refund": result.value, "approved_by": result.decided_by}
