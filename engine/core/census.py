"""How many runs a worker holds, by what they wait for: the gauges of `/metrics`. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.core.state import RunState

__all__ = ["RunCensus", "census"]


@dataclass(frozen=True, slots=True)
class RunCensus:
    live: int = 0
    """Runs not finished (every other count is a part of these)."""
    running: int = 0
    waiting: int = 0
    """Waiting for a decision (one or more interrupts open)."""
    in_doubt: int = 0
    """Waiting for a person to say whether a tool that may have run did (an in-doubt call)."""
    parked: int = 0
    """Stopped until someone resumes them (non-determinism, an engine error)."""
    quarantined: int = 0
    """Their log breaks their chain: no decision, no tool, until an operator lifts it."""


def census(states: Iterable[RunState | None]) -> RunCensus:
    live = running = waiting = in_doubt = parked = quarantined = 0
    for state in states:
        if state is None or state.terminal:
            continue
        live += 1
        if state.quarantined:
            quarantined += 1
        if state.status == "parked":
            parked += 1
        elif state.status == "waiting":
            waiting += 1
            if any(i.request.kind == "in_doubt" for i in state.open_interrupts.values()):
                in_doubt += 1
        else:
            running += 1
    return RunCensus(live, running, waiting, in_doubt, parked, quarantined)
