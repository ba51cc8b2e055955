"""The agent API, the pure replay core and the worker. Adapters live in `engine.log`.

from engine import App, RunContext, When
"""

from engine.app import AgentSpec, App, ToolSpec
from engine.authorization import Level
from engine.context import Decision, RunContext, ToolResult
from engine.errors import (
    AgentProtocolError,
    ConfigurationError,
    EngineError,
    Fenced,
    LogError,
    NonDeterminismError,
    TransientLogError,
)
from engine.executor import Advance, ExecuteTool, Replayer, Services
from engine.guards import Escalation
from engine.policies import Always, Confidence, Gate, Limit, Never, Policy, When
from engine.worker import Worker, WorkerSettings

__all__ = [
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
    "ToolResult",
    "ToolSpec",
    "TransientLogError",
    "When",
    "Worker",
    "WorkerSettings",
]
