"""The registry a worker serves: agents (by name and version) and the tools they may call.

    app = App("shop")

    @app.tool(policy=When(lambda a: a["amount"] > 500), idempotent=False)
    async def refund(order_id: str, amount: float) -> dict: ...

    @app.agent("refund", version="1")
    async def refund_agent(ctx: RunContext, input: dict) -> dict: ...

Nothing connects or registers globally at import time: the App object is the registry.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from engine.errors import ConfigurationError
from engine.policies import Never, Policy
from events.json import Json, JsonObject

if TYPE_CHECKING:
    from engine.context import RunContext

AgentFn = Callable[["RunContext", JsonObject], Coroutine[Any, Any, Json]]
ToolFn = Callable[..., Awaitable[Json]]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, kw_only=True)
class ToolSpec:
    """A tool: the function, its approval policy, and whether running it twice is harmless."""

    name: str
    fn: ToolFn
    policy: Policy = field(default_factory=Never)
    idempotent: bool = False
    description: str = ""
    wants_idempotency_key: bool = False

    async def invoke(self, args: JsonObject, idempotency_key: str) -> Json:
        if self.wants_idempotency_key:
            return await self.fn(**args, idempotency_key=idempotency_key)
        return await self.fn(**args)


@dataclass(frozen=True, kw_only=True)
class AgentSpec:
    name: str
    version: str
    fn: AgentFn
    description: str = ""


class App:
    """Agents and tools served by a worker; pass it as `--app module:attribute`."""

    def __init__(self, name: str = "app") -> None:
        self.name = name
        self._agents: dict[str, dict[str, AgentSpec]] = {}
        self._tools: dict[str, ToolSpec] = {}

    def tool(
        self,
        name: str | None = None,
        *,
        policy: Policy | None = None,
        idempotent: bool = False,
        description: str = "",
    ) -> Callable[[F], F]:
        def register(fn: F) -> F:
            tool_name = name or fn.__name__
            if not inspect.iscoroutinefunction(fn):
                raise ConfigurationError(f"tool {tool_name!r} must be an async function")
            if tool_name in self._tools:
                raise ConfigurationError(f"tool {tool_name!r} is registered twice")
            params = inspect.signature(fn).parameters
            self._tools[tool_name] = ToolSpec(
                name=tool_name,
                fn=fn,
                policy=policy or Never(),
                idempotent=idempotent,
                description=description or (fn.__doc__ or "").strip(),
                wants_idempotency_key="idempotency_key" in params,
            )
            return fn

        return register

    def agent(self, name: str, *, version: str = "1", description: str = "") -> Callable[[F], F]:
        def register(fn: F) -> F:
            if not inspect.iscoroutinefunction(fn):
                raise ConfigurationError(f"agent {name!r} must be an async function")
            versions = self._agents.setdefault(name, {})
            if version in versions:
                raise ConfigurationError(f"agent {name!r} version {version!r} is registered twice")
            versions[version] = AgentSpec(
                name=name, version=version, fn=fn, description=description or (fn.__doc__ or "")
            )
            return fn

        return register

    def find_agent(self, name: str, version: str = "") -> AgentSpec | None:
        """The exact version, or the newest one when `version` is empty."""
        versions = self._agents.get(name)
        if not versions:
            return None
        if version:
            return versions.get(version)
        return versions[max(versions, key=_version_key)]

    def get_tool(self, name: str) -> ToolSpec | None:
        return self._tools.get(name)

    @property
    def agents(self) -> list[AgentSpec]:
        return [spec for versions in self._agents.values() for spec in versions.values()]

    @property
    def tools(self) -> list[ToolSpec]:
        return list(self._tools.values())


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in version.split("."))
