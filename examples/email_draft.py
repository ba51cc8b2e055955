"""Email agent: it drafts a reply, a person reads it and may change any part before it goes.

    countersign dev --app examples.email_draft:app
    countersign start reply --by ann --input '{"customer": "Ann", "to": "ann@example.com"}'
    countersign inbox show INTERRUPT_ID                   # the whole draft, not cut short
    countersign decide RUN_ID edit --by bob --set body=@draft.txt    # only the body changes

An edit may change one argument (`--set`): it is merged over the draft and checked against
`send_email`'s signature. Changing the recipient goes back for approval by someone else.
"""

from __future__ import annotations

from typing import TypedDict

from engine import Always, App, RunContext
from events.json import Json


class Reply(TypedDict):
    customer: str
    to: str


class Sent(TypedDict):
    message_id: str
    to: str
    body: str


app = App("email-draft-example", directory={"bob": ["support"], "lena": ["support"]})

OUTBOX: list[Sent] = []


@app.tool(
    policy=Always(
        name="customer-email",
        risk="medium",
        reason="a person reads every email before it reaches a customer",
        approvers=("role:support",),
        args=("to",),
    )
)
async def send_email(to: str, subject: str, body: str, idempotency_key: str = "") -> Sent:
    """Sends the email (here: keeps it in OUTBOX). Not idempotent."""
    sent: Sent = {"message_id": f"msg-{idempotency_key}", "to": to, "body": body}
    OUTBOX.append(sent)
    return sent


@app.agent("reply", version="1")
async def reply_agent(ctx: RunContext, reply: Reply) -> Json:
    body = (
        f"Dear {reply['customer']},\n\n"
        "thank you for your patience: your refund was approved today and should reach "
        "your account within five working days.\n\nKind regards,\nCustomer care"
    )
    sent = await ctx.call(send_email, to=reply["to"], subject="Your refund", body=body).explained(
        "the customer asked where their refund is", impact=f"an email to {reply['to']}"
    )
    if not sent.ok:
        return {"status": "not sent", "reason": sent.reason}
    return {"status": "sent", "body": sent.unwrap()["body"], "approved_by": sent.decided_by}
