"""Changed versions of the refund example, for the replay tooling's tests (`--app
tests.replay_variants:ARG`): what an agent author's next commit might do."""

from __future__ import annotations

from engine import App, RunContext
from events.json import Json, JsonObject
from examples import refund as example


def _app(name: str, version: str = "1") -> App:
    """The example's tools and directory, under a new App (the agent is added by the caller)."""
    app = App(name, directory={"alice": ["support-lead"]})
    for tool in example.app.tools:
        app.tool(tool.name, policy=tool.policy, idempotent=tool.idempotent)(tool.fn)
    return app


arguments_changed = _app("refund-arguments-changed")


@arguments_changed.agent("refund", version="1")
async def refund_rounding_down(ctx: RunContext, input: JsonObject) -> Json:
    order = await ctx.tool("lookup_order", {"order_id": input["order_id"]})
    if not order.ok:
        return {"status": "lookup failed", "reason": order.reason}
    amount = round(float(input.get("amount", 0)) * 0.9, 2)  # type: ignore[arg-type]
    result = await ctx.tool("refund", {"order_id": input["order_id"], "amount": amount})
    return {"status": "refunded", "refund": result.value, "approved_by": result.decided_by}


version_two = _app("refund-v2")
version_two.agent("refund", version="2")(example.refund_agent)
