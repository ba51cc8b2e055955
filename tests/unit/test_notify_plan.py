"""Which notifications a notice calls for (routes by urgency, reminders, escalations, closes),
what they say, and routing files that are refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from consumers.notify_plan import Routing, RoutingError, email_text, plan, webhook_body
from events.approval import ApprovalRequest
from events.notices import ApprovalRequested, DecisionOutcome

RAISED = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
ROUTING = Routing.parse({
    "channels": {"ops": {"type": "webhook", "url": "https://hooks.example/x"},
                 "leads": {"type": "email", "to": ["leads@example.com"]}},
    "routes": [{"risk": ["high", "critical"], "channels": ["ops", "leads"]},
               {"policy": "refund-limit", "channels": ["leads"]},
               {"channels": ["ops"]}],
    "remind_before_s": [600, 7200, 600],
})  # fmt: skip


def requested(risk: str = "high", policy: str = "x@1", escalation: int = 0,
              deadline_s: float | None = 3600) -> ApprovalRequested:  # fmt: skip
    deadline = None if deadline_s is None else int((RAISED.timestamp() + deadline_s) * 1e6)
    return ApprovalRequested(
        run_id="r-1", interrupt_id=f"i-{escalation}", agent="refund", agent_version="1",
        requested_by="bob", requested_at_us=int(RAISED.timestamp() * 1e6),
        request=ApprovalRequest(kind="tool", title="refund(A-1, 900)", tool="refund",
                                risk=risk, policy=policy, deadline_us=deadline, amount=900.0,  # type: ignore[arg-type]
                                escalation=escalation, reasoning="asked"),
    )  # fmt: skip


def test_urgent_requests_go_to_every_channel_of_their_route_with_reminders_before() -> None:
    planned = plan(requested(), ROUTING, base_url="https://inbox.example/")
    got = {(d.channel, d.kind): d.due_at for d in planned.deliveries}
    assert got == {
        ("ops", "request"): RAISED, ("leads", "request"): RAISED,
        ("ops", "reminder-600"): RAISED + timedelta(seconds=3000),
        ("leads", "reminder-600"): RAISED + timedelta(seconds=3000),
    }  # the 2-hour reminder would come before the request was raised: none  # fmt: skip
    ids = [d.id for d in planned.deliveries]
    assert len(ids) == len(set(ids))
    assert planned.deliveries[0].message["link"] == "https://inbox.example/runs/r-1/requests/i-0"


def test_routes_by_policy_then_the_catch_all_and_escalations_say_so() -> None:
    by_policy = plan(requested("low", "refund-limit@3", deadline_s=None), ROUTING, base_url="u")
    assert [(d.channel, d.kind) for d in by_policy.deliveries] == [("leads", "request")]
    escalated = plan(requested("medium", escalation=1, deadline_s=None), ROUTING, base_url="u")
    assert [(d.channel, d.kind) for d in escalated.deliveries] == [("ops", "escalation")]
    assert escalated.deliveries[0].message["headline"].startswith("Escalated")  # type: ignore[union-attr]


def test_an_accepted_decision_closes_a_refused_one_does_not() -> None:
    def outcome(status: str) -> DecisionOutcome:
        return DecisionOutcome(run_id="r", interrupt_id="i", decision_id="d",
                               accepted=status != "refused", kind="approve", decided_by="a",
                               reason="", decided_at_us=0, status=status)  # fmt: skip

    assert plan(outcome("accepted"), ROUTING, base_url="u").closes == ("i",)
    assert plan(outcome("refused"), ROUTING, base_url="u").closes == ()
    assert plan(outcome("counted"), ROUTING, base_url="u").closes == ()


def test_the_webhook_and_the_mail_carry_the_link_and_the_facts() -> None:
    message = plan(requested(), ROUTING, base_url="https://in.example").deliveries[0].message
    body = webhook_body(message)
    assert "https://in.example/runs/r-1/requests/i-0" in str(body["text"])
    fields = {f["title"]: f["value"] for f in body["attachments"][0]["fields"]}  # type: ignore[index]
    assert fields["Risk"] == "high" and fields["Asked by"] == "bob"  # noqa: PT018
    subject, text = email_text(message)
    assert subject == "Approval needed: refund(A-1, 900)"
    assert "Open the card to decide: https://in.example/runs/r-1/requests/i-0" in text


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"channels": {"x": {"type": "sms"}}},
        {"channels": {"x": {"type": "webhook", "url": "ftp://h"}}},
        {"channels": {"x": {"type": "email", "to": ["nobody"]}}},
        {"channels": {}, "routes": [{"channels": ["missing"]}]},
        {"routes": [{"channels": []}]},
        {"remind_before_s": [-1]},
        {"remind_before_s": "often"},
    ],
)
def test_unusable_routing_files_are_refused(data: object) -> None:
    with pytest.raises(RoutingError):
        Routing.parse(data)  # type: ignore[arg-type]
