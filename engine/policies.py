"""Approval policies: pure functions from a proposed tool call to a gate outcome."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Literal, Protocol, TypeAlias

from events.approval import DecisionKind, RiskLevel, TimeoutAction
from events.json import JsonObject

GateAction: TypeAlias = Literal["auto", "notify", "approve", "escalate"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Gate:
    """What a policy decided for one call, and what the approval request must say."""

    action: GateAction
    policy: str
    reason: str = ""
    risk: RiskLevel = "medium"
    amount: float | None = None
    approvers: tuple[str, ...] = ()
    allowed: tuple[DecisionKind, ...] = ("approve", "reject")
    deadline_s: float | None = None
    on_timeout: TimeoutAction = "reject"

    @property
    def needs_decision(self) -> bool:
        return self.action in ("approve", "escalate")


class Policy(Protocol):
    """Decides whether a call to `tool` with `args` needs a person. Must be pure."""

    def evaluate(self, tool: str, args: JsonObject) -> Gate: ...


@dataclass(frozen=True, kw_only=True)
class Never:
    """Never interrupt: the tool runs straight away."""

    name: str = "never"
    version: str = "1"

    def evaluate(self, tool: str, args: JsonObject) -> Gate:
        return Gate(action="auto", policy=f"{self.name}@{self.version}", risk="low")


@dataclass(frozen=True, kw_only=True)
class Always:
    """Always ask before the tool runs."""

    name: str = "always"
    version: str = "1"
    risk: RiskLevel = "high"
    reason: str = "this tool always needs approval"
    approvers: tuple[str, ...] = ()
    allowed: tuple[DecisionKind, ...] = ("approve", "edit", "reject")
    deadline_s: float | None = 24 * 3600.0

    def evaluate(self, tool: str, args: JsonObject) -> Gate:
        return Gate(
            action="approve",
            policy=f"{self.name}@{self.version}",
            reason=self.reason,
            risk=self.risk,
            approvers=self.approvers,
            allowed=self.allowed,
            deadline_s=self.deadline_s,
        )


@dataclass(frozen=True)
class When:
    """Ask when a predicate on the arguments holds, e.g. `When(lambda a: a["amount"] > 500)`."""

    predicate: Callable[[JsonObject], bool]
    _: KW_ONLY
    name: str = "when"
    version: str = "1"
    reason: str = "the arguments match an approval rule"
    risk: RiskLevel = "high"
    amount_arg: str | None = None
    approvers: tuple[str, ...] = ()
    allowed: tuple[DecisionKind, ...] = ("approve", "edit", "reject")
    deadline_s: float | None = 24 * 3600.0
    otherwise: Policy = field(default_factory=Never)

    def evaluate(self, tool: str, args: JsonObject) -> Gate:
        if not self.predicate(args):
            return self.otherwise.evaluate(tool, args)
        amount = args.get(self.amount_arg) if self.amount_arg else None
        return Gate(
            action="approve",
            policy=f"{self.name}@{self.version}",
            reason=self.reason,
            risk=self.risk,
            amount=float(amount) if isinstance(amount, int | float) else None,
            approvers=self.approvers,
            allowed=self.allowed,
            deadline_s=self.deadline_s,
        )
