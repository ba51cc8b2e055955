"""Payments: declarative, versioned policies in one place, multi-level and k-of-n approval,
confidence thresholds, deadlines and escalation. Used by the approval integration tests.

    countersign worker --app examples.payments:app
    countersign start payout --input '{"payments": [{"payee": "acme", "amount": 25000,
        "confidence": 0.97}]}' --by alice
    countersign decide RUN INTERRUPT approve --by bob     # treasury, 1 of 2
    countersign decide RUN INTERRUPT approve --by carol   # treasury, 2 of 2 ⇒ level 2
    countersign decide RUN INTERRUPT2 approve --by erin   # cfo ⇒ the payment runs

Rules (most severe wins; the hard limit is evaluated first and cannot be lowered):
- `pay` carries a confidence policy: ≥0.95 AUTO, ≥0.8 NOTIFY, ≥0.5 APPROVE (high risk),
  below ESCALATE to the CFO;
- a hard guard: any `pay*` over 10,000 is critical ⇒ two levels: 2 of the treasury team,
  then a CFO;
- run-level escalation: two rejections in a row, or a third low-confidence step, hands the
  next call to the CFO.
"""

from __future__ import annotations

from engine import App, Confidence, Escalation, Level, Limit, RunContext
from events.json import Json, JsonObject

DIRECTORY = {
    "bob": ["treasury"],
    "carol": ["treasury"],
    "dave": ["treasury"],
    "erin": ["cfo"],
}

app = App(
    "payments-example",
    directory=DIRECTORY,
    ladders={
        "high": (Level(("role:treasury",)),),
        "critical": (Level(("role:treasury",), quorum=2), Level(("role:cfo",))),
    },
    escalation=Escalation(rejections_in_a_row=2, low_confidence_times=3, to=("role:cfo",)),
)

PAID: list[JsonObject] = []


@app.tool(
    policy=Confidence(
        name="payment-confidence",
        version="2",
        auto=0.95,
        notify=0.8,
        approve=0.5,
        risk="high",
        escalate_to=("role:cfo",),
        deadline_s=4 * 3600.0,
        on_timeout="escalate",
    )
)
async def pay(payee: str, amount: float, idempotency_key: str) -> Json:
    """Moves money: not idempotent."""
    PAID.append({"payee": payee, "amount": amount, "key": idempotency_key})
    return {"paid": payee, "amount": amount, "ref": f"pay-{idempotency_key}"}


app.guard(
    "pay*",
    Limit("amount", 10_000, name="payment-limit", version="1", risk="critical", escalate_to=()),
    hard=True,
)


@app.agent("payout", version="1")
async def payout(ctx: RunContext, input: JsonObject) -> Json:
    """Pays every item at once (parallel approvals); reports each outcome."""
    items = input.get("payments", [])
    assert isinstance(items, list)
    calls = []
    for item in items:
        assert isinstance(item, dict)
        confidence = item.get("confidence")
        calls.append(
            ctx.tool(
                "pay",
                {"payee": item["payee"], "amount": item["amount"]},
                confidence=float(confidence) if isinstance(confidence, int | float) else None,
                reasoning=f"invoice from {item['payee']}",
            )
        )
    results = await ctx.all(*calls)
    return [
        {"status": r.status, "args": r.args, "by": r.decided_by, "reason": r.reason}
        for r in results
    ]


@app.agent("payout-serial", version="1")
async def payout_serial(ctx: RunContext, input: JsonObject) -> Json:
    """Pays one item after the other, so run-level escalation rules can see the history."""
    items = input.get("payments", [])
    assert isinstance(items, list)
    out: list[Json] = []
    for item in items:
        assert isinstance(item, dict)
        confidence = item.get("confidence")
        result = await ctx.tool(
            "pay",
            {"payee": item["payee"], "amount": item["amount"]},
            confidence=float(confidence) if isinstance(confidence, int | float) else None,
        )
        out.append({"status": result.status, "by": result.decided_by, "reason": result.reason})
    return out
