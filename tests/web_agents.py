"""Agents for the web inbox and notifier tests: a refund over a limit, a request that expires
in seconds, a question with an answer schema, and one that escalates."""

from __future__ import annotations

from engine import Always, App, RunContext, When
from events.json import Json, JsonObject

app = App(
    "web-tests",
    directory={"alice": ["support-lead"], "erin": ["support-lead"], "carol": ["finance"]},
)


@app.tool(
    policy=When(
        lambda args: float(args["amount"]) > 500,  # type: ignore[arg-type]
        name="refund-limit",
        reason="refunds over 500 need a person",
        amount_arg="amount",
        approvers=("role:support-lead",),
    )
)
async def refund(order_id: str, amount: float, idempotency_key: str) -> Json:
    return {"refund_id": f"rf-{idempotency_key}", "order_id": order_id, "amount": amount}


@app.tool(
    policy=Always(
        name="quick", risk="medium", approvers=("role:support-lead",), deadline_s=3.0,
        on_timeout="escalate", escalate_to=("carol",),
    )
)  # fmt: skip
async def wire(account: str, amount: float, idempotency_key: str) -> Json:
    return {"wired": amount, "to": account}


@app.tool(policy=Always(name="short", risk="medium", approvers=("role:support-lead",),
                        deadline_s=2.0))  # fmt: skip
async def close_account(account: str, idempotency_key: str) -> Json:
    return {"closed": account}


@app.agent("refund", version="1")
async def refund_agent(ctx: RunContext, input: JsonObject) -> Json:
    result = await ctx.tool(
        "refund",
        {"order_id": input["order_id"], "amount": input["amount"]},
        reasoning=f"the customer asked for {input['amount']}",
        impact=f"{input['amount']} leaves the company account",
    )
    return {"status": result.status, "args": result.args, "by": result.decided_by}


@app.agent("closing", version="1")
async def closing_agent(ctx: RunContext, input: JsonObject) -> Json:
    result = await ctx.tool("close_account", {"account": input["account"]})
    return {"status": result.status, "reason": result.reason}


@app.agent("wiring", version="1")
async def wiring_agent(ctx: RunContext, input: JsonObject) -> Json:
    result = await ctx.tool("wire", {"account": input["account"], "amount": input["amount"]})
    return {"status": result.status}


@app.agent("question", version="1")
async def question_agent(ctx: RunContext, input: JsonObject) -> Json:
    decision = await ctx.interrupt(
        "Which carrier should ship order " + str(input["order_id"]) + "?",
        answer_schema={
            "type": "object",
            "properties": {"carrier": {"enum": ["dhl", "ups"]}, "express": {"type": "boolean"}},
            "required": ["carrier"],
        },
    )
    return {"answer": decision.response}
