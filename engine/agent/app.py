"""The registry a worker serves: agents (by name and version) and the tools they may call.

    app = App("shop")

    @app.tool(policy=When(lambda a: a["amount"] > 500), idempotent=False)
    async def refund(order_id: str, amount: float) -> dict: ...

    @app.agent("refund", version="1")
    async def refund_agent(ctx: RunContext, input: dict) -> dict: ...

Approval settings live on the App too: a central guard list (`app.guard`), a principal→roles
directory, approval ladders by risk, and run-level escalation rules:

    app = App("shop", directory={"bob": ["support-lead"]},
              ladders={"high": (Level(("role:support-lead",)), Level(("role:finance",)))})
    app.guard("refund*", Limit("amount", 10_000), hard=True)

One worker can serve several apps: an app that includes others serves their agents and tools
too, each with its own policies, guards, directory and ladders; clashing agent or tool names
are refused when they meet (`countersign worker --app a:app --app b:app` builds such an app):

    everything = App("all", include=(shop.app, mail.app))

Nothing connects or registers globally at import time: the App object is the registry.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from engine.agent.argspec import schema_of_function
from engine.agent.authorization import EMPTY_DIRECTORY, Directory, Level
from engine.agent.guards import Escalation, Guard
from engine.agent.personal import PersonalFields, personal_fields, result_marks
from engine.agent.policies import Policy
from engine.errors import ConfigurationError
from events.approval import RiskLevel
from events.json import Json, JsonObject

if TYPE_CHECKING:
    from engine.agent.context import RunContext

AgentFn = Callable[["RunContext", JsonObject], Coroutine[Any, Any, Json]]
ToolFn = Callable[..., Awaitable[Json]]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, kw_only=True)
class ToolSpec:
    """A tool: the function, its approval policy (None: only guards apply), whether running
    it twice is harmless, and the schema its arguments (and edits of them) must satisfy."""

    name: str
    fn: ToolFn
    policy: Policy | None = None
    idempotent: bool = False
    description: str = ""
    wants_idempotency_key: bool = False
    args_schema: JsonObject = field(default_factory=dict)
    wants_dry_run: bool = False
    """It takes `dry_run`: in a dry-run fork it is called with dry_run=True (and must not
    act) instead of being replaced by a stand-in result."""
    personal: PersonalFields | None = None
    """Its personal arguments and result fields, and which argument names their subject
    (`engine.agent.personal`): encrypted per subject in the log."""

    async def invoke(
        self, args: JsonObject, idempotency_key: str, *, dry_run: bool = False
    ) -> Json:
        extra: dict[str, object] = {}
        if self.wants_idempotency_key:
            extra["idempotency_key"] = idempotency_key
        if self.wants_dry_run:
            extra["dry_run"] = dry_run
        return await self.fn(**args, **extra)


@dataclass(frozen=True, kw_only=True)
class AgentSpec:
    name: str
    version: str
    fn: AgentFn
    description: str = ""
    input_schema: JsonObject | None = None
    """What a run's input must satisfy (`engine.agent.argspec`); None: anything."""


class App:
    """Agents and tools served by a worker; pass it as `--app module:attribute`."""

    def __init__(
        self,
        name: str = "app",
        *,
        directory: Directory | None = None,
        ladders: Mapping[RiskLevel, tuple[Level, ...]] | None = None,
        escalation: Escalation | None = None,
        include: Sequence[App] = (),
    ) -> None:
        self.name = name
        self.directory: Directory = directory if directory is not None else EMPTY_DIRECTORY
        self.ladders: Mapping[RiskLevel, tuple[Level, ...]] = dict(ladders or {})
        self.escalation = escalation
        self._agents: dict[str, dict[str, AgentSpec]] = {}
        self._tools: dict[str, ToolSpec] = {}
        self._tool_names: dict[Callable[..., Any], str] = {}
        self._guards: list[Guard] = []
        self._included: list[App] = []
        for other in include:
            self.include(other)

    def include(self, other: App) -> None:
        """Serve `other`'s agents and tools too. Each keeps its own policies, guards,
        directory and ladders; an agent or tool name both apps have is refused."""
        if other is self or any(other is app for app in self._apps()):
            raise ConfigurationError(f"app {other.name!r} is included twice")
        clashes = sorted(
            {f"agent {a.name!r}" for a in other.agents if a.name in self._agent_names()}
            | {f"tool {t.name!r}" for t in other.tools if t.name in self._tool_map()}
        )
        if clashes:
            raise ConfigurationError(
                f"app {other.name!r} cannot join app {self.name!r}: both have " + ", ".join(clashes)
            )
        self._included.append(other)

    def owner_of(self, agent: str) -> App:
        """The app that registered `agent` (itself when no included app did): its policies,
        guards, directory and ladders are the ones that apply to the agent's runs."""
        if agent in self._agents:
            return self
        for other in self._included:
            if agent in other._agent_names():
                return other.owner_of(agent)
        return self

    def directory_for(self, agent: str) -> Directory:
        """Who holds which role, for decisions on `agent`'s runs."""
        return self.owner_of(agent).directory

    def _apps(self) -> Iterator[App]:
        yield self
        for other in self._included:
            yield from other._apps()

    def _agent_names(self) -> set[str]:
        return {name for app in self._apps() for name in app._agents}

    def _tool_map(self) -> dict[str, ToolSpec]:
        return {name: spec for app in self._apps() for name, spec in app._tools.items()}

    def guard(
        self, pattern: str, policy: Policy, *, hard: bool = False, agent: str | None = None
    ) -> None:
        """Attach `policy` to every tool whose name matches `pattern` (fnmatch), for one agent
        or all. Hard guards (limits) are evaluated first and cannot be lowered by soft ones."""
        self._guards.append(Guard(pattern, policy, hard=hard, agent=agent))

    @property
    def guards(self) -> tuple[Guard, ...]:
        return tuple(self._guards)

    def tool(
        self,
        name: str | None = None,
        *,
        policy: Policy | None = None,
        idempotent: bool = False,
        description: str = "",
        args_schema: JsonObject | None = None,
    ) -> Callable[[F], F]:
        """Register a tool. `args_schema` defaults to one derived from the signature."""

        def register(fn: F) -> F:
            tool_name = name or fn.__name__
            if not inspect.iscoroutinefunction(fn):
                raise ConfigurationError(f"tool {tool_name!r} must be an async function")
            if tool_name in self._tool_map():
                raise ConfigurationError(f"tool {tool_name!r} is registered twice")
            params = inspect.signature(fn).parameters
            schema = args_schema if args_schema is not None else schema_of_function(fn)
            self._tools[tool_name] = ToolSpec(
                name=tool_name,
                fn=fn,
                policy=policy,
                idempotent=idempotent,
                description=description or (fn.__doc__ or "").strip(),
                wants_idempotency_key="idempotency_key" in params,
                wants_dry_run="dry_run" in params,
                args_schema=schema,
                personal=personal_fields(tool_name, schema, result_marks(fn)),
            )
            self._tool_names.setdefault(fn, tool_name)
            return fn

        return register

    def agent(
        self,
        name: str,
        *,
        version: str = "1",
        description: str = "",
        input_schema: JsonObject | None = None,
    ) -> Callable[[F], F]:
        """Register an agent version. `input_schema` (the JSON-schema subset of
        `engine.agent.argspec`) is published with it: `countersign start` checks a run's input
        against it before sending."""

        def register(fn: F) -> F:
            if not inspect.iscoroutinefunction(fn):
                raise ConfigurationError(f"agent {name!r} must be an async function")
            if name not in self._agents and name in self._agent_names():
                raise ConfigurationError(f"agent {name!r} is registered by an included app")
            versions = self._agents.setdefault(name, {})
            if version in versions:
                raise ConfigurationError(f"agent {name!r} version {version!r} is registered twice")
            versions[version] = AgentSpec(
                name=name,
                version=version,
                fn=fn,
                description=description or (fn.__doc__ or ""),
                input_schema=input_schema,
            )
            return fn

        return register

    def find_agent(self, name: str, version: str = "") -> AgentSpec | None:
        """The exact version, or the newest one when `version` is empty."""
        owner = self.owner_of(name)
        if owner is not self:
            return owner.find_agent(name, version)
        versions = self._agents.get(name)
        if not versions:
            return None
        if version:
            return versions.get(version)
        return versions[max(versions, key=_version_key)]

    def get_tool(self, name: str) -> ToolSpec | None:
        found = self._tools.get(name)
        if found is None and self._included:
            return self._tool_map().get(name)
        return found

    def tool_name(self, fn: Callable[..., Any]) -> str | None:
        """The name `fn` is registered under as a tool (in this app or an included one)."""
        for app in self._apps():
            name = app._tool_names.get(fn)
            if name is not None:
                return name
        return None

    @property
    def agents(self) -> list[AgentSpec]:
        return [
            spec
            for app in self._apps()
            for versions in app._agents.values()
            for spec in versions.values()
        ]

    @property
    def tools(self) -> list[ToolSpec]:
        return list(self._tool_map().values())


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in version.split("."))
