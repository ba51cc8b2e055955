"""Question agent: it asks dispatch how to ship an order, and ships the standard way when
nobody answers in time (the default answer, which the inbox shows on the request).

    countersign dev --app examples.shipping:app
    countersign start ship --by ann --input '{"order_id": "A-17", "weight_kg": 12.5}'
    countersign decide RUN_ID respond --by dan --response 'express'    # plain text

Anyone in dispatch may answer, including whoever started the run (answering a question
lets no tool run by itself, so separation of duties does not apply).
"""

from __future__ import annotations

from typing import TypedDict

from engine import App, RunContext
from events.json import Json

METHODS: list[Json] = ["standard", "express", "freight"]


class Order(TypedDict):
    order_id: str
    weight_kg: float


class Booking(TypedDict):
    order_id: str
    method: str
    booking_id: str


app = App("shipping-example", directory={"dan": ["dispatch"], "ann": ["dispatch"]})

BOOKED: list[Booking] = []


@app.tool(idempotent=True)
async def book_shipment(order_id: str, method: str) -> Booking:
    booking: Booking = {"order_id": order_id, "method": method, "booking_id": f"bk-{order_id}"}
    BOOKED.append(booking)
    return booking


@app.agent("ship", version="1")
async def ship_agent(ctx: RunContext, order: Order) -> Json:
    answer = await ctx.interrupt(
        f"How should order {order['order_id']} ship?",
        context={"order": order["order_id"], "weight_kg": order["weight_kg"]},
        approvers=("role:dispatch",),
        answer_schema={"type": "string", "enum": METHODS},
        default="standard",
        deadline_s=3600,
    )
    method = str(answer.response)
    booking = (await ctx.call(book_shipment, order["order_id"], method)).unwrap()
    return {"method": method, "booking": booking["booking_id"], "defaulted": answer.expired}
