"""Approval policies: pure, versioned rules from a proposed tool call to a gate outcome.

Outcomes, least to most severe: AUTO (run it), NOTIFY (run it, then tell people), APPROVE
(ask first), ESCALATE (hand it to someone above). Every policy has a name and a version;
the gate it returns names both (`name@version`) and the rule that fired, and the engine
records that as a `GateEvaluated` event.

    @app.tool(policy=When(lambda a: a["amount"] > 500, args=("amount",), name="refund-limit"))
    app.guard("payments.*", Limit("amount", 10_000), hard=True)
    app.guard("*", Confidence(auto=0.9, notify=0.75, approve=0.5))

When several rules match a call, `combine` picks the most severe outcome (then the higher
risk); hard rules (limits) take precedence over soft ones at the same severity, and are
evaluated first, so no soft rule or confidence score can lower what a hard rule demands. At
the same outcome, a rule that matched the call (`amount<=1000`) names the verdict rather than
one that merely did not apply (`not-matched`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field, replace
from typing import Literal, Protocol, TypeGuard

from engine.agent.authorization import Level
from engine.errors import ConfigurationError
from events.approval import RISK_LEVELS, DecisionKind, GateAction, RiskLevel, TimeoutAction
from events.json import JsonObject

__all__ = [
    "SEVERITY",
    "Always",
    "Confidence",
    "Gate",
    "GateAction",
    "Limit",
    "Never",
    "Policy",
    "Proposal",
    "When",
    "combine",
    "risk_rank",
]

SEVERITY: dict[GateAction, int] = {"auto": 0, "notify": 1, "approve": 2, "escalate": 3}
NOT_MATCHED = "not-matched"
"""The rule of a `When` whose predicate did not hold (its `otherwise` decided)."""
DEFAULT_DEADLINE_S = 24 * 3600.0
TOOL_DECISIONS: tuple[DecisionKind, ...] = ("approve", "edit", "reject")


def risk_rank(risk: RiskLevel) -> int:
    return RISK_LEVELS.index(risk)


@dataclass(frozen=True, kw_only=True, slots=True)
class Proposal:
    """What a policy looks at: the tool, its arguments, and the agent's confidence (0..1)."""

    tool: str
    args: JsonObject
    confidence: float | None = None
    agent: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class Gate:
    """What a policy decided for one call, and the approval plan when it needs a decision.

    `levels` empty means one level of `approvers` (the app's ladder for the risk may add
    more). Every edit is re-evaluated and goes back for approval when it makes the call more
    demanding (action, risk, levels); `relevant_args` names arguments whose change always
    goes back (e.g. a payee), whatever the re-evaluation says.
    """

    action: GateAction
    policy: str
    rule: str = ""
    reason: str = ""
    risk: RiskLevel = "medium"
    amount: float | None = None
    approvers: tuple[str, ...] = ()
    levels: tuple[Level, ...] = ()
    allowed: tuple[DecisionKind, ...] = ("approve", "reject")
    deadline_s: float | None = None
    on_timeout: TimeoutAction = "reject"
    escalate_to: tuple[str, ...] = ()
    relevant_args: tuple[str, ...] | None = None
    hard: bool = False

    def __post_init__(self) -> None:
        check_timeout(self.on_timeout, self.risk, self.policy)

    @property
    def needs_decision(self) -> bool:
        return self.action in ("approve", "escalate")

    @property
    def severity(self) -> tuple[int, int]:
        return SEVERITY[self.action], risk_rank(self.risk)

    @property
    def decided(self) -> bool:
        """Whether a rule of the policy matched the call (not a fall-through to its default)."""
        return self.rule not in ("", NOT_MATCHED)


def check_timeout(on_timeout: TimeoutAction, risk: RiskLevel, where: str) -> None:
    if on_timeout == "respond":
        raise ConfigurationError(
            f"{where}: on_timeout='respond' answers a question with its default; "
            "a tool's gate has no default to give"
        )
    if on_timeout == "approve" and risk != "low":
        raise ConfigurationError(
            f"{where}: approving on timeout is allowed only for low risk, not {risk}"
        )


class Policy(Protocol):
    """Decides what a proposed call needs. Must be pure: same proposal, same gate."""

    def evaluate(self, proposal: Proposal) -> Gate: ...


def combine(gates: Sequence[Gate]) -> Gate:
    """The gate that decides when several rules matched: the most severe action, then the
    higher risk, then hard over soft, then the first declared. Needs at least one gate."""
    if not gates:
        raise ValueError("combine needs at least one gate")
    ranked = sorted(
        enumerate(gates),
        key=lambda item: (*item[1].severity, item[1].hard, item[1].decided, -item[0]),
        reverse=True,
    )
    return ranked[0][1]


@dataclass(frozen=True, kw_only=True)
class Never:
    """Never interrupt: the tool runs straight away."""

    name: str = "never"
    version: str = "1"

    def evaluate(self, proposal: Proposal) -> Gate:
        return Gate(
            action="auto", policy=f"{self.name}@{self.version}", risk="low", relevant_args=()
        )


@dataclass(frozen=True, kw_only=True)
class Always:
    """Always ask before the tool runs."""

    name: str = "always"
    version: str = "1"
    risk: RiskLevel = "high"
    reason: str = "this tool always needs approval"
    approvers: tuple[str, ...] = ()
    levels: tuple[Level, ...] = ()
    allowed: tuple[DecisionKind, ...] = TOOL_DECISIONS
    deadline_s: float | None = DEFAULT_DEADLINE_S
    on_timeout: TimeoutAction = "reject"
    escalate_to: tuple[str, ...] = ()
    args: tuple[str, ...] | None = None
    """Arguments whose change by an edit goes back for approval (e.g. a recipient)."""

    def __post_init__(self) -> None:
        check_timeout(self.on_timeout, self.risk, self.name)

    def evaluate(self, proposal: Proposal) -> Gate:
        return Gate(
            action="approve",
            policy=f"{self.name}@{self.version}",
            rule="always",
            reason=self.reason,
            risk=self.risk,
            approvers=self.approvers,
            levels=self.levels,
            allowed=self.allowed,
            deadline_s=self.deadline_s,
            on_timeout=self.on_timeout,
            escalate_to=self.escalate_to,
            relevant_args=self.args,
        )


@dataclass(frozen=True)
class When:
    """Ask when a predicate on the arguments holds, e.g. `When(lambda a: a["amount"] > 500)`.

    `args` names arguments whose change by an edit always goes back for approval (e.g. a
    payee); any edit is re-evaluated anyway, and goes back when it raises the risk.
    """

    predicate: Callable[[JsonObject], bool]
    _: KW_ONLY
    name: str = "when"
    version: str = "1"
    reason: str = "the arguments match an approval rule"
    risk: RiskLevel = "high"
    action: GateAction = "approve"
    amount_arg: str | None = None
    args: tuple[str, ...] | None = None
    approvers: tuple[str, ...] = ()
    levels: tuple[Level, ...] = ()
    allowed: tuple[DecisionKind, ...] = TOOL_DECISIONS
    deadline_s: float | None = DEFAULT_DEADLINE_S
    on_timeout: TimeoutAction = "reject"
    escalate_to: tuple[str, ...] = ()
    hard: bool = False
    otherwise: Policy = field(default_factory=Never)

    def __post_init__(self) -> None:
        check_timeout(self.on_timeout, self.risk, self.name)

    def evaluate(self, proposal: Proposal) -> Gate:
        try:
            matched = bool(self.predicate(proposal.args))
        except Exception as exc:  # fail closed: a rule that cannot read the call asks a person
            return self._ask("unreadable", f"the rule could not read the arguments: {_why(exc)}")
        if not matched:
            gate = self.otherwise.evaluate(proposal)
            if isinstance(self.otherwise, Never):  # this policy decided: say so
                gate = replace(gate, policy=f"{self.name}@{self.version}", rule=NOT_MATCHED)
            return gate
        return self._ask("predicate", self.reason, readable_number(proposal.args, self.amount_arg))

    def _ask(self, rule: str, reason: str, amount: float | None = None) -> Gate:
        return Gate(
            action=self.action,
            policy=f"{self.name}@{self.version}",
            rule=rule,
            reason=reason,
            risk=self.risk,
            amount=amount,
            approvers=self.approvers,
            levels=self.levels,
            allowed=self.allowed,
            deadline_s=self.deadline_s,
            on_timeout=self.on_timeout,
            escalate_to=self.escalate_to,
            relevant_args=self.args,
            hard=self.hard,
        )


@dataclass(frozen=True)
class Limit:
    """A hard rule: `arg` above `maximum` always needs a decision (APPROVE by default).

    An edit of `arg` is re-evaluated like any edit: it goes back for approval when it raises
    the risk or the levels (e.g. over another, higher limit), not for every change."""

    arg: str
    maximum: float
    _: KW_ONLY
    name: str = "limit"
    version: str = "1"
    action: GateAction = "approve"
    risk: RiskLevel = "high"
    approvers: tuple[str, ...] = ()
    levels: tuple[Level, ...] = ()
    allowed: tuple[DecisionKind, ...] = TOOL_DECISIONS
    deadline_s: float | None = DEFAULT_DEADLINE_S
    on_timeout: TimeoutAction = "reject"
    escalate_to: tuple[str, ...] = ()
    missing: Literal["ask", "allow"] = "ask"
    """A call without `arg` at all: "ask" a person (the default: a tool's default for the
    argument may be anything), or "allow" it, for tools where the argument is truly optional."""
    convert: Callable[[float, JsonObject], float] | None = None
    """What `arg`'s number comes to before it is compared, given the whole arguments: e.g. the
    amount in one currency, `lambda amount, a: amount * RATES[str(a["currency"])]`. A
    conversion that fails (an unknown currency) asks a person."""
    unit: str = ""
    """What `maximum` (and a converted value) is in, for reasons: "EUR"."""

    def __post_init__(self) -> None:
        check_timeout(self.on_timeout, self.risk, self.name)

    def evaluate(self, proposal: Proposal) -> Gate:
        number = readable_number(proposal.args, self.arg)
        if number is not None and self.convert is not None:
            return self._converted(number, proposal.args)
        if number is None:
            if self.arg not in proposal.args and self.missing == "allow":
                return self._under(f"{self.arg} absent")
            shown = "missing" if self.arg not in proposal.args else "not a number"
            return self._over(
                f"{self.arg}?",
                f"{self.arg} is {shown}: the limit of {self.maximum:g} cannot be "
                "checked, so a person decides",
                None,
            )
        if number <= self.maximum:
            return self._under(f"{self.arg}<={self.maximum:g}")
        return self._over(
            f"{self.arg}>{self.maximum:g}",
            f"{self.arg} {number:g} is over the limit of {self.maximum:g}",
            number,
        )

    def _converted(self, value: float, args: JsonObject) -> Gate:
        assert self.convert is not None
        try:
            number = readable_number({"value": self.convert(value, args)}, "value")
        except Exception as exc:  # fail closed: a value the rule cannot work out asks a person
            number, why = None, _why(exc)
        else:
            why = "not a finite number"
        limit = f"{self.maximum:g}{f' {self.unit}' if self.unit else ''}"
        if number is None:
            reason = f"{self.arg} cannot be converted ({why}): the limit of {limit} cannot be "
            return self._over(f"{self.arg}?", reason + "checked, so a person decides", None)
        if number <= self.maximum:
            return self._under(f"{self.arg}<={self.maximum:g}")
        shown = f"{number:g}{f' {self.unit}' if self.unit else ''}"
        reason = f"{self.arg} of {shown} is over the limit of {limit}"
        return self._over(f"{self.arg}>{self.maximum:g}", reason, number)

    def _under(self, rule: str) -> Gate:
        return Gate(
            action="auto",
            policy=f"{self.name}@{self.version}",
            rule=rule,
            risk="low",
            relevant_args=None,
            hard=True,
        )

    def _over(self, rule: str, reason: str, number: float | None) -> Gate:
        return Gate(
            action=self.action,
            policy=f"{self.name}@{self.version}",
            rule=rule,
            reason=reason,
            risk=self.risk,
            amount=number,
            approvers=self.approvers,
            levels=self.levels,
            allowed=self.allowed,
            deadline_s=self.deadline_s,
            on_timeout=self.on_timeout,
            escalate_to=self.escalate_to,
            relevant_args=None,
            hard=True,
        )


@dataclass(frozen=True, kw_only=True)
class Confidence:
    """Maps the agent's confidence score to an outcome for one operation type (attach it to a
    tool, or to a pattern of tools with `app.guard`): at or above `auto` ⇒ AUTO, `notify` ⇒
    NOTIFY, `approve` ⇒ APPROVE, below ⇒ ESCALATE. No score given ⇒ `missing`."""

    name: str = "confidence"
    version: str = "1"
    auto: float = 0.9
    notify: float = 0.75
    approve: float = 0.5
    missing: GateAction = "approve"
    risk: RiskLevel = "medium"
    approvers: tuple[str, ...] = ()
    levels: tuple[Level, ...] = ()
    escalate_to: tuple[str, ...] = ()
    allowed: tuple[DecisionKind, ...] = TOOL_DECISIONS
    deadline_s: float | None = DEFAULT_DEADLINE_S
    on_timeout: TimeoutAction = "reject"

    def __post_init__(self) -> None:
        if not self.approve <= self.notify <= self.auto:
            raise ConfigurationError(
                f"{self.name}: thresholds must satisfy approve <= notify <= auto"
            )
        check_timeout(self.on_timeout, self.risk, self.name)

    def _action(self, confidence: float | None) -> tuple[GateAction, str]:
        if confidence is None:
            return self.missing, "no confidence given"
        if not _is_score(confidence):
            return "escalate", "unreadable confidence"
        for action, threshold in (
            ("auto", self.auto),
            ("notify", self.notify),
            ("approve", self.approve),
        ):
            if confidence >= threshold:
                return action, f"confidence>={threshold:g}"  # type: ignore[return-value]
        return "escalate", f"confidence<{self.approve:g}"

    def evaluate(self, proposal: Proposal) -> Gate:
        action, rule = self._action(proposal.confidence)
        confidence = proposal.confidence
        shown = "none" if confidence is None else repr(confidence)
        if _is_score(confidence):
            shown = f"{confidence:g}"
        escalating = action == "escalate"
        return Gate(
            action=action,
            policy=f"{self.name}@{self.version}",
            rule=rule,
            reason=f"the agent's confidence is {shown}",
            risk=self.risk,
            approvers=self.escalate_to if escalating and self.escalate_to else self.approvers,
            levels=() if escalating else self.levels,
            allowed=self.allowed,
            deadline_s=self.deadline_s,
            on_timeout=self.on_timeout,
            escalate_to=() if escalating else self.escalate_to,
            relevant_args=(),
        )


def readable_number(args: JsonObject, name: str | None) -> float | None:
    """`args[name]` as a finite number, or None when it is absent or not one (a string, a
    boolean, null, NaN...): policies treat None as "cannot read" and fail closed."""
    if name is None:
        return None
    value = args.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _is_score(confidence: object) -> TypeGuard[float]:
    return (
        isinstance(confidence, int | float)
        and not isinstance(confidence, bool)
        and 0.0 <= confidence <= 1.0
    )


def _why(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]
