"""Decisions end to end in the pure core: kinds, edits against the argument schema, typed
answers, digests, re-approval after an edit, parallel interrupts, idempotency and conflicts,
decisions that arrive early, and who may decide (roles, separation of duties, k-of-n, levels)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.agent.app import App
from engine.agent.authorization import Level
from engine.agent.context import RunContext, ToolResult
from engine.agent.policies import Always, When
from engine.core.executor import interrupt_id_for
from events.json import Json, JsonObject
from events.run_events import (
    DecisionAccepted,
    DecisionHeld,
    DecisionRejected,
    GateEvaluated,
    InterruptRaised,
    ToolCallScheduled,
    VoteRecorded,
)
from examples import email_review, payments
from tests.unit.approvals_sim import Sim

APP = App(
    "decisions-test",
    directory={"bob": ["ops"], "carol": ["ops"], "dan": ["ops"], "vic": ["vp"], "cleo": ["cfo"]},
    ladders={
        "high": (Level(("role:ops",)), Level(("role:vp",))),
        "critical": (Level(("role:ops",), quorum=2), Level(("role:vp",)), Level(("role:cfo",))),
    },
)


@APP.tool(
    policy=When(
        lambda a: float(a["amount"]) > 100,  # type: ignore[arg-type]
        name="transfer-limit",
        amount_arg="amount",
        risk="medium",
        approvers=("role:ops",),
        allowed=("approve", "edit", "reject"),
    )
)
async def transfer(account: str, amount: float, memo: str = "") -> Json:
    return {"account": account, "amount": amount, "memo": memo}


APP.guard("transfer", When(lambda a: float(a["amount"]) > 10_000, name="huge", risk="critical"))  # type: ignore[arg-type]
APP.guard("transfer", When(lambda a: float(a["amount"]) > 1_000, name="big", risk="high"))  # type: ignore[arg-type]


async def _one(ctx: RunContext, input: JsonObject) -> Json:
    result = await ctx.tool("transfer", {"account": "acc-1", "amount": input["amount"]})
    return _shown(result)


def _shown(result: ToolResult) -> Json:
    return {
        "status": result.status,
        "args": result.args,
        "reason": result.reason,
        "by": result.decided_by,
    }


async def _three(ctx: RunContext, input: JsonObject) -> Json:
    results = await ctx.all(
        *(ctx.tool("transfer", {"account": f"acc-{i}", "amount": 500}) for i in range(3))
    )
    return [_shown(r) for r in results]


async def _two_in_a_row(ctx: RunContext, input: JsonObject) -> Json:
    first = await ctx.tool("transfer", {"account": "acc-1", "amount": 500})
    second = await ctx.tool("transfer", {"account": "acc-2", "amount": 600})
    return [_shown(first), _shown(second)]


async def _question(ctx: RunContext, input: JsonObject) -> Json:
    answer = await ctx.interrupt(
        "How many?",
        answer_schema={
            "type": "object",
            "properties": {"n": {"type": "integer", "minimum": 1}},
            "required": ["n"],
        },
    )
    return {"kind": answer.kind, "response": answer.response, "by": answer.decided_by}


APP.agent("one")(_one)
APP.agent("three")(_three)
APP.agent("two-in-a-row")(_two_in_a_row)
APP.agent("question")(_question)


def one(amount: float = 500) -> Sim:
    return Sim(APP, "one", {"amount": amount})


# -- kinds, digest ---------------------------------------------------------------------------------


def test_a_kind_the_request_does_not_allow_is_refused_with_the_reason() -> None:
    sim = one()
    raised = sim.only_open()

    verdict = sim.decide(raised.interrupt_id, "respond", "bob", response=1)

    assert not verdict.accepted
    assert verdict.reason == "'respond' is not allowed here; allowed: approve, edit, reject"
    assert isinstance(verdict.event, DecisionRejected)
    assert sim.only_open() == raised


def test_an_unknown_kind_is_refused() -> None:
    sim = one()

    verdict = sim.decide(sim.only_open().interrupt_id, "maybe", "bob")

    assert verdict.reason.startswith("unknown decision kind 'maybe'")


def test_a_decision_naming_another_digest_is_refused_and_the_right_one_accepted() -> None:
    sim = one()
    raised = sim.only_open()

    wrong = sim.decide(raised.interrupt_id, "approve", "bob", digest="0" * 64)
    right = sim.decide(raised.interrupt_id, "approve", "bob", digest=raised.request.digest)

    assert not wrong.accepted
    assert "digest does not match" in wrong.reason
    assert right.accepted


def test_the_digest_covers_tool_arguments_agent_version_and_interrupt() -> None:
    a, b = one(500).only_open().request, one(501).only_open().request

    assert a.digest != b.digest
    assert one(500).only_open().request.digest == a.digest


def test_reject_reason_reaches_the_agent_as_the_tool_result_and_the_tool_never_runs() -> None:
    sim = one()

    sim.decide(sim.only_open().interrupt_id, "reject", "bob", reason="wrong account, use acc-2")

    assert sim.output == {
        "status": "rejected",
        "args": {"account": "acc-1", "amount": 500},
        "reason": "wrong account, use acc-2",
        "by": "bob",
    }
    assert not sim.of_type(ToolCallScheduled)


# -- edits -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edited", "why"),
    [
        ({"account": "acc-1"}, "amount is required"),
        ({"account": "acc-1", "amount": "lots"}, "amount must be number or integer, not string"),
        ({"account": 7, "amount": 5}, "account must be string, not integer"),
        ({"account": "acc-1", "amount": 5, "bcc": "me"}, "bcc is not an accepted argument"),
        ({"account": "acc-1", "amount": True}, "amount must be number or integer, not boolean"),
    ],
)
def test_an_edit_that_fails_the_argument_schema_is_refused_not_applied(
    edited: JsonObject, why: str
) -> None:
    sim = one()
    raised = sim.only_open()

    verdict = sim.decide(raised.interrupt_id, "edit", "bob", edited_args=edited)

    assert not verdict.accepted
    assert verdict.reason == f"the edited arguments are invalid: {why}"
    assert sim.only_open() == raised
    assert not sim.of_type(ToolCallScheduled)


def test_an_edit_without_arguments_is_refused() -> None:
    sim = one()

    verdict = sim.decide(sim.only_open().interrupt_id, "edit", "bob")

    assert verdict.reason == "an edit must carry the new arguments as a JSON object"


def test_after_an_edit_what_runs_is_the_edited_arguments() -> None:
    sim = one()

    sim.decide(
        sim.only_open().interrupt_id,
        "edit",
        "bob",
        edited_args={"account": "acc-9", "amount": 300, "memo": "split"},
    )

    [scheduled] = sim.of_type(ToolCallScheduled)
    assert scheduled.args == {"account": "acc-9", "amount": 300, "memo": "split"}
    assert sim.output == {"status": "ok", "args": scheduled.args, "reason": "", "by": "bob"}


def test_an_edit_that_raises_the_risk_goes_back_for_approval_at_the_new_level() -> None:
    sim = one(500)
    first = sim.only_open()
    assert (first.request.risk, first.request.levels) == ("medium", 1)

    sim.decide(first.interrupt_id, "edit", "bob", edited_args={"account": "acc-1", "amount": 5000})

    second = sim.only_open()
    assert second.interrupt_id == interrupt_id_for("run-1", 0, "approval-2")
    assert second.call == first.call
    assert (second.request.risk, second.request.level, second.request.levels) == ("high", 1, 2)
    assert second.request.args == {"account": "acc-1", "amount": 5000}
    assert second.request.policy == "big@1"
    assert second.request.excluded == ("bob",)
    assert not sim.of_type(ToolCallScheduled)
    assert [(e.round, e.policy) for e in sim.of_type(GateEvaluated)] == [
        (1, "transfer-limit@1"),
        (2, "big@1"),
    ]

    # The refusal names the rule that applies: bob edited the call (not "approved a level").
    assert sim.decide(second.interrupt_id, "approve", "bob").reason == (
        "bob edited this call; an edit is approved by someone else"
    )
    sim.decide(second.interrupt_id, "approve", "carol")
    third = sim.only_open()
    assert (third.request.level, third.request.approvers, third.request.excluded) == (
        2,
        ("role:vp",),
        ("bob", "carol"),
    )
    sim.decide(third.interrupt_id, "approve", "vic")

    [scheduled] = sim.of_type(ToolCallScheduled)
    assert scheduled.args == {"account": "acc-1", "amount": 5000}


def test_an_edit_that_lowers_the_amount_below_every_rule_runs_without_more_approval() -> None:
    sim = one(5000)

    sim.decide(
        sim.only_open().interrupt_id, "edit", "bob", edited_args={"account": "acc-1", "amount": 50}
    )

    assert [(e.round, e.action) for e in sim.of_type(GateEvaluated)] == [
        (1, "approve"),
        (2, "auto"),
    ]
    assert sim.output == {
        "status": "ok",
        "args": {"account": "acc-1", "amount": 50},
        "reason": "",
        "by": "bob",
    }


def test_an_edit_to_a_policy_relevant_argument_goes_back_for_approval() -> None:
    sim = Sim(email_review.app, "email", {"to": "ann@example.com", "customer": "Ann"})
    first = sim.only_open()
    draft = dict(first.request.args or {})

    sim.decide(first.interrupt_id, "edit", "bob", edited_args={**draft, "to": "ben@example.com"})

    second = sim.only_open()
    assert (second.request.args or {})["to"] == "ben@example.com"
    assert second.request.risk == "medium"  # same risk: it is the recipient that matters
    assert second.request.excluded == ("bob",)
    assert sim.decide(second.interrupt_id, "approve", "carol").accepted
    assert email_review.SENT[-1]["to"] == "ben@example.com"


def test_an_edit_of_an_irrelevant_argument_runs_at_once() -> None:
    sim = Sim(email_review.app, "email", {"to": "ann@example.com", "customer": "Ann"})
    first = sim.only_open()

    sim.decide(
        first.interrupt_id,
        "edit",
        "bob",
        edited_args={**(first.request.args or {}), "body": "Dear Ann"},
    )

    assert sim.run.status == "completed"
    assert email_review.SENT[-1]["body"] == "Dear Ann"


# -- respond ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "why"),
    [
        ({"n": 0}, "the answer.n must be at least 1"),
        ({}, "the answer.n is required"),
        ("three", "the answer must be object, not string"),
        ({"n": 2.5}, "the answer.n must be integer, not number"),
    ],
)
def test_a_response_is_checked_against_the_answer_schema(response: Json, why: str) -> None:
    sim = Sim(APP, "question", {})
    raised = sim.only_open()

    verdict = sim.decide(raised.interrupt_id, "respond", "alice", response=response)

    assert verdict.reason == f"the answer does not fit the request's answer schema: {why}"
    assert sim.only_open() == raised


def test_a_valid_response_reaches_the_agent_and_the_requester_may_answer_questions() -> None:
    sim = Sim(APP, "question", {})

    assert sim.decide(sim.only_open().interrupt_id, "respond", "alice", response={"n": 3}).accepted

    assert sim.output == {"kind": "respond", "response": {"n": 3}, "by": "alice"}


# -- several interrupts, idempotency, conflicts ----------------------------------------------------


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 0, 1), (1, 2, 0)])
def test_parallel_interrupts_are_answered_in_any_order(order: tuple[int, int, int]) -> None:
    sim = Sim(APP, "three", {})
    raised = sim.open()
    assert [r.call for r in raised] == [0, 1, 2]
    kinds = {0: "approve", 1: "reject", 2: "approve"}

    for n, i in enumerate(order):
        assert sim.decide(
            raised[i].interrupt_id, kinds[i], f"{['bob', 'carol', 'dan'][i]}"
        ).accepted
        assert (sim.run.status == "completed") == (n == 2)

    assert [r["status"] for r in sim.output] == ["ok", "rejected", "ok"]  # type: ignore[index, union-attr]


def test_the_same_decision_id_twice_gives_the_same_outcome_and_is_applied_once() -> None:
    sim = one()
    raised = sim.only_open()

    first = sim.decide(raised.interrupt_id, "approve", "bob", decision_id="d-1")
    again = sim.decide(raised.interrupt_id, "approve", "bob", decision_id="d-1")

    assert (first.accepted, again.accepted, again.repeat, again.event) == (True, True, True, None)
    assert len(sim.of_type(DecisionAccepted)) == 1
    assert len(sim.of_type(ToolCallScheduled)) == 1


def test_a_repeated_refused_decision_is_refused_again_with_the_same_reason() -> None:
    sim = one()
    raised = sim.only_open()

    first = sim.decide(raised.interrupt_id, "approve", "alice", decision_id="d-1")
    again = sim.decide(raised.interrupt_id, "approve", "alice", decision_id="d-1")

    assert (first.accepted, again.accepted, again.reason) == (False, False, first.reason)
    assert len(sim.of_type(DecisionRejected)) == 1


def test_a_second_different_decision_is_refused_and_the_first_stands() -> None:
    sim = one()
    raised = sim.only_open()

    sim.decide(raised.interrupt_id, "reject", "bob", decision_id="d-1", reason="no")
    second = sim.decide(raised.interrupt_id, "approve", "carol", decision_id="d-2")

    assert second.reason == f"interrupt {raised.interrupt_id} was already decided by decision d-1"
    assert sim.output["status"] == "rejected"  # type: ignore[index, call-overload]


# -- decisions that arrive early -------------------------------------------------------------------


def test_a_decision_for_an_interrupt_not_raised_yet_is_held_then_applied() -> None:
    sim = Sim(APP, "two-in-a-row", {})
    first = sim.only_open()
    second_id = interrupt_id_for("run-1", 1, "approval")  # deterministic: known early

    early = sim.decide(second_id, "approve", "carol", decision_id="early")
    assert (early.accepted, early.status) == (False, "held")
    assert isinstance(early.event, DecisionHeld)
    assert sim.decide(second_id, "approve", "carol", decision_id="early").status == "held"
    assert len(sim.of_type(DecisionHeld)) == 1

    sim.decide(first.interrupt_id, "approve", "bob")

    [accepted_early] = [e for e in sim.of_type(DecisionAccepted) if e.decision_id == "early"]
    assert accepted_early.interrupt_id == second_id
    assert sim.run.status == "completed"
    assert not sim.run.held


def test_a_held_decision_is_judged_like_any_other_when_its_interrupt_appears() -> None:
    sim = Sim(APP, "two-in-a-row", {})
    second_id = interrupt_id_for("run-1", 1, "approval")
    sim.decide(second_id, "approve", "alice", decision_id="by-requester")

    sim.decide(sim.only_open().interrupt_id, "approve", "bob")

    [refused] = [e for e in sim.of_type(DecisionRejected) if e.decision_id == "by-requester"]
    assert refused.reason == "alice started this run and may not approve its requests"
    assert sim.only_open().interrupt_id == second_id


def test_a_held_decision_is_refused_when_the_run_ends_without_its_interrupt() -> None:
    sim = Sim(APP, "two-in-a-row", {})
    never = interrupt_id_for("run-1", 7, "approval")
    sim.decide(never, "approve", "carol", decision_id="too-early")

    sim.decide(sim.only_open().interrupt_id, "reject", "bob")
    sim.decide(sim.only_open().interrupt_id, "reject", "bob")

    [refused] = [e for e in sim.of_type(DecisionRejected) if e.decision_id == "too-early"]
    assert "never raised and never will be" in refused.reason
    assert not sim.run.held


def test_a_decision_for_a_finished_run_is_not_held() -> None:
    sim = one()
    sim.decide(sim.only_open().interrupt_id, "reject", "bob")

    verdict = sim.decide(interrupt_id_for("run-1", 3, "approval"), "approve", "carol")

    assert verdict.status == "refused"
    assert "never raised" in verdict.reason


# -- who may decide --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["approve", "edit"])
def test_the_requester_may_not_approve_or_edit(kind: str) -> None:
    sim = one()
    extra: dict[str, Any] = {"edited_args": {"account": "a", "amount": 1}} if kind == "edit" else {}

    verdict = sim.decide(sim.only_open().interrupt_id, kind, "alice", **extra)

    assert verdict.reason == "alice started this run and may not approve its requests"


def test_someone_without_the_role_is_refused_with_the_reason() -> None:
    sim = one()

    verdict = sim.decide(sim.only_open().interrupt_id, "approve", "mallory")

    assert verdict.reason == "mallory is not among the approvers of this request (role:ops)"


def test_someone_without_the_role_may_not_reject_either() -> None:
    sim = one()

    assert not sim.decide(sim.only_open().interrupt_id, "reject", "mallory").accepted


def test_a_decision_must_name_who_made_it() -> None:
    sim = one()

    assert "decided_by" in sim.decide(sim.only_open().interrupt_id, "approve", "").reason


def test_critical_risk_takes_three_levels_with_two_of_n_at_the_first() -> None:
    sim = one(20_000)
    first = sim.only_open()
    assert (first.request.risk, first.request.levels, first.request.quorum) == ("critical", 3, 2)

    vote = sim.decide(first.interrupt_id, "approve", "bob")
    duplicate = sim.decide(first.interrupt_id, "approve", "bob")
    assert (vote.status, vote.reason) == ("counted", "approval 1 of 2 counted")
    assert isinstance(vote.event, VoteRecorded)
    assert (
        duplicate.reason
        == "bob already approved this request; each approval needs a different person"
    )
    assert sim.only_open() == first

    closing = sim.decide(first.interrupt_id, "approve", "carol")
    assert isinstance(closing.event, DecisionAccepted)
    assert closing.event.approved_by == ("bob", "carol")

    second = sim.only_open()
    assert (second.request.level, second.request.approvers) == (2, ("role:vp",))
    sim.decide(second.interrupt_id, "approve", "vic")
    third = sim.only_open()
    assert (third.request.level, third.request.approvers, third.request.excluded) == (
        3,
        ("role:cfo",),
        ("bob", "carol", "vic"),
    )
    sim.decide(third.interrupt_id, "approve", "cleo")

    assert sim.output["status"] == "ok"  # type: ignore[index, call-overload]
    assert len(sim.of_type(InterruptRaised)) == 3


def test_a_reject_at_any_level_stops_the_call() -> None:
    sim = one(5000)
    sim.decide(sim.only_open().interrupt_id, "approve", "bob")

    sim.decide(sim.only_open().interrupt_id, "reject", "vic", reason="not this quarter")

    assert sim.output == {
        "status": "rejected",
        "args": {"account": "acc-1", "amount": 5000},
        "reason": "not this quarter",
        "by": "vic",
    }


def test_an_edit_under_a_quorum_counts_the_editor_and_asks_the_rest_about_the_edit() -> None:
    sim = one(20_000)
    first = sim.only_open()

    sim.decide(
        first.interrupt_id, "edit", "bob", edited_args={"account": "acc-1", "amount": 15_000}
    )

    again = sim.only_open()
    assert (again.request.level, again.request.quorum, again.request.excluded) == (1, 1, ("bob",))
    assert again.request.args == {"account": "acc-1", "amount": 15_000}


def test_payments_example_k_of_n_refuses_a_duplicate_approver() -> None:
    sim = Sim(
        payments.app,
        "payout",
        {"payments": [{"payee": "acme", "amount": 25_000, "confidence": 0.99}]},
    )
    first = sim.only_open()

    sim.decide(first.interrupt_id, "approve", "bob")
    duplicate = sim.decide(first.interrupt_id, "approve", "bob", decision_id="bob-again")

    assert not duplicate.accepted
    assert "already approved" in duplicate.reason


def test_respond_on_a_tool_request_supplies_the_result_and_the_tool_never_runs() -> None:
    app = App("respond-test", directory={"bob": ["ops"]})

    @app.tool(policy=Always(name="manual-ok", allowed=("approve", "respond", "reject")))
    async def lookup(key: str) -> Json:
        raise AssertionError("the person answered: the tool must not run")

    @app.agent("ask-tool")
    async def ask_tool(ctx: RunContext, input: JsonObject) -> Json:
        return _shown(await ctx.tool("lookup", {"key": "k"}))

    sim = Sim(app, "ask-tool", {})
    sim.decide(sim.only_open().interrupt_id, "respond", "bob", response={"value": 42})

    assert sim.output == {"status": "ok", "args": {"key": "k"}, "reason": "", "by": "bob"}
    assert not sim.of_type(ToolCallScheduled)


def test_values_quoted_from_a_decision_in_its_refusal_are_clipped() -> None:
    from events.limits import MAX_ECHO_CHARS

    sim = one()
    kind, who = "k" * 32, "w" * 256  # the largest a decoded command may carry
    raised = sim.only_open()

    unknown_kind = sim.decide(raised.interrupt_id, kind, "bob")
    stranger = sim.decide(raised.interrupt_id, "approve", who)

    assert kind in unknown_kind.reason  # short enough to be quoted whole
    assert not stranger.accepted, stranger.reason
    assert who not in stranger.reason
    assert "w" * (MAX_ECHO_CHARS - 20) in stranger.reason
    assert len(stranger.reason) < 256 + MAX_ECHO_CHARS
