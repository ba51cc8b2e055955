"""The refund agent from the README: look the order up, refund it, ask a person above a limit.

    countersign worker --app examples.refund:app
    countersign start refund --input '{"order_id": "A-17", "amount": 2400}'

The tools record every effect in `EFFECTS` (and, when COUNTERSIGN_EFFECTS_FILE is set, append
a line per effect to that file) so that tests can count how often each really ran.
"""

from __future__ import annotations

import json
import os

from engine import App, RunContext, When
from events.json import Json, JsonObject

APPROVAL_LIMIT = 500.0

app = App("refund-example", directory={"alice": ["support-lead"]})  # who holds which role

EFFECTS: list[tuple[str, str]] = []


def _record_effect(tool: str, idempotency_key: str) -> None:
    EFFECTS.append((tool, idempotency_key))
    path = os.environ.get("COUNTERSIGN_EFFECTS_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"tool": tool, "key": idempotency_key, "pid": os.getpid()}) + "\n")


@app.tool(idempotent=True)
async def lookup_order(order_id: str, idempotency_key: str) -> Json:
    """Read-only: safe to run twice."""
    _record_effect("lookup_order", idempotency_key)
    return {"order_id": order_id, "customer": "c-42", "paid": 2400.0, "currency": "EUR"}


@app.tool(
    policy=When(
        lambda args: float(args["amount"]) > APPROVAL_LIMIT,  # type: ignore[arg-type]
        name="refund-limit",
        reason=f"refunds over {APPROVAL_LIMIT:.0f} need a person",
        amount_arg="amount",
        approvers=("role:support-lead",),
    ),
)
async def refund(order_id: str, amount: float, idempotency_key: str) -> Json:
    """Moves money: not idempotent, so never re-run silently after a crash."""
    _record_effect("refund", idempotency_key)
    return {"refund_id": f"rf-{idempotency_key}", "order_id": order_id, "amount": amount}


@app.agent(
    "refund",
    version="1",
    input_schema={
        "type": "object",
        "properties": {"order_id": {"type": "string"}, "amount": {"type": ["number", "integer"]}},
        "required": ["order_id", "amount"],
    },
)
async def refund_agent(ctx: RunContext, input: JsonObject) -> Json:
    order = await ctx.tool("lookup_order", {"order_id": input["order_id"]})
    if not order.ok:
        return {"status": "lookup failed", "reason": order.reason}
    amount = input.get("amount", 0)
    result = await ctx.tool(
        "refund",
        {"order_id": input["order_id"], "amount": amount},
        reasoning=f"customer asked for a refund of {amount}; order {input['order_id']} was paid",
        impact=f"{amount} leaves the company account",
    )
    if result.status == "rejected":
        return {"status": "refund rejected", "reason": result.reason, "by": result.decided_by}
    return {"status": "refunded", "refund": result.value, "approved_by": result.decided_by}
