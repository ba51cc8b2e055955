"""The workload both sides run, and how many of each kind of run. Pure.

A refund agent: `steps` order lookups (an idempotent tool: 1 in the normal workload), then a
refund over the approval limit, gated for a person; after "approve" the refund runs and the
run completes with its result. No model is called.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.json import JsonObject

AMOUNT = 2400.0
"""Over the 500 limit of both sides' refund tool: every run pauses for approval."""
LIMIT = 500.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Counts:
    warmup: int = 20
    """Runs taken start → resume before anything is timed (connections, group assignment)."""
    runs: int = 200
    """Started at once (runs/s), then all decided at once (resumes/s)."""
    latency_runs: int = 100
    """Started and decided one at a time: resume latency."""
    long_runs: int = 3
    """Runs with `long_steps` lookups before the interrupt, decided one at a time."""
    long_steps: int = 1000

    def __post_init__(self) -> None:
        for name in ("runs", "latency_runs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("warmup", "long_runs", "long_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    @property
    def measured_runs(self) -> int:
        """The normal runs between the two storage readings (bytes per run)."""
        return self.runs + self.latency_runs


def refund_input(order_id: str, steps: int = 1) -> JsonObject:
    return {"order_id": order_id, "amount": AMOUNT, "steps": steps}
