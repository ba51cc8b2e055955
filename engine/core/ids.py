"""Deterministic ids of a run's interrupts and tool calls, so replay and any worker (and the
judging of decisions) derive the same ones. Pure."""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("6f1d2c1e-9c55-4c3e-9f0e-2b1f5d0c7a11")


def interrupt_id_for(run_id: str, call: int, purpose: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{run_id}/{call}/{purpose}"))


def idempotency_key_for(run_id: str, call: int) -> str:
    return f"{run_id}:{call}"
