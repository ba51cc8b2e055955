"""A run a worker owns: its decoded history, its folded state and its replayer.

A worker keeps these for every live run of its partitions, so a decision resumes the run
without decoding anything (the history is already objects).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.core.executor import Replayer
from engine.core.state import RunState, evolve
from events.envelope import GENESIS_HASH, EventEnvelope, hash_encoded
from events.run_events import RunEventPayload, RunStarted


@dataclass
class LiveRun:
    run_id: str
    partition: int
    history: list[EventEnvelope] = field(default_factory=list)
    state: RunState | None = None
    last_hash: str = GENESIS_HASH
    replayer: Replayer | None = None
    size: int = 0
    """The bytes of its events in the log (for the per-run cap)."""

    @property
    def started(self) -> RunStarted:
        payload = self.history[0].payload
        assert isinstance(payload, RunStarted)
        return payload

    @property
    def next_seq(self) -> int:
        return len(self.history)

    def record(self, envelope: EventEnvelope, encoded: bytes) -> None:
        """Add an event that is (about to be) in the log, with its exact bytes."""
        self.state = evolve(self.state, envelope)
        self.history.append(envelope)
        self.last_hash = hash_encoded(encoded)
        self.size += len(encoded)

    def envelope(
        self,
        payload: RunEventPayload,
        *,
        event_id: str,
        occurred_at_us: int,
        agent: str,
        agent_version: str,
        causation_id: str,
    ) -> EventEnvelope:
        correlation = self.history[0].correlation_id if self.history else causation_id
        return EventEnvelope(
            event_id=event_id,
            run_id=self.run_id,
            seq=self.next_seq,
            occurred_at_us=occurred_at_us,
            agent=agent,
            agent_version=agent_version,
            causation_id=causation_id,
            correlation_id=correlation,
            prev_hash=self.last_hash,
            payload=payload,
        )
