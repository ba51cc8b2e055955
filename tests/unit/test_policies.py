"""Policies: each rule on its own, rule ordering when several match, the central guard list,
run-level escalation rules, and the gate outcome recorded as an event naming policy@version."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.agent.app import App
from engine.agent.authorization import Level
from engine.agent.context import RunContext
from engine.agent.guards import Escalation, Guard, RunSignals, evaluate_call
from engine.agent.policies import (
    SEVERITY,
    Always,
    Confidence,
    Gate,
    Limit,
    Never,
    Proposal,
    When,
    combine,
)
from engine.core.gating import levels_for
from engine.errors import ConfigurationError
from events.json import Json, JsonObject
from events.notices import ActionNotified
from events.run_events import GateEvaluated, InterruptRaised, ToolCallScheduled
from tests.unit.approvals_sim import Sim


def proposal(args: JsonObject | None = None, confidence: float | None = None) -> Proposal:
    return Proposal(tool="pay", args=args or {}, confidence=confidence, agent="payer")


# -- single rules ---------------------------------------------------------------------------------


def test_never_and_always_name_their_policy_and_version() -> None:
    assert Never().evaluate(proposal()).policy == "never@1"
    gate = Always(name="payments", version="3").evaluate(proposal())
    assert (gate.action, gate.policy, gate.rule) == ("approve", "payments@3", "always")


def test_when_asks_only_when_the_predicate_holds_and_says_which_rule_fired() -> None:
    rule = When(lambda a: a["amount"] > 500, name="big", version="2", amount_arg="amount")  # type: ignore[operator]

    over = rule.evaluate(proposal({"amount": 501}))
    under = rule.evaluate(proposal({"amount": 500}))

    assert (over.action, over.policy, over.rule, over.amount) == (
        "approve",
        "big@2",
        "predicate",
        501.0,
    )
    assert (under.action, under.policy, under.rule) == ("auto", "big@2", "not-matched")


@pytest.mark.parametrize(
    ("amount", "action", "rule"),
    [
        (10_000, "auto", "amount<=10000"),
        (10_000.01, "approve", "amount>10000"),
        ("x", "approve", "amount?"),  # unreadable: fail closed (test_policies_fail_closed.py)
    ],
)
def test_limit_is_a_hard_rule_on_one_argument(amount: Json, action: str, rule: str) -> None:
    gate = Limit("amount", 10_000).evaluate(proposal({"amount": amount}))

    assert (gate.action, gate.rule, gate.hard) == (action, rule, True)


@pytest.mark.parametrize(
    ("confidence", "action"),
    [
        (0.99, "auto"),
        (0.9, "auto"),
        (0.89, "notify"),
        (0.75, "notify"),
        (0.6, "approve"),
        (0.49, "escalate"),
        (None, "approve"),
    ],
)
def test_confidence_thresholds_map_a_score_to_an_outcome(
    confidence: float | None, action: str
) -> None:
    gate = Confidence(auto=0.9, notify=0.75, approve=0.5).evaluate(proposal(confidence=confidence))

    assert gate.action == action


def test_confidence_escalation_goes_to_the_escalation_group() -> None:
    policy = Confidence(approvers=("role:ops",), escalate_to=("role:cfo",))

    assert policy.evaluate(proposal(confidence=0.1)).approvers == ("role:cfo",)
    assert policy.evaluate(proposal(confidence=0.6)).approvers == ("role:ops",)


@given(st.floats(min_value=0, max_value=1), st.floats(min_value=0, max_value=1))
def test_more_confidence_never_means_a_more_severe_outcome(a: float, b: float) -> None:
    policy = Confidence(auto=0.9, notify=0.75, approve=0.5)
    low, high = sorted((a, b))

    assert (
        SEVERITY[policy.evaluate(proposal(confidence=high)).action]
        <= SEVERITY[policy.evaluate(proposal(confidence=low)).action]
    )


def test_badly_ordered_thresholds_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        Confidence(auto=0.5, notify=0.75, approve=0.9)


@pytest.mark.parametrize("risk", ["medium", "high", "critical"])
def test_auto_approve_on_timeout_is_only_allowed_for_low_risk(risk: str) -> None:
    with pytest.raises(ConfigurationError, match="only for low risk"):
        Always(risk=risk, on_timeout="approve")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        Gate(action="approve", policy="p@1", risk=risk, on_timeout="approve")  # type: ignore[arg-type]
    Always(risk="low", on_timeout="approve")  # allowed


# -- rule ordering ---------------------------------------------------------------------------------


def g(action: str, *, risk: str = "medium", hard: bool = False, name: str = "p") -> Gate:
    return Gate(action=action, policy=f"{name}@1", risk=risk, hard=hard)  # type: ignore[arg-type]


def test_the_most_severe_action_wins_whatever_the_order() -> None:
    gates = [
        g("notify", name="a"),
        g("escalate", name="b"),
        g("approve", name="c"),
        g("auto", name="d"),
    ]

    for order in (gates, gates[::-1], gates[1:] + gates[:1]):
        assert combine(order).policy == "b@1"


def test_at_the_same_action_the_higher_risk_wins() -> None:
    assert (
        combine(
            [g("approve", risk="high", name="a"), g("approve", risk="critical", name="b")]
        ).policy
        == "b@1"
    )


def test_at_the_same_action_and_risk_a_hard_rule_takes_precedence() -> None:
    soft, hard = g("approve", name="soft"), g("approve", hard=True, name="hard")

    assert combine([soft, hard]).policy == "hard@1"
    assert combine([hard, soft]).policy == "hard@1"


def test_a_hard_rule_is_not_lowered_by_a_soft_rule_that_would_let_the_call_run() -> None:
    assert (
        combine([g("approve", hard=True, name="limit"), g("auto", name="confident")]).policy
        == "limit@1"
    )


def test_on_a_full_tie_the_first_declared_rule_wins() -> None:
    assert combine([g("approve", name="first"), g("approve", name="second")]).policy == "first@1"


def test_combine_needs_a_gate() -> None:
    with pytest.raises(ValueError, match="at least one"):
        combine([])


# -- the central guard list ------------------------------------------------------------------------


def test_no_policy_and_no_guard_means_no_gate_at_all() -> None:
    assert (
        evaluate_call(proposal(), own=None, guards=(), escalation=None, signals=RunSignals())
        is None
    )


def test_guards_match_by_pattern_and_agent() -> None:
    guards = (
        Guard("pay*", Always(name="all-payments")),
        Guard("refund", Always(name="refunds")),
        Guard("*", Always(name="other-agent", risk="critical"), agent="someone-else"),
    )

    gate = evaluate_call(proposal(), own=None, guards=guards, escalation=None, signals=RunSignals())

    assert gate is not None
    assert gate.policy == "all-payments@1"


def test_a_guard_and_the_decorator_policy_combine_most_severe_first() -> None:
    guards = (Guard("pay", When(lambda a: a["amount"] > 100, name="guard", risk="critical")),)  # type: ignore[operator]
    own = Always(name="own", risk="medium")

    big = evaluate_call(
        proposal({"amount": 101}), own=own, guards=guards, escalation=None, signals=RunSignals()
    )
    small = evaluate_call(
        proposal({"amount": 99}), own=own, guards=guards, escalation=None, signals=RunSignals()
    )

    assert big is not None
    assert small is not None
    assert big.policy == "guard@1"
    assert small.policy == "own@1"


def test_a_hard_guard_is_marked_hard_and_beats_an_equal_decorator_policy() -> None:
    guards = (Guard("pay", Always(name="guard"), hard=True),)

    gate = evaluate_call(
        proposal(), own=Always(name="own"), guards=guards, escalation=None, signals=RunSignals()
    )

    assert gate is not None
    assert (gate.policy, gate.hard) == ("guard@1", True)


# -- escalation rules ------------------------------------------------------------------------------


def test_two_rejections_in_a_row_escalate_the_next_call() -> None:
    rules = Escalation(rejections_in_a_row=2, to=("role:supervisor",))

    assert rules.evaluate(proposal(), RunSignals(rejections_in_a_row=1)) is None
    gate = rules.evaluate(proposal(), RunSignals(rejections_in_a_row=2))

    assert gate is not None
    assert (gate.action, gate.policy, gate.rule, gate.approvers) == (
        "escalate",
        "escalation@1",
        "rejections-in-a-row",
        ("role:supervisor",),
    )


def test_repeated_low_confidence_escalates() -> None:
    rules = Escalation(low_confidence_below=0.5, low_confidence_times=3, rejections_in_a_row=None)

    assert rules.evaluate(proposal(confidence=0.4), RunSignals(confidences=(0.3, 0.9))) is None
    assert rules.evaluate(proposal(confidence=0.9), RunSignals(confidences=(0.3, 0.2))) is None
    gate = rules.evaluate(proposal(confidence=0.4), RunSignals(confidences=(0.3, 0.9, 0.2)))
    assert gate is not None
    assert gate.rule == "repeated-low-confidence"


def test_the_app_resolves_levels_from_its_ladder_by_risk() -> None:
    ladder = (Level(("role:lead",)), Level(("role:cfo",), quorum=2))

    assert levels_for(g("approve", risk="high"), {"high": ladder}) == ladder
    assert levels_for(
        Gate(action="approve", policy="p@1", approvers=("bob",), risk="high"), {"high": ladder}
    ) == (
        Level(("bob",)),
        ladder[1],
    )
    assert levels_for(g("approve", risk="low"), {"high": ladder}) == (Level(),)


# -- gate outcomes are events ----------------------------------------------------------------------

APP = App("policies-test", directory={"bob": ["ops"], "sue": ["boss"]})
APP.guard("move_*", Limit("amount", 1000, name="move-limit", version="4"), hard=True)
APP.escalation = Escalation(rejections_in_a_row=2, low_confidence_times=None, to=("role:boss",))


@APP.tool(policy=Confidence(name="moves", version="7", approvers=("role:ops",)))
async def move_money(to: str, amount: float) -> Json:
    return {"moved": amount, "to": to}


@APP.agent("mover")
async def mover(ctx: RunContext, input: JsonObject) -> Json:
    out = []
    for step in input["steps"]:  # type: ignore[union-attr]
        assert isinstance(step, dict)
        result = await ctx.tool(
            "move_money",
            {"to": step["to"], "amount": step["amount"]},
            confidence=step.get("c"),  # type: ignore[arg-type]
        )
        out.append(result.status)
    return out


def _steps(*steps: tuple[float, float | None]) -> JsonObject:
    return {"steps": [{"to": "x", "amount": a, "c": c} for a, c in steps]}


@pytest.mark.parametrize(
    ("amount", "confidence", "action", "policy"),
    [
        (10, 0.95, "auto", "moves@7"),
        (10, 0.8, "notify", "moves@7"),
        (10, 0.6, "approve", "moves@7"),
        (10, 0.2, "escalate", "moves@7"),
        (5000, 0.99, "approve", "move-limit@4"),
    ],
)
def test_every_gate_outcome_is_an_event_naming_policy_and_version(
    amount: float, confidence: float, action: str, policy: str
) -> None:
    sim = Sim(APP, "mover", _steps((amount, confidence)))

    [evaluated] = sim.of_type(GateEvaluated)

    assert (evaluated.action, evaluated.policy, evaluated.confidence) == (
        action,
        policy,
        confidence,
    )
    ran = bool(sim.of_type(ToolCallScheduled))
    assert ran == (action in ("auto", "notify"))
    assert bool(sim.of_type(InterruptRaised)) == (action in ("approve", "escalate"))


def test_escalate_outcome_is_marked_and_falls_back_to_the_policy_approvers() -> None:
    sim = Sim(APP, "mover", _steps((10, 0.2)))

    request = sim.only_open().request

    assert request.title.startswith("Escalated:")
    assert request.approvers == ("role:ops",)  # no escalate_to on the policy: its approvers


def test_two_rejections_in_a_row_escalate_the_third_call_in_the_run() -> None:
    sim = Sim(APP, "mover", _steps((10, 0.6), (10, 0.6), (10, 0.99)))
    sim.decide(sim.only_open().interrupt_id, "reject", "bob", reason="no")
    sim.decide(sim.only_open().interrupt_id, "reject", "bob", reason="still no")

    third = sim.only_open()
    evaluations = sim.of_type(GateEvaluated)

    assert [e.action for e in evaluations] == ["approve", "approve", "escalate"]
    assert (evaluations[-1].policy, evaluations[-1].rule) == ("escalation@1", "rejections-in-a-row")
    assert third.request.approvers == ("role:boss",)
    assert sim.decide(third.interrupt_id, "approve", "bob").reason.startswith("bob is not among")
    assert sim.decide(third.interrupt_id, "approve", "sue").accepted
    assert sim.output == ["rejected", "rejected", "ok"]


def test_notify_runs_the_tool_and_the_worker_can_announce_it() -> None:
    from engine.core.outbox import event_notices
    from events.run_events import ToolCallCompleted

    sim = Sim(APP, "mover", _steps((10, 0.8)))
    [completed] = [e for e in sim.envelopes if isinstance(e.payload, ToolCallCompleted)]

    [notice] = event_notices(sim.run, sim.envelopes, completed)

    assert isinstance(notice, ActionNotified)
    assert (notice.tool, notice.policy, notice.rule, notice.confidence) == (
        "move_money",
        "moves@7",
        "confidence>=0.75",
        0.8,
    )
    assert notice.args == {"to": "x", "amount": 10}
    assert notice.result == {"moved": 10, "to": "x"}
    assert notice.requested_by == "alice"
