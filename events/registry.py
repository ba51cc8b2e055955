"""What a worker serves, as it tells the deployment (the agents topic; workers write it)."""

from __future__ import annotations

from dataclasses import dataclass

from events.fields import json_field
from events.json import Json


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentRegistered:
    """A worker serves `agent` at `version` (the agents topic is compacted by
    `agent@version`: the newest registration of each stays). `input_schema` is what a run's
    input must satisfy (null: anything); `tools` names each tool the app has, with whether it
    is idempotent: `[{"name": ..., "idempotent": ...}]`."""

    app: str
    agent: str
    version: str
    description: str = ""
    input_schema: Json = json_field(default=None)
    tools: Json = json_field(default=None)
    worker: str = ""
    registered_at_us: int

    @property
    def key(self) -> str:
        return f"{self.agent}@{self.version}"
