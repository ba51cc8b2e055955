"""What-if: a proposed policy replayed against past gate verdicts and decisions. Pure.

A policy file is JSON (see `examples/policies/refunds.json`):

    {"name": "refunds-v2",
     "rules": [
        {"tool": "refund", "when": {"arg": "amount", "op": ">", "value": 500}, "action": "approve"},
        {"tool": "refund", "action": "auto"}],
     "otherwise": "keep"}

Rules are tried in order; the first whose `tool` (a name, or "*" / absent for any) and
`when` (one condition or a list that must all hold) match gives the call's action: auto,
notify, approve or escalate. A condition tests an argument (`"arg": "amount"`) or a field of
the call (`"field"`: risk, confidence, amount or agent) with `op` one of > >= < <= == != in
"not in". A call no rule matches keeps its recorded action (`"otherwise": "keep"`) or gets
the action `otherwise` names.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias, cast

from events.json import Json, JsonObject

Action: TypeAlias = Literal["auto", "notify", "approve", "escalate"]
ACTIONS: tuple[Action, ...] = ("auto", "notify", "approve", "escalate")
UNASKED = frozenset({"auto", "notify"})
FIELDS = ("risk", "confidence", "amount", "agent")
_RISK_ORDER = {"low": 0, "medium": 1, "high": 2, "critical": 3}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    "in": lambda a, b: isinstance(b, list) and a in b,
    "not in": lambda a, b: isinstance(b, list) and a not in b,
}


class PolicyError(ValueError):
    """The policy file is not valid; the message says where."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CallFact:
    """One past tool call a policy looked at (round 1), and what people made of it."""

    run_id: str
    call: int
    at: datetime
    agent: str
    tool: str
    action: str
    """What the policy of the day decided."""
    policy: str
    risk: str
    amount: float | None
    confidence: float | None
    args: JsonObject | None
    outcome: str | None
    """auto / notify (ran unasked), else open, approved, edited, rejected, expired, withdrawn."""
    decided_by: str | None = None
    decision_s: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Condition:
    subject: str
    """`arg:<name>` or `field:<name>`."""
    op: str
    value: Json

    def holds(self, call: CallFact) -> bool:
        kind, _, name = self.subject.partition(":")
        actual: Json
        if kind == "arg":
            args = call.args or {}
            if name not in args:
                return False
            actual = args[name]
        else:
            actual = cast(Json, getattr(call, name))
        if actual is None:
            return False
        expected = self.value
        if name == "risk" and self.op not in ("in", "not in"):
            actual = _RISK_ORDER.get(str(actual), -1)
            expected = _RISK_ORDER.get(str(expected), -1)
        try:
            return _COMPARE[self.op](actual, expected)
        except TypeError:  # "abc" > 5: not a match
            return False


@dataclass(frozen=True, kw_only=True, slots=True)
class Rule:
    index: int
    tool: str | None
    when: tuple[Condition, ...]
    action: Action
    text: str

    def matches(self, call: CallFact) -> bool:
        if self.tool is not None and self.tool != call.tool:
            return False
        return all(c.holds(call) for c in self.when)


@dataclass(frozen=True, kw_only=True, slots=True)
class Policy:
    name: str
    rules: tuple[Rule, ...]
    otherwise: Action | Literal["keep"] = "keep"

    @staticmethod
    def from_json(value: Json) -> Policy:
        if not isinstance(value, dict):
            raise PolicyError("a policy is a JSON object with a list of rules")
        rules = value.get("rules")
        if not isinstance(rules, list) or not rules:
            raise PolicyError('"rules" must be a non-empty list')
        otherwise = value.get("otherwise", "keep")
        if otherwise != "keep" and otherwise not in ACTIONS:
            raise PolicyError(f'"otherwise" must be keep or one of {", ".join(ACTIONS)}')
        return Policy(
            name=str(value.get("name", "proposed")),
            rules=tuple(_rule(i, r) for i, r in enumerate(rules)),
            otherwise=cast(Action | Literal["keep"], otherwise),
        )

    def action_for(self, call: CallFact) -> tuple[Rule | None, str]:
        for rule in self.rules:
            if rule.matches(call):
                return rule, rule.action
        return None, call.action if self.otherwise == "keep" else self.otherwise


def _rule(index: int, value: Json) -> Rule:
    where = f"rule {index + 1}"
    if not isinstance(value, dict):
        raise PolicyError(f"{where}: a rule is an object")
    action = value.get("action")
    if action not in ACTIONS:
        raise PolicyError(f'{where}: "action" must be one of {", ".join(ACTIONS)}')
    tool = value.get("tool")
    if tool is not None and not isinstance(tool, str):
        raise PolicyError(f'{where}: "tool" is a name')
    when = value.get("when", [])
    conditions = when if isinstance(when, list) else [when]
    return Rule(
        index=index,
        tool=None if tool in (None, "*") else str(tool),
        when=tuple(_condition(where, c) for c in conditions),
        action=action,
        text=_describe(tool, list(conditions), str(action)),
    )


def _condition(where: str, value: Json) -> Condition:
    if not isinstance(value, dict):
        raise PolicyError(f"{where}: a condition is an object")
    op = value.get("op")
    if op not in _COMPARE:
        raise PolicyError(f'{where}: "op" must be one of {", ".join(_COMPARE)}')
    if "arg" in value:
        subject = f"arg:{value['arg']}"
    elif value.get("field") in FIELDS:
        subject = f"field:{value['field']}"
    else:
        raise PolicyError(f'{where}: a condition names an "arg" or a "field" ({", ".join(FIELDS)})')
    if "value" not in value:
        raise PolicyError(f'{where}: a condition needs a "value"')
    return Condition(subject=subject, op=str(op), value=value["value"])


def _describe(tool: Json, conditions: list[Json], action: str) -> str:
    parts = []
    for c in conditions:
        if isinstance(c, dict):
            name = c.get("arg", c.get("field"))
            parts.append(f"{name} {c.get('op')} {c.get('value')}")
    when = f" when {' and '.join(parts)}" if parts else ""
    return f"{tool if tool not in (None, '*') else 'any tool'}{when} → {action}"


# -- the report -----------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Effect:
    """What a rule (or the whole policy) would have changed."""

    matched: int = 0
    would_auto: int = 0
    """Calls people were asked about that would have run unasked."""
    would_auto_outcomes: Counter[str] = field(default_factory=Counter)
    would_ask: int = 0
    """Calls that ran unasked that people would have been asked about."""
    unchanged: int = 0
    decision_s_saved: float = 0.0

    def count(self, call: CallFact, proposed: str) -> None:
        self.matched += 1
        was_asked, asks = call.action not in UNASKED, proposed not in UNASKED
        if was_asked and not asks:
            self.would_auto += 1
            self.would_auto_outcomes[call.outcome or "unknown"] += 1
            self.decision_s_saved += call.decision_s or 0.0
        elif asks and not was_asked:
            self.would_ask += 1
        else:
            self.unchanged += 1

    def to_json(self) -> JsonObject:
        return {
            "matched": self.matched,
            "would_auto": self.would_auto,
            "would_auto_outcomes": dict(sorted(self.would_auto_outcomes.items())),
            "would_ask": self.would_ask,
            "unchanged": self.unchanged,
            "decision_s_saved": round(self.decision_s_saved, 3),
        }

    def sentence(self) -> str:
        out = self.would_auto_outcomes
        said = []
        if self.would_auto:
            said.append(
                f"would have auto-approved {self.would_auto} calls people were asked about, "
                f"{out['rejected']} of which people rejected"
                + (f" and {out['edited']} edited" if out["edited"] else "")
                + (f" ({out['expired']} expired unanswered)" if out["expired"] else "")
            )
        if self.would_ask:
            said.append(f"would have asked people about {self.would_ask} calls that ran unasked")
        return "; ".join(said) or f"changes nothing for the {self.matched} calls it matches"


@dataclass(kw_only=True)
class WhatIf:
    policy: Policy
    calls: int = 0
    total: Effect = field(default_factory=Effect)
    rules: list[Effect] = field(default_factory=list)
    unmatched: Effect = field(default_factory=Effect)

    def to_json(self) -> JsonObject:
        return {
            "policy": self.policy.name,
            "calls": self.calls,
            "total": self.total.to_json(),
            "summary": f"this policy {self.total.sentence()}",
            "rules": [
                {
                    "rule": rule.index + 1,
                    "text": rule.text,
                    **effect.to_json(),
                    "summary": f"this rule {effect.sentence()}",
                }
                for rule, effect in zip(self.policy.rules, self.rules, strict=True)
            ],
            "unmatched": self.unmatched.to_json(),
        }


def what_if(policy: Policy, calls: Sequence[CallFact]) -> WhatIf:
    """Replay `calls` through `policy`: what would have been asked, and what not."""
    report = WhatIf(policy=policy, calls=len(calls), rules=[Effect() for _ in policy.rules])
    for call in calls:
        rule, proposed = policy.action_for(call)
        report.total.count(call, proposed)
        (report.unmatched if rule is None else report.rules[rule.index]).count(call, proposed)
    return report
