"""The run context: the only way agent code touches the world, so that every touch is recorded.

Calls are numbered in program order when they are *made* (not awaited); on replay the
recorded result of call N is returned without doing anything again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import structlog

from engine.errors import ConfigurationError
from events.approval import DecisionKind, RiskLevel, TimeoutAction
from events.json import Json, JsonObject


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolResult:
    """What a tool call came to. A rejected call never ran; `reason` says why, for the model."""

    status: Literal["ok", "rejected", "failed"]
    value: Json = None
    args: JsonObject | None = None
    reason: str = ""
    decided_by: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    """The decision on an interrupt, as agent code receives it."""

    kind: DecisionKind
    decided_by: str
    reason: str = ""
    response: Json = None
    edited_args: JsonObject | None = None
    expired: bool = False


class _Resolver(Protocol):
    def resolve(self, call: Call) -> tuple[bool, Any]: ...

    def record_value(self, kind: Literal["now", "uuid", "random"]) -> Json: ...

    def next_position(self) -> int: ...

    @property
    def replaying(self) -> bool: ...


class Call:
    """An awaitable, recorded call. Awaiting it suspends the agent until its result exists."""

    __slots__ = ("_resolver", "position")

    def __init__(self, resolver: _Resolver) -> None:
        self._resolver = resolver
        self.position = resolver.next_position()

    def __await__(self) -> Generator[Call, None, Any]:
        while True:
            done, value = self._resolver.resolve(self)
            if done:
                return value
            yield self


class ToolCall(Call):
    __slots__ = ("args", "confidence", "context", "impact", "reasoning", "tool")

    def __init__(
        self,
        resolver: _Resolver,
        tool: str,
        args: JsonObject,
        *,
        reasoning: str,
        impact: str,
        context: Json,
        confidence: float | None = None,
    ) -> None:
        super().__init__(resolver)
        self.tool = tool
        self.args = args
        self.reasoning = reasoning
        self.impact = impact
        self.context = context
        self.confidence = confidence

    def __await__(self) -> Generator[Call, None, ToolResult]:
        result: ToolResult = yield from super().__await__()
        return result


class InterruptCall(Call):
    __slots__ = (
        "allowed",
        "answer_schema",
        "approvers",
        "context",
        "deadline_s",
        "escalate_to",
        "on_timeout",
        "risk",
        "title",
    )

    def __init__(
        self,
        resolver: _Resolver,
        title: str,
        *,
        allowed: tuple[DecisionKind, ...],
        context: Json,
        risk: RiskLevel,
        approvers: tuple[str, ...],
        deadline_s: float | None,
        answer_schema: Json,
        on_timeout: TimeoutAction = "reject",
        escalate_to: tuple[str, ...] = (),
    ) -> None:
        super().__init__(resolver)
        self.title = title
        self.allowed = allowed
        self.context = context
        self.risk = risk
        self.approvers = approvers
        self.deadline_s = deadline_s
        self.answer_schema = answer_schema
        self.on_timeout = on_timeout
        self.escalate_to = escalate_to

    def __await__(self) -> Generator[Call, None, Decision]:
        decision: Decision = yield from super().__await__()
        return decision


class AllCalls:
    """Await several calls at once (e.g. three tool calls from one model turn); results in order."""

    __slots__ = ("calls",)

    def __init__(self, calls: tuple[Call, ...]) -> None:
        self.calls = calls

    def __await__(self) -> Generator[Call, None, list[Any]]:
        while True:
            results = [call._resolver.resolve(call) for call in self.calls]
            if all(done for done, _ in results):
                return [value for _, value in results]
            yield self.calls[0]


class _ReplayAwareLogger:
    """Drops log calls while the agent is replaying recorded history (Temporal does the same)."""

    def __init__(self, resolver: _Resolver, logger: Any) -> None:
        self._resolver = resolver
        self._logger = logger

    def __getattr__(self, level: str) -> Any:
        method = getattr(self._logger, level)

        def log(event: str, **kw: Any) -> None:
            if not self._resolver.replaying:
                method(event, **kw)

        return log


class RunContext:
    """Passed to agent code. Everything non-deterministic or side-effecting goes through it."""

    def __init__(
        self,
        resolver: _Resolver,
        *,
        run_id: str,
        agent: str,
        agent_version: str,
        requested_by: str,
    ) -> None:
        self._resolver = resolver
        self.run_id = run_id
        self.agent = agent
        self.agent_version = agent_version
        self.requested_by = requested_by
        self.log = _ReplayAwareLogger(
            resolver, structlog.get_logger("countersign.agent").bind(run_id=run_id, agent=agent)
        )

    @property
    def is_replaying(self) -> bool:
        return self._resolver.replaying

    def tool(
        self,
        name: str,
        args: JsonObject | None = None,
        *,
        reasoning: str = "",
        impact: str = "",
        context: Json = None,
        confidence: float | None = None,
    ) -> ToolCall:
        """Call a registered tool (through its approval policies). Await it for a `ToolResult`.

        `confidence` (0..1) is the agent's own score for this step; confidence policies map
        it to AUTO / NOTIFY / APPROVE / ESCALATE.
        """
        return ToolCall(
            self._resolver,
            name,
            dict(args or {}),
            reasoning=reasoning,
            impact=impact,
            context=context,
            confidence=confidence,
        )

    def interrupt(
        self,
        title: str,
        *,
        allowed: tuple[DecisionKind, ...] = ("respond",),
        context: Json = None,
        risk: RiskLevel = "low",
        approvers: tuple[str, ...] = (),
        deadline_s: float | None = 24 * 3600.0,
        answer_schema: Json = None,
        on_timeout: TimeoutAction = "reject",
        escalate_to: tuple[str, ...] = (),
    ) -> InterruptCall:
        """Ask a person. Await it for the `Decision`.

        A `respond` is validated against `answer_schema` (basic JSON schema) before it is
        accepted. On timeout the decision is a reject (`expired=True`), an approve (low risk
        only), or, with "escalate", the question goes to `escalate_to` for another period.
        """
        if on_timeout == "approve" and risk != "low":
            raise ConfigurationError("approving on timeout is allowed only for low risk")
        return InterruptCall(
            self._resolver,
            title,
            allowed=allowed,
            context=context,
            risk=risk,
            approvers=approvers,
            deadline_s=deadline_s,
            answer_schema=answer_schema,
            on_timeout=on_timeout,
            escalate_to=escalate_to,
        )

    @staticmethod
    def all(*calls: Call) -> AllCalls:
        """Await several calls together; each of their interrupts is open at once."""
        return AllCalls(tuple(calls))

    def now(self) -> dt.datetime:
        value = self._resolver.record_value("now")
        assert isinstance(value, int)
        return dt.datetime.fromtimestamp(value / 1_000_000, tz=dt.UTC)

    def uuid(self) -> str:
        value = self._resolver.record_value("uuid")
        assert isinstance(value, str)
        return value

    def random(self) -> float:
        value = self._resolver.record_value("random")
        assert isinstance(value, float)
        return value
