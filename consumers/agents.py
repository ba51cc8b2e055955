"""The agents a deployment serves, as its workers registered them (I/O).

    agents = Agents(event_log, topics, codec)
    for registration in await agents.all():       # newest registration of each agent@version
        print(registration.agent, registration.version, registration.worker)
    registration = await agents.check(StartRun(...))  # raises UnknownAgent, InvalidInput

Every worker publishes one `AgentRegistered` per agent version it serves to the compacted
`<prefix>.agents` topic when it starts. `countersign start` checks a run against it before
publishing: an agent (or pinned version) no worker serves is refused, and an input that
breaks the agent's `input_schema` is refused with every reason. A record of the topic that is
not a registration is skipped (only workers write it; the topic's ACL says so).
"""

from __future__ import annotations

import asyncio
import time

from engine.agent.argspec import validate
from engine.errors import ConfigurationError
from engine.log.port import EventLog, Topics
from events.codec import Codec
from events.commands import StartRun
from events.errors import DecodeError
from events.registry import AgentRegistered

__all__ = ["Agents", "InvalidInput", "UnknownAgent"]


class UnknownAgent(ConfigurationError):
    """No worker of this deployment serves the agent (or the pinned version)."""


class InvalidInput(ConfigurationError):
    """The run's input breaks the agent's input schema."""


class Agents:
    def __init__(self, event_log: EventLog, topics: Topics, codec: Codec) -> None:
        self._log = event_log
        self._topics = topics
        self._codec = codec

    async def all(self) -> list[AgentRegistered]:
        """The newest registration of each agent@version, by agent then version."""
        newest: dict[str, AgentRegistered] = {}
        for partition in range(await self._log.partition_count(self._topics.agents)):
            async for record in self._log.read(self._topics.agents, partition, 0):
                try:
                    registration = self._codec.decode_registration(record.value, record.headers)
                except DecodeError:
                    continue
                known = newest.get(registration.key)
                if known is None or registration.registered_at_us >= known.registered_at_us:
                    newest[registration.key] = registration
        return sorted(newest.values(), key=lambda r: (r.agent, _version_key(r.version)))

    async def check(self, start: StartRun, *, patience_s: float = 0.0) -> AgentRegistered:
        """The registration `start` would run under; refuses what no worker would take. An
        agent not registered yet is looked for again for `patience_s` (a worker just started
        registers within a moment)."""
        deadline = time.monotonic() + patience_s
        while True:
            known = await self.all()
            served = [r for r in known if r.agent == start.agent]
            if start.agent_version:
                served = [r for r in served if r.version == start.agent_version]
            if served:
                break
            if time.monotonic() >= deadline:
                raise UnknownAgent(_unknown(start, known))
            await asyncio.sleep(0.5)
        registration = served[-1]  # the newest version, as a worker picks it
        errors = validate(start.input, registration.input_schema, "input")
        if errors:
            raise InvalidInput(
                f"{start.agent}@{registration.version}: the input does not fit its schema: "
                + "; ".join(errors)
            )
        return registration


def _unknown(start: StartRun, known: list[AgentRegistered]) -> str:
    wanted = start.agent + (f" version {start.agent_version}" if start.agent_version else "")
    served = ", ".join(r.key for r in known) or "none: is a worker running?"
    return f"no worker serves agent {wanted} (served: {served}); --force sends it anyway"


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in version.split("."))
