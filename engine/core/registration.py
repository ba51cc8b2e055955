"""What a worker tells the deployment it serves: one registration per agent version. Pure."""

from __future__ import annotations

from engine.agent.app import App
from events.json import Json
from events.limits import clip
from events.registry import AgentRegistered

__all__ = ["registrations"]

_DESCRIPTION_CHARS = 2_000


def registrations(app: App, *, worker: str, at_us: int) -> list[AgentRegistered]:
    tools: Json = [{"name": t.name, "idempotent": t.idempotent} for t in app.tools]
    return [
        AgentRegistered(
            app=app.name,
            agent=spec.name,
            version=spec.version,
            description=clip(spec.description.strip(), _DESCRIPTION_CHARS),
            input_schema=spec.input_schema,
            tools=tools,
            worker=worker,
            registered_at_us=at_us,
        )
        for spec in app.agents
    ]
