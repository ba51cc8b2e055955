"""The engine: the agent API (`engine.agent`), the pure replay core (`engine.core`), the runtime
shell (`engine.runtime`) and the event-log adapters (`engine.log`).

from engine import App, RunContext, When

Importing this face loads the agent API and the pure core only; the worker (and with it the
I/O world) loads when `Worker` or `WorkerSettings` is first asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.agent.app import AgentSpec, App, ToolSpec
from engine.agent.authorization import Level
from engine.agent.context import Decision, RunContext, ToolResult
from engine.agent.guards import Escalation
from engine.agent.personal import DATA_SUBJECT, PERSONAL
from engine.agent.policies import Always, Confidence, Gate, Limit, Never, Policy, When
from engine.core.executor import Advance, ExecuteTool, Replayer, Services
from engine.errors import (
    AgentProtocolError,
    ConfigurationError,
    EngineError,
    Fenced,
    LogError,
    NonDeterminismError,
    ToolNotOk,
    TransientLogError,
)

if TYPE_CHECKING:
    from engine.runtime.worker import Worker, WorkerSettings

__all__ = [
    "DATA_SUBJECT",
    "PERSONAL",
    "Advance",
    "AgentProtocolError",
    "AgentSpec",
    "Always",
    "App",
    "Confidence",
    "ConfigurationError",
    "Decision",
    "EngineError",
    "Escalation",
    "ExecuteTool",
    "Fenced",
    "Gate",
    "Level",
    "Limit",
    "LogError",
    "Never",
    "NonDeterminismError",
    "Policy",
    "Replayer",
    "RunContext",
    "Services",
    "ToolNotOk",
    "ToolResult",
    "ToolSpec",
    "TransientLogError",
    "When",
    "Worker",
    "WorkerSettings",
]

_RUNTIME = frozenset({"Worker", "WorkerSettings"})


def __getattr__(name: str) -> Any:
    if name in _RUNTIME:
        from engine.runtime import worker

        return getattr(worker, name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
