"""Email with edit: the agent drafts an email; a reviewer approves, rejects, or edits it first.

    countersign worker --app examples.email_review:app
    countersign start email --input '{"customer": "c-42", "to": "ann@example.com"}' --by alice
    countersign decide RUN INTERRUPT edit --by bob \\
        --args '{"to": "ann@example.com", "subject": "Your refund", "body": "Dear Ann, ..."}'

An edit is checked against `send_email`'s signature before it is accepted (a missing subject
or an unknown field is refused with the reason). Changing the recipient is policy-relevant
(`args=("to",)`): it goes back for approval by someone other than the editor; a recipient
outside the company also raises the risk, so a support lead must approve it.
"""

from __future__ import annotations

from engine import Always, App, RunContext, When
from events.json import Json, JsonObject

OUR_DOMAIN = "example.com"

app = App(
    "email-example",
    directory={"bob": ["support"], "carol": ["support"], "lena": ["support", "support-lead"]},
)

SENT: list[JsonObject] = []


@app.tool(
    policy=Always(
        name="outbound-email",
        version="1",
        risk="medium",
        reason="every email to a customer is read by a person first",
        approvers=("role:support",),
        args=("to",),
    )
)
async def send_email(to: str, subject: str, body: str, idempotency_key: str) -> Json:
    """Sends the email (here: records it). Not idempotent."""
    SENT.append({"to": to, "subject": subject, "body": body, "key": idempotency_key})
    return {"message_id": f"msg-{idempotency_key}", "to": to}


# The central guard list: mail leaving the company is high risk and needs a lead.
app.guard(
    "send_*",
    When(
        lambda args: not str(args.get("to", "")).endswith(f"@{OUR_DOMAIN}"),
        name="external-recipient",
        version="1",
        risk="high",
        reason="the email leaves the company",
        approvers=("role:support-lead",),
    ),
)


@app.agent("email", version="1")
async def email_agent(ctx: RunContext, input: JsonObject) -> Json:
    customer = str(input.get("customer", "customer"))
    draft: JsonObject = {
        "to": input["to"],
        "subject": f"About your request, {customer}",
        "body": f"Hello {customer},\n\nyour refund is on its way.\n\nRegards",
    }
    sent = await ctx.tool(
        "send_email",
        draft,
        reasoning="the customer asked where their refund is",
        impact=f"an email goes to {draft['to']}",
    )
    if not sent.ok:
        return {"status": "not sent", "reason": sent.reason, "by": sent.decided_by}
    return {"status": "sent", "as_sent": sent.args, "approved_by": sent.decided_by}
