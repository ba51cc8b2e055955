"""Policies fail closed: a value a policy cannot read or compare means "ask a person", never
"run it". For every built-in policy, no JSON value in place of a well-typed one makes a gated
call cheaper (a lower action or risk) than the same call with the well-typed value."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from engine.agent.guards import Guard, RunSignals, evaluate_call
from engine.agent.policies import (
    SEVERITY,
    Confidence,
    Gate,
    Limit,
    Policy,
    Proposal,
    When,
    risk_rank,
)
from events.json import Json

JSON_VALUES: st.SearchStrategy[Json] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["25000", "1e400", "NaN", "-0", " 9 ", "\uff11\uff12"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


def _gate(policy: Policy, args: dict[str, Json], confidence: float | None = None) -> Gate:
    proposal = Proposal(tool="pay", args=args, confidence=confidence, agent="payer")
    gate = evaluate_call(
        proposal,
        own=policy,
        guards=(),
        escalation=None,
        signals=RunSignals(),
    )
    assert gate is not None
    return gate


def _cost(gate: Gate) -> tuple[int, int]:
    return SEVERITY[gate.action], risk_rank(gate.risk)


def _well_typed_worst(policy: Policy, name: str) -> tuple[int, int]:
    """The cheapest gate any well-typed value can reach is at most this; an unreadable value
    must cost at least what the most demanding well-typed value costs."""
    probes: list[Json] = [0, 1, 500, 10_000, 10_000.5, 1e12, -1e12]
    return max(_cost(_gate(policy, {name: value})) for value in probes)


@given(value=JSON_VALUES)
def test_limit_never_lets_an_unreadable_amount_through(value: Json) -> None:
    limit = Limit("amount", 10_000, risk="critical")
    gate = _gate(limit, {"amount": value})
    readable = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )
    if not readable:
        assert _cost(gate) >= _well_typed_worst(limit, "amount")
        assert "cannot be checked" in gate.reason


def test_limit_asks_for_the_string_that_used_to_be_paid_without_a_person() -> None:
    limit = Limit("amount", 10_000, risk="critical")
    assert _cost(_gate(limit, {"amount": "25000"})) == _cost(_gate(limit, {"amount": 25000}))
    assert _gate(limit, {"amount": "25000"}).action == "approve"


def test_a_missing_argument_asks_unless_the_limit_allows_it() -> None:
    assert _gate(Limit("amount", 10), {}).action == "approve"
    assert _gate(Limit("amount", 10, missing="allow"), {}).action == "auto"
    assert _gate(Limit("amount", 10, missing="allow"), {"amount": None}).action == "approve"


@given(value=JSON_VALUES)
def test_when_fails_closed_when_its_predicate_cannot_read_the_value(value: Json) -> None:
    rule = When(lambda a: a["amount"] > 500, risk="high")  # type: ignore[operator]
    gate = _gate(rule, {"amount": value})
    try:
        expected = bool(value > 500)  # type: ignore[operator]
    except TypeError:
        expected = True  # unreadable: a person decides
    assert (gate.action == "approve") is expected
    if expected:
        assert _cost(gate) >= _cost(_gate(rule, {"amount": 501}))


def test_when_that_cannot_find_its_argument_asks_and_says_why() -> None:
    gate = _gate(When(lambda a: a["amount"] > 500, name="big"), {})  # type: ignore[operator]
    assert (gate.action, gate.rule) == ("approve", "unreadable")
    assert "KeyError" in gate.reason


@given(confidence=st.one_of(st.floats(), st.integers(), st.booleans()))
def test_confidence_outside_zero_to_one_escalates(confidence: float) -> None:
    policy = Confidence()
    gate = _gate(policy, {}, confidence=confidence)
    in_range = not isinstance(confidence, bool) and 0.0 <= confidence <= 1.0
    if not in_range:
        assert gate.action == "escalate"
        assert _cost(gate) >= max(_cost(_gate(policy, {}, c)) for c in (0.0, 0.5, 1.0))


class _Broken:
    name = "custom"
    version = "7"

    def evaluate(self, proposal: Proposal) -> Gate:
        raise ZeroDivisionError("oops")


def test_a_policy_that_raises_asks_a_person_at_critical_risk() -> None:
    gate = _gate(_Broken(), {"amount": 1})
    assert (gate.action, gate.risk, gate.policy, gate.rule) == (
        "approve",
        "critical",
        "custom@7",
        "policy-failed",
    )
    guarded = evaluate_call(
        Proposal(tool="pay", args={}, agent="a"),
        own=None,
        guards=(Guard("*", _Broken(), hard=True),),
        escalation=None,
        signals=RunSignals(),
    )
    assert guarded is not None
    assert guarded.action == "approve"
