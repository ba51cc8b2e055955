"""The run context: the only way agent code touches the world, so that every touch is recorded.

Calls are numbered in program order when they are *made* (not awaited); on replay the
recorded result of call N is returned without doing anything again.

    invoice = await ctx.call(lookup_invoice, invoice_id="INV-7")   # typed by the tool itself
    paid = await ctx.call(pay, vendor="acme", amount=900).explained(reasoning="due today")
    if ctx.patched("vat-fix"):                                       # new code, same version
        ...
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, Protocol, TypeVar

import structlog

from engine.agent.argspec import IDEMPOTENCY_KEY_PARAM, validate
from engine.errors import ConfigurationError, ToolNotOk
from events.approval import DecisionKind, RiskLevel, TimeoutAction
from events.json import Json, JsonObject

P = ParamSpec("P")
R = TypeVar("R")
_new = object.__new__


@dataclass(frozen=True, kw_only=True, init=False)
class ToolResult(Generic[R]):
    """What a tool call came to. A rejected call never ran; `reason` says why, for the model.

    `value` is the tool's result when `ok` (typed by the tool with `ctx.call`); `unwrap()`
    returns it, or raises `ToolNotOk` with the reason. `decided_by` is who let it run: the
    approver, or `policy:<name@version>` when a policy let it run without asking.
    """

    status: Literal["ok", "rejected", "failed"]
    value: R | None = None
    args: JsonObject | None = None
    reason: str = ""
    decided_by: str = ""

    def __init__(
        self,
        *,
        status: Literal["ok", "rejected", "failed"],
        value: R | None = None,
        args: JsonObject | None = None,
        reason: str = "",
        decided_by: str = "",
    ) -> None:
        # Frozen, so written straight into the instance's dict: the generated __init__ goes
        # through object.__setattr__ per field, twice the instructions, and a rebuild makes
        # one result per recorded call.
        fields = self.__dict__
        fields["status"] = status
        fields["value"] = value
        fields["args"] = args
        fields["reason"] = reason
        fields["decided_by"] = decided_by

    @classmethod
    def _ran(cls, value: R, args: JsonObject) -> ToolResult[R]:
        """`ToolResult(status="ok", value=value, args=args)`, made without a call by keyword:
        that call was half the cost of the result a rebuild makes for each recorded call."""
        result = _new(cls)
        fields = result.__dict__
        fields["status"] = "ok"
        fields["value"] = value
        fields["args"] = args
        fields["reason"] = fields["decided_by"] = ""
        return result

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def unwrap(self) -> R:
        """The result of a call that ran; `ToolNotOk` (with the reason) for one that did not."""
        if self.status != "ok":
            raise ToolNotOk(self.status, self.reason)
        return self.value  # type: ignore[return-value]  # ok: the tool returned an R


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

    def patched(self, change_id: str) -> bool: ...

    def deprecate_patch(self, change_id: str) -> None: ...

    def tool_name(self, fn: Callable[..., Any]) -> str | None: ...

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


class ToolCall(Call, Generic[R]):
    __slots__ = ("args", "confidence", "context", "impact", "reasoning", "tool")

    def __init__(
        self,
        resolver: _Resolver,
        tool: str,
        args: JsonObject,
        reasoning: str,
        impact: str,
        context: Json,
        confidence: float | None = None,
    ) -> None:
        # Positional, and Call.__init__'s two lines here: keywords and super() cost a rebuild
        # a tenth of a microsecond each per call.
        self._resolver = resolver
        self.position = resolver.next_position()
        self.tool = tool
        self.args = args
        self.reasoning = reasoning
        self.impact = impact
        self.context = context
        self.confidence = confidence

    def explained(
        self,
        reasoning: str = "",
        *,
        impact: str = "",
        context: Json = None,
        confidence: float | None = None,
    ) -> ToolCall[R]:
        """What a reviewer sees beside the arguments, for a call made with `ctx.call` (whose
        keyword arguments are the tool's own). Call it before awaiting."""
        self.reasoning = reasoning or self.reasoning
        self.impact = impact or self.impact
        self.context = context if context is not None else self.context
        self.confidence = confidence if confidence is not None else self.confidence
        return self

    if TYPE_CHECKING:  # typed here; at run time `Call.__await__`, without a generator around it

        def __await__(self) -> Generator[Call, None, ToolResult[R]]: ...


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

    if TYPE_CHECKING:  # as for ToolCall

        def __await__(self) -> Generator[Call, None, Decision]: ...


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
    """Drops log calls while the agent is replaying recorded history (Temporal does the same).

    The structlog logger is bound when agent code first reaches for a level: binding costs
    ~30k instructions, a tenth of rebuilding a short run, and most agents never log."""

    def __init__(self, resolver: _Resolver, run_id: str, agent: str) -> None:
        self._resolver = resolver
        self._run_id = run_id
        self._agent = agent
        self._logger: Any = None

    def __getattr__(self, level: str) -> Any:
        if self._logger is None:
            self._logger = structlog.get_logger("countersign.agent").bind(
                run_id=self._run_id, agent=self._agent
            )
        method = getattr(self._logger, level)

        def log(event: str, **kw: Any) -> None:
            if not self._resolver.replaying:
                method(event, **kw)

        return log


class _NoDefault:
    """No default answer: the deadline of a question rejects it."""


NO_DEFAULT = _NoDefault()


def _with_default(
    schema: Json, default: Json, allowed: tuple[DecisionKind, ...]
) -> tuple[Json, TimeoutAction]:
    """The answer schema carrying `default` (JSON Schema's own keyword), checked against it."""
    if "respond" not in allowed:
        raise ConfigurationError("a default answer needs 'respond' among the allowed decisions")
    errors = validate(default, schema, "the default answer")
    if errors:
        raise ConfigurationError("; ".join(errors))
    base: JsonObject = dict(schema) if isinstance(schema, dict) else {}
    return {**base, "default": default}, "respond"


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
        dry_run: bool = False,
    ) -> None:
        self._resolver = resolver
        self.run_id = run_id
        self.agent = agent
        self.agent_version = agent_version
        self.requested_by = requested_by
        self.dry_run = dry_run
        """True in a dry-run fork (`countersign fork`): no tool runs for real."""
        self.log = _ReplayAwareLogger(resolver, run_id, agent)

    @property
    def is_replaying(self) -> bool:
        return self._resolver.replaying

    def call(
        self, tool: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> ToolCall[R]:
        """Call a registered tool by the function itself: its signature types the arguments
        and the `ToolResult`. Await it; `.explained(...)` adds the reasoning a reviewer sees.

            result = await ctx.call(pay_invoice, vendor="acme", amount=900)

        Declare an `idempotency_key` parameter with a default (`idempotency_key: str = ""`)
        so that calls need not pass it: the engine supplies it.
        """
        name = self._resolver.tool_name(tool)
        if name is None:
            raise ConfigurationError(
                f"{getattr(tool, '__name__', tool)!r} is not a tool of this app "
                "(register it with @app.tool)"
            )
        return ToolCall(self._resolver, name, _named_args(tool, args, kwargs), "", "", None)

    def tool(
        self,
        name: str,
        args: JsonObject | None = None,
        *,
        reasoning: str = "",
        impact: str = "",
        context: Json = None,
        confidence: float | None = None,
    ) -> ToolCall[Json]:
        """Call a registered tool by name (for dynamic use; `ctx.call` is the typed form).
        Await it for a `ToolResult`.

        `confidence` (0..1) is the agent's own score for this step; confidence policies map
        it to AUTO / NOTIFY / APPROVE / ESCALATE.
        """
        return ToolCall(
            self._resolver, name, dict(args or {}), reasoning, impact, context, confidence
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
        default: Json | _NoDefault = NO_DEFAULT,
    ) -> InterruptCall:
        """Ask a person. Await it for the `Decision`.

        A `respond` is validated against `answer_schema` (basic JSON schema) before it is
        accepted. On timeout the decision is a reject (`expired=True`), an approve (low risk
        only), or, with "escalate", the question goes to `escalate_to` for another period.
        With a `default`, the deadline answers it: the decision is a `respond` with the
        default (`expired=True`), and reviewers see that default on the request.

            answer = await ctx.interrupt("Ship how?", answer_schema={"type": "string"},
                                         default="standard", deadline_s=3600)
        """
        if on_timeout == "approve" and risk != "low":
            raise ConfigurationError("approving on timeout is allowed only for low risk")
        if not isinstance(default, _NoDefault):
            answer_schema, on_timeout = _with_default(answer_schema, default, allowed)
        elif on_timeout == "respond":
            raise ConfigurationError("on_timeout='respond' needs a default answer (default=...)")
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

    def patched(self, change_id: str) -> bool:
        """Branch old and new behaviour inside one agent version: True for runs that reach
        this point with the new code (the choice is recorded), False for runs recorded with
        the code before it. Keep both branches until no run of the old code is live; then
        replace the check with `ctx.deprecate_patch(change_id)`.

            if ctx.patched("vat-fix"):
                amount = with_vat(amount)
        """
        return self._resolver.patched(change_id)

    def deprecate_patch(self, change_id: str) -> None:
        """Where `patched(change_id)` was: runs that recorded the patch replay past its
        marker; runs that did not are unaffected. Nothing is recorded."""
        self._resolver.deprecate_patch(change_id)

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


def _named_args(
    tool: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> JsonObject:
    """The call's arguments by parameter name (what is recorded, gated and shown)."""
    if IDEMPOTENCY_KEY_PARAM in kwargs:
        raise ConfigurationError("idempotency_key is the engine's to give: do not pass it")
    if not args:
        return dict(kwargs)
    try:
        bound = _signature(tool).bind_partial(*args, **kwargs)
    except TypeError as exc:
        raise ConfigurationError(f"cannot call {tool.__name__}: {exc}") from exc
    named: JsonObject = {}
    for name, value in bound.arguments.items():
        kind = _signature(tool).parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            raise ConfigurationError(f"{tool.__name__}: *{name} cannot be named; pass keywords")
        if kind is inspect.Parameter.VAR_KEYWORD:
            named.update(value)
        else:
            named[name] = value
    return named


_SIGNATURES: dict[Callable[..., Any], inspect.Signature] = {}


def _signature(tool: Callable[..., Any]) -> inspect.Signature:
    signature = _SIGNATURES.get(tool)
    if signature is None:
        signature = _SIGNATURES[tool] = inspect.signature(tool)
    return signature
