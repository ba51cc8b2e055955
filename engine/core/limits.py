"""Per-run caps: how much one run may hold before the engine refuses to let it grow. Pure.

A worker holds every live run decoded in memory and rebuilds runs by replaying them, so a run
that grows without bound (an agent stuck in a loop, or a sender flooding it with decisions)
would slow every restore and could exhaust a worker. The defaults are far above any run we
have seen (tens of events) and far below what hurts (replaying 100,000 events takes about a
second; 32 MiB of events is about 100 MiB held decoded):

- `max_events`, `max_bytes`: a run that reaches either fails (`RunFailed`, error type
  `RunLimitExceeded`); a decision for a run at its cap is refused with an outcome only.
- `max_open_interrupts`: an agent that raises more at once fails the same way.
- `max_held`: decisions held for interrupts not raised yet; more are refused.
- `max_refusals`: refused decisions recorded as `DecisionRejected` events; past it a refusal
  is an outcome on the approvals topic only, so a flood of bad decisions cannot grow the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.core.state import RunState

__all__ = ["DEFAULT_LIMITS", "LIMIT_EXCEEDED", "RunLimits", "growth_refusal"]

LIMIT_EXCEEDED = "RunLimitExceeded"


@dataclass(frozen=True, kw_only=True, slots=True)
class RunLimits:
    max_events: int = 100_000
    max_bytes: int = 32 * 1024 * 1024
    max_open_interrupts: int = 1_000
    max_held: int = 100
    max_refusals: int = 1_000


DEFAULT_LIMITS = RunLimits()


def growth_refusal(
    state: RunState, run_bytes: int, new_events: int, new_interrupts: int, limits: RunLimits
) -> str:
    """Why the run may not take `new_events` more events (or "" when it may). One event is
    always left free for the `RunFailed` that ends a run at its cap."""
    if state.next_seq + new_events >= limits.max_events:
        return f"the run reached its limit of {limits.max_events:,} events"
    if run_bytes >= limits.max_bytes:
        return f"the run reached its limit of {limits.max_bytes:,} bytes of events"
    if len(state.open_interrupts) + new_interrupts > limits.max_open_interrupts:
        return f"the run would hold more than {limits.max_open_interrupts:,} open interrupts"
    return ""
