"""Expense agent: small expenses are paid on their own, larger ones need a manager, large ones
a manager and then finance; a rejection's reason goes back to the agent, which tells the
employee. The limits are in euros whatever the currency (one `Limit` with a conversion).

    countersign dev --app examples.expenses:app
    countersign start expense --by ann \\
        --input '{"employee": "ann", "amount": 1800, "currency": "USD", "purpose": "conference"}'
    countersign inbox show INTERRUPT_ID
    countersign decide RUN_ID approve --by maria        # level 1: a manager
    countersign decide RUN_ID approve --by frank        # level 2: finance

Typed calls (`ctx.call(tool, ...)`) are checked by mypy against the tools' own signatures.
"""

from __future__ import annotations

from typing import TypedDict

from engine import App, Level, Limit, RunContext
from events.json import Json, JsonObject

RATES = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17, "CHF": 1.05}
"""Euros per unit of each currency (a real deployment would read them from a tool)."""


class Expense(TypedDict):
    employee: str
    amount: float
    currency: str
    purpose: str


class Receipt(TypedDict):
    receipt_id: str
    valid: bool


class Payout(TypedDict):
    payout_id: str
    amount: float
    currency: str


app = App(
    "expenses-example",
    directory={"maria": ["manager"], "omar": ["manager"], "frank": ["finance"]},
)


def in_euros(amount: float, args: JsonObject) -> float:
    """The expense in euros: an unknown currency raises, and the limit then asks a person."""
    return amount * RATES[str(args["currency"])]


app.guard(
    "reimburse",
    Limit(
        "amount",
        100,
        convert=in_euros,
        unit="EUR",
        name="expense-manager",
        risk="medium",
        approvers=("role:manager",),
    ),
    hard=True,
)
app.guard(
    "reimburse",
    Limit(
        "amount",
        1000,
        convert=in_euros,
        unit="EUR",
        name="expense-finance",
        risk="high",
        levels=(Level(("role:manager",)), Level(("role:finance",))),
    ),
    hard=True,
)

PAID: list[Payout] = []
TOLD: list[tuple[str, str]] = []


@app.tool(idempotent=True)
async def check_receipt(employee: str, amount: float, currency: str) -> Receipt:
    """Looks the receipt up (read-only)."""
    return {"receipt_id": f"rcpt-{employee}-{amount:g}{currency}", "valid": amount > 0}


@app.tool()
async def reimburse(
    employee: str, amount: float, currency: str, purpose: str, idempotency_key: str = ""
) -> Payout:
    """Pays the employee back. Not idempotent: never re-run silently after a crash."""
    payout: Payout = {"payout_id": f"po-{idempotency_key}", "amount": amount, "currency": currency}
    PAID.append(payout)
    return payout


@app.tool(idempotent=True)
async def tell_employee(employee: str, message: str) -> str:
    TOLD.append((employee, message))
    return f"told {employee}"


@app.agent("expense", version="1")
async def expense_agent(ctx: RunContext, expense: Expense) -> Json:
    receipt = await ctx.call(
        check_receipt, expense["employee"], expense["amount"], expense["currency"]
    )
    if not receipt.unwrap()["valid"]:
        return {"status": "invalid receipt"}
    paid = await ctx.call(
        reimburse,
        employee=expense["employee"],
        amount=expense["amount"],
        currency=expense["currency"],
        purpose=expense["purpose"],
    ).explained(
        f"{expense['employee']} paid for {expense['purpose']} and has a valid receipt",
        impact=f"{expense['amount']:g} {expense['currency']} leaves the company account",
    )
    if paid.status == "rejected":  # the reviewer's reason comes back to the agent
        message = f"Your expense for {expense['purpose']} was not reimbursed: {paid.reason}"
        await ctx.call(tell_employee, expense["employee"], message)
        return {"status": "rejected", "reason": paid.reason, "by": paid.decided_by}
    payout = paid.unwrap()
    return {"status": "reimbursed", "payout": payout["payout_id"], "approved_by": paid.decided_by}
