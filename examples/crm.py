"""A voucher agent whose tools handle personal data, marked so that it can be erased.

    countersign worker --app examples.crm:app
    countersign start voucher --input '{"customer_id": "cust-7", "amount": 20}'
    countersign erase cust-7

The customer's name and e-mail (the lookup's result, the voucher's arguments) are sealed in
the log with cust-7's key; `countersign erase cust-7` destroys the key (docs/erasure.md).
"""

from __future__ import annotations

from typing import Annotated, TypedDict

from engine import DATA_SUBJECT, PERSONAL, Always, App, RunContext
from events.json import Json, JsonObject

app = App("crm-example", directory={"alice": ["marketing"]})

SENT: list[str] = []
"""Where vouchers went (a test reads it)."""


class Customer(TypedDict):
    name: Annotated[str, PERSONAL]
    email: Annotated[str, PERSONAL]
    tier: str


@app.tool(idempotent=True)
async def lookup_customer(customer_id: Annotated[str, DATA_SUBJECT]) -> Customer:
    """Read-only: the customer's record."""
    number = "".join(c for c in customer_id if c.isdigit()) or "0"
    return {"name": f"Ada Lovelace {number}", "email": f"ada{number}@example.org", "tier": "gold"}


@app.tool(policy=Always(risk="medium", approvers=("role:marketing",)))
async def send_voucher(
    customer_id: Annotated[str, DATA_SUBJECT],
    email: Annotated[str, PERSONAL],
    greeting: Annotated[str, PERSONAL],
    amount: float,
) -> Json:
    """Sends a voucher by e-mail (a person approves each)."""
    if not isinstance(email, str) or "@" not in email:
        raise ValueError("not an e-mail address")
    SENT.append(email)
    return {"sent": True, "amount": amount}


@app.agent("voucher", description="Look a customer up and send them a voucher")
async def voucher(ctx: RunContext, input: JsonObject) -> Json:
    customer_id = str(input["customer_id"])
    customer = (await ctx.call(lookup_customer, customer_id=customer_id)).unwrap()
    amount = input.get("amount", 20)
    sent = await ctx.call(
        send_voucher,
        customer_id=customer_id,
        email=customer["email"],
        greeting=f"Dear {customer['name']}",
        amount=float(amount) if isinstance(amount, int | float) else 20.0,
    ).explained(f"a {customer['tier']} customer")
    return {"voucher": sent.status, "reason": sent.reason}
