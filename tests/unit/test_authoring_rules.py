"""The smaller items of issue 15: the verdict names the rule that decided; a currency-aware
limit is one policy; a re-approval's title shows what the edit changed first; a question's
default answers it at its deadline (and only a question has one)."""

from __future__ import annotations

import math

import pytest

from engine import Always, App, ConfigurationError, Limit, RunContext, When
from engine.agent.guards import RunSignals, evaluate_call
from engine.agent.policies import Proposal
from engine.core.gating import short_args
from events.json import Json, JsonObject
from events.run_events import GateEvaluated, InterruptExpired, InterruptRaised
from projections.describe import summarize
from tests.unit.approvals_sim import Sim

RATES = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17}


def _eur(amount: float, args: JsonObject) -> float:
    return amount * RATES[str(args["currency"])]


EUR_LIMIT = Limit("amount", 1000, convert=_eur, unit="EUR", name="eur-limit")


@pytest.mark.parametrize(
    ("args", "action", "rule", "amount"),
    [
        ({"amount": 1000, "currency": "USD"}, "auto", "amount<=1000", None),
        ({"amount": 1000, "currency": "GBP"}, "approve", "amount>1000", 1170.0),
        ({"amount": 1000, "currency": "XXX"}, "approve", "amount?", None),
        ({"amount": "lots", "currency": "EUR"}, "approve", "amount?", None),
    ],
    ids=["usd-under", "gbp-over", "unknown-currency", "not-a-number"],
)
def test_a_currency_aware_limit_is_one_policy_and_fails_closed(
    args: JsonObject, action: str, rule: str, amount: float | None
) -> None:
    gate = EUR_LIMIT.evaluate(Proposal(tool="reimburse", args=args))

    assert (gate.action, gate.rule) == (action, rule)
    assert gate.amount is None or math.isclose(gate.amount, amount or 0.0)
    if action == "approve" and amount is not None:
        assert gate.reason == "amount of 1170 EUR is over the limit of 1000 EUR"
    if args["currency"] == "XXX":
        assert gate.reason.startswith("amount cannot be converted (KeyError: 'XXX')")


def test_the_rule_that_matched_names_the_verdict_over_one_that_did_not_apply() -> None:
    # Two hard guards both let a small invoice through: the limit it is under decided it,
    # not the escalation rule that did not match (issue 15's "gated auto by invoice-escalation").
    escalation = When(lambda a: float(str(a["amount"])) > 5000, name="invoice-escalation")
    app = App("invoices")
    app.guard("pay_*", escalation, hard=True)
    app.guard("pay_*", Limit("amount", 1000, name="invoice-limit"), hard=True)

    gate = evaluate_call(
        Proposal(tool="pay_invoice", args={"amount": 800}),
        own=None,
        guards=app.guards,
        escalation=None,
        signals=RunSignals(),
    )

    assert gate is not None
    assert (gate.action, gate.policy, gate.rule) == ("auto", "invoice-limit@1", "amount<=1000")


def test_the_timeline_names_the_rule() -> None:
    evaluated = GateEvaluated(
        call=1,
        tool="pay_invoice",
        args_digest="d",
        action="auto",
        policy="invoice-limit@1",
        rule="amount<=1000",
        risk="low",
    )

    assert summarize(evaluated) == (
        "call 1: pay_invoice gated auto by invoice-limit@1 rule amount<=1000 (risk low)"
    )


def test_a_title_after_an_edit_shows_what_changed_first() -> None:
    before: JsonObject = {"to": "ann@example.com", "subject": "Hello", "body": "x" * 80}
    after: JsonObject = {"body": "x" * 80, "subject": "Hello", "to": "eve@evil.example"}

    assert short_args(after).startswith('body="xxx')  # sorted: the new recipient is cut off
    assert short_args(after, first=before).startswith('to="eve@evil.example", subject="Hello"')


def test_a_reapproval_title_names_the_changed_recipient() -> None:
    app = App("mail", directory={"bob": ["support"], "lena": ["support"]})

    @app.tool(policy=Always(approvers=("role:support",), args=("to",)))
    async def send(to: str, subject: str, body: str) -> Json:
        return None

    @app.agent("mailer")
    async def mailer(ctx: RunContext, input: JsonObject) -> Json:
        args: JsonObject = {"to": "ann@example.com", "subject": "Hi", "body": "y" * 80}
        return (await ctx.tool("send", args)).status

    sim = Sim(app, "mailer", {})
    edited: JsonObject = {"to": "eve@example.com", "subject": "Hi", "body": "y" * 80}
    sim.decide(sim.only_open().interrupt_id, "edit", "bob", edited_args=edited)

    again = sim.only_open()
    assert again.request.title.startswith('send(to="eve@example.com", subject="Hi"')


# -- a question's default answer ---------------------------------------------------------------

questions = App("questions")


@questions.agent("shipper")
async def shipper(ctx: RunContext, input: JsonObject) -> Json:
    answer = await ctx.interrupt(
        "How should order A-17 ship?",
        answer_schema={"type": "string", "enum": ["standard", "express"]},
        default="standard",
        deadline_s=600,
    )
    return {"method": answer.response, "expired": answer.expired, "by": answer.decided_by}


def test_a_question_with_a_default_is_answered_by_it_at_its_deadline() -> None:
    sim = Sim(questions, "shipper", {})
    [raised] = sim.of_type(InterruptRaised)
    assert raised.request.on_timeout == "respond"
    assert raised.request.answer_schema == {
        "type": "string",
        "enum": ["standard", "express"],
        "default": "standard",
    }

    sim.tick(601)

    [expired] = sim.of_type(InterruptExpired)
    assert expired.action == "respond"
    assert sim.output == {"method": "standard", "expired": True, "by": "system:timeout"}
    assert sim.replayed().advance().events == [sim.events[-1]]  # replay answers the same


def test_an_answer_before_the_deadline_wins_over_the_default() -> None:
    sim = Sim(questions, "shipper", {}, requested_by="alice")

    sim.decide(sim.only_open().interrupt_id, "respond", "alice", response="express")

    assert sim.output == {"method": "express", "expired": False, "by": "alice"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"default": "drone", "answer_schema": {"enum": ["standard"]}}, "must be one of"),
        ({"default": "x", "allowed": ("approve", "reject")}, "needs 'respond'"),
        ({"on_timeout": "respond"}, "needs a default answer"),
    ],
    ids=["outside-schema", "no-respond", "respond-without-default"],
)
def test_a_default_answer_must_fit_the_question(kwargs: dict[str, object], message: str) -> None:
    app = App("bad-default")

    @app.agent("asker")
    async def asker(ctx: RunContext, input: JsonObject) -> Json:
        await ctx.interrupt("Which?", **kwargs)  # type: ignore[arg-type]
        return None

    sim = Sim(app, "asker", {})

    assert message in sim.events[-1].actual  # type: ignore[union-attr]


def test_a_tool_gate_cannot_answer_with_a_default() -> None:
    with pytest.raises(ConfigurationError, match="a tool's gate has no default"):
        Always(on_timeout="respond")
