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
evaluated first, so no soft rule or confidence score can lower what a hard rule demands.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field, replace
from typing import Protocol

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


def check_timeout(on_timeout: TimeoutAction, risk: RiskLevel, where: str) -> None:
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
        key=lambda item: (*item[1].severity, item[1].hard, -item[0]),
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
        if not self.predicate(proposal.args):
            gate = self.otherwise.evaluate(proposal)
            if isinstance(self.otherwise, Never):  # this policy decided: say so
                gate = replace(gate, policy=f"{self.name}@{self.version}", rule="not-matched")
            return gate
        amount = proposal.args.get(self.amount_arg) if self.amount_arg else None
        return Gate(
            action=self.action,
            policy=f"{self.name}@{self.version}",
            rule="predicate",
            reason=self.reason,
            risk=self.risk,
            amount=float(amount) if isinstance(amount, int | float) else None,
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

    def __post_init__(self) -> None:
        check_timeout(self.on_timeout, self.risk, self.name)

    def evaluate(self, proposal: Proposal) -> Gate:
        value = proposal.args.get(self.arg)
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        if number is None or number <= self.maximum:
            return Gate(
                action="auto",
                policy=f"{self.name}@{self.version}",
                rule=f"{self.arg}<={self.maximum:g}",
                risk="low",
                relevant_args=None,
                hard=True,
            )
        return Gate(
            action=self.action,
            policy=f"{self.name}@{self.version}",
            rule=f"{self.arg}>{self.maximum:g}",
            reason=f"{self.arg} {number:g} is over the limit of {self.maximum:g}",
            risk=self.risk,
            amount=float(number),
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
        shown = "none" if proposal.confidence is None else f"{proposal.confidence:g}"
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
