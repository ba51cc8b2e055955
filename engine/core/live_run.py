"""A run a worker owns: its history, its folded state and its replayer. Pure.

A worker keeps these for every live run of its partitions, so a decision resumes the run
without decoding anything (the history is already objects). A worker that lets waiting
runs wait (`WorkerSettings.release_waiting`) keeps each event's exact bytes as well, and
packs the history of a run that waits for a person into those bytes (`engine.core.packed`):
the next event recorded, or a replay, unpacks it (one decode of its events).
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.core.executor import Replayer
from engine.core.packed import Decode, PackedHistory
from engine.core.state import RunState, evolve
from events.envelope import EventEnvelope, chain_digest
from events.run_events import RunEventPayload, RunStarted


class LiveRun:
    __slots__ = (
        "_digest",
        "_encoded",
        "_history",
        "partition",
        "replayer",
        "run_id",
        "size",
        "state",
    )

    def __init__(self, run_id: str, partition: int) -> None:
        self.run_id = run_id
        self.partition = partition
        self.state: RunState | None = None
        self.replayer: Replayer | None = None
        self.size = 0
        """The bytes of its events in the log (for the per-run cap)."""
        self._history: list[EventEnvelope] | PackedHistory = []
        self._encoded: list[bytes] | None = None
        """Each event's exact bytes while every event's were kept (`record(keep=True)`)."""
        self._digest = b""
        """The chain hash of the last event, raw (the genesis hash for none)."""

    @property
    def history(self) -> list[EventEnvelope]:
        """The decoded events; a packed history is unpacked first (the run moves on)."""
        if isinstance(self._history, PackedHistory):
            self._history, self._encoded = self._history.unpack()
        return self._history

    @property
    def recorded(self) -> Sequence[EventEnvelope]:
        """The events, to read without unpacking a packed history."""
        return self._history

    @property
    def packed(self) -> bool:
        return isinstance(self._history, PackedHistory)

    @property
    def last_hash(self) -> str:
        return self._digest.hex()

    @property
    def started(self) -> RunStarted:
        payload = self._history[0].payload
        assert isinstance(payload, RunStarted)
        return payload

    @property
    def next_seq(self) -> int:
        return len(self._history)

    def record(self, envelope: EventEnvelope, encoded: bytes, *, keep: bool = False) -> None:
        """Add an event that is (about to be) in the log, with its exact bytes; `keep`: keep
        them to pack the history with (they must decode to `envelope`)."""
        history = self.history
        self.state = evolve(self.state, envelope)
        history.append(envelope)
        self._digest = chain_digest(encoded)
        self.size += len(encoded)
        if not keep:
            self._encoded = None
        elif len(history) == 1:
            self._encoded = [encoded]
        elif self._encoded is not None:
            self._encoded.append(encoded)

    def replace_history(self, events: list[EventEnvelope]) -> None:
        """Hold `events` instead of the decoded history (a restored run's sealed values
        opened); their bytes are no longer theirs unless nothing changed."""
        if events != self.history:
            self._encoded = None
        self._history = events

    def pack(self, decode: Decode) -> bool:
        """Hold the history as its events' bytes, if every event's were kept."""
        if isinstance(self._history, PackedHistory):
            return True
        encoded = self._encoded
        if not encoded or len(encoded) != len(self._history):
            return False
        self._history = PackedHistory(encoded, decode)
        self._encoded = None
        return True

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
        history = self.history
        correlation = history[0].correlation_id if history else causation_id
        return EventEnvelope(
            event_id=event_id,
            run_id=self.run_id,
            seq=len(history),
            occurred_at_us=occurred_at_us,
            agent=agent,
            agent_version=agent_version,
            causation_id=causation_id,
            correlation_id=correlation,
            prev_hash=self.last_hash,
            payload=payload,
        )
