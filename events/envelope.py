"""The envelope around every run event: identity, position, causality and the hash chain."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from events.run_events import RunEventPayload

GENESIS_HASH = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class EventEnvelope:
    """One event of one run.

    `seq` is contiguous from 0 within a run; `prev_hash` is the hash of the event at seq-1
    (empty for seq 0), so a run's history can be verified end to end. `occurred_at_us` is
    microseconds since the Unix epoch, UTC.
    """

    event_id: str
    run_id: str
    seq: int
    occurred_at_us: int
    agent: str
    agent_version: str
    causation_id: str
    correlation_id: str
    prev_hash: str
    payload: RunEventPayload

    @property
    def type(self) -> str:
        return type(self.payload).__name__


def hash_encoded(encoded: bytes) -> str:
    """The chain hash of an event is the sha256 of its bytes as written to the log.

    The bytes contain `prev_hash`, so each hash covers the whole history before it.
    """
    return chain_digest(encoded).hex()


def chain_digest(encoded: bytes) -> bytes:
    """The chain hash of an event, raw (32 bytes): `hash_encoded` is its hex."""
    return hashlib.sha256(encoded).digest()
