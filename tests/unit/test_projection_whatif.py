"""What-if: the policy format, rule matching and the report. Pure."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from events.json import Json, JsonObject
from projections.whatif import CallFact, Policy, PolicyError, what_if

T0 = datetime(2026, 11, 20, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policies" / "refunds.json"


def call(
    n: int,
    action: str,
    outcome: str | None,
    *,
    tool: str = "refund",
    args: JsonObject | None = None,
    **extra: object,
) -> CallFact:
    return CallFact(
        run_id=f"r-{n}",
        call=1,
        at=T0,
        agent="refunds",
        tool=tool,
        action=action,
        policy="refund-limit@1",
        risk=str(extra.pop("risk", "high")),
        amount=None,
        confidence=extra.pop("confidence", None),  # type: ignore[arg-type]
        args=args if args is not None else {"amount": 100 + n % 400},
        outcome=outcome,
        decision_s=extra.pop("decision_s", 30.0),  # type: ignore[arg-type]
    )


def small_refunds_auto() -> Policy:
    return Policy.from_json(
        {
            "name": "refunds-v2",
            "rules": [
                {
                    "tool": "refund",
                    "when": {"arg": "amount", "op": "<=", "value": 500},
                    "action": "auto",
                },
            ],
        }
    )


def test_the_report_says_what_would_have_run_unasked_and_what_people_said() -> None:
    past = [call(n, "approve", "approved") for n in range(409)]
    past += [call(409 + n, "approve", "rejected") for n in range(3)]
    past += [call(500, "approve", "approved", args={"amount": 2400})]  # over 500: unchanged
    past += [call(501, "auto", "auto", tool="lookup")]  # no rule: keeps its action

    report = what_if(small_refunds_auto(), past).to_json()

    assert report["summary"] == (
        "this policy would have auto-approved 412 calls people were asked about, "
        "3 of which people rejected"
    )
    (rule,) = report["rules"]  # type: ignore[misc]
    assert (rule["matched"], rule["would_auto"], rule["unchanged"]) == (412, 412, 0)
    assert rule["would_auto_outcomes"] == {"approved": 409, "rejected": 3}
    assert rule["decision_s_saved"] == 412 * 30.0
    assert report["unmatched"] == {
        "matched": 2,
        "would_auto": 0,
        "would_auto_outcomes": {},
        "would_ask": 0,
        "unchanged": 2,
        "decision_s_saved": 0.0,
    }


def test_asking_about_what_ran_unasked_is_counted_too() -> None:
    policy = Policy.from_json(
        {
            "rules": [
                {
                    "tool": "*",
                    "when": [{"field": "risk", "op": ">=", "value": "high"}],
                    "action": "approve",
                }
            ],
            "otherwise": "auto",
        }
    )
    past = [
        call(1, "auto", "auto", risk="critical"),
        call(2, "notify", "notify", risk="high"),
        call(3, "auto", "auto", risk="low"),
        call(4, "approve", "edited", risk="medium"),
    ]

    report = what_if(policy, past)

    assert (report.total.would_ask, report.total.would_auto) == (2, 1)
    assert report.total.would_auto_outcomes == {"edited": 1}
    assert report.total.sentence() == (
        "would have auto-approved 1 calls people were asked about, 0 of which people "
        "rejected and 1 edited; would have asked people about 2 calls that ran unasked"
    )


@pytest.mark.parametrize(
    ("condition", "args", "matches"),
    [
        ({"arg": "amount", "op": ">", "value": 500}, {"amount": 501}, True),
        ({"arg": "amount", "op": ">", "value": 500}, {"amount": 500}, False),
        ({"arg": "amount", "op": ">", "value": 500}, {}, False),  # no such argument
        ({"arg": "amount", "op": ">", "value": 500}, {"amount": "lots"}, False),
        ({"arg": "country", "op": "in", "value": ["FR", "DE"]}, {"country": "FR"}, True),
        ({"arg": "country", "op": "not in", "value": ["FR"]}, {"country": "FR"}, False),
        ({"arg": "vip", "op": "==", "value": True}, {"vip": True}, True),
        ({"field": "confidence", "op": ">=", "value": 0.9}, {}, False),  # none recorded
        ({"field": "risk", "op": "<", "value": "high"}, {}, False),  # high is not < high
    ],
)
def test_conditions(condition: JsonObject, args: JsonObject, matches: bool) -> None:
    policy = Policy.from_json({"rules": [{"when": condition, "action": "auto"}]})

    rule, action = policy.action_for(call(1, "approve", "approved", args=args))

    assert (rule is not None) == matches
    assert action == ("auto" if matches else "approve")


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ([], "a policy is a JSON object"),
        ({"rules": []}, '"rules" must be a non-empty list'),
        ({"rules": [{"action": "maybe"}]}, 'rule 1: "action" must be one of'),
        ({"rules": [{"action": "auto", "when": {"arg": "a", "op": "~", "value": 1}}]}, '"op"'),
        ({"rules": [{"action": "auto", "when": {"op": ">", "value": 1}}]}, 'an "arg" or a'),
        ({"rules": [{"action": "auto", "when": {"arg": "a", "op": ">"}}]}, 'needs a "value"'),
        ({"rules": [{"action": "auto"}], "otherwise": "never"}, '"otherwise"'),
    ],
)
def test_a_bad_policy_is_refused_with_where(policy: Json, message: str) -> None:
    with pytest.raises(PolicyError, match=message.replace('"', ".").replace("(", ".")):
        Policy.from_json(policy)


def test_the_example_policy_file_is_valid() -> None:
    policy = Policy.from_json(json.loads(EXAMPLE.read_text()))

    assert policy.rules[0].text == "refund when amount > 500 → approve"
    assert [r.action for r in policy.rules] == ["approve", "auto", "notify"]
