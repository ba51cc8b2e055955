"""`countersign replay --pdb / --break SEQ`: the debugger, in the agent's own frame (I/O: the
terminal). The re-run hands over the agent's frame (`engine.core.rerun.Pause`); pdb starts
there, skipping the engine's own frames, so stepping stays in agent code and breakpoints set
in the agent's files work for the rest of the replay."""

from __future__ import annotations

import pdb
import sys
from collections.abc import Callable, Sequence
from typing import IO

from engine.core.positions import call_of, interrupt_owners
from engine.core.rerun import Pause
from events.envelope import EventEnvelope

__all__ = ["ENGINE_MODULES", "breakpoint_calls", "debugger"]

ENGINE_MODULES = ("engine.*", "countersign.*", "events.*", "asyncio.*")
"""Frames the debugger never stops in: the engine's, not the agent's."""

_WHY = {
    "start": "before the agent starts",
    "result": "the agent has the result of call {call}",
    "waits": "the agent waits at call {call} (its result is not in the history)",
    "diverges": "call {call} diverges from the history (the exception is raised next)",
}


def breakpoint_calls(history: Sequence[EventEnvelope], seqs: Sequence[int]) -> frozenset[int]:
    """The calls to stop at for events `seqs`: each event's call, the start for seq 0, or the
    call before it for an event about no call (a run's end, a cancellation)."""
    payloads = [e.payload for e in history]
    owners = interrupt_owners(payloads)
    calls: set[int] = set()
    for seq in seqs:
        if not 0 <= seq < len(history):
            raise ValueError(f"there is no seq {seq}: the run has {len(history)} events")
        before = [call_of(p, owners) for p in payloads[: seq + 1]]
        known = [c for c in before if c is not None]
        calls.add(known[-1] if known else -1)
    return frozenset(calls)


def debugger(
    stdin: IO[str] | None = None, stdout: IO[str] | None = None
) -> Callable[[Pause], None]:
    """A `pause` callback that opens pdb in the paused agent frame."""

    def pause(paused: Pause) -> None:
        out = stdout or sys.stdout
        why = _WHY[paused.why].format(call=paused.call)
        print(f"--- countersign replay: {why} ---", file=out, flush=True)
        session = pdb.Pdb(stdin=stdin, stdout=stdout, skip=list(ENGINE_MODULES))
        if stdin is not None:
            session.use_rawinput = False
        session.set_trace(paused.frame)

    return pause
