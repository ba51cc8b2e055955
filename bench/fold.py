"""Folding a run's state stays O(1) per event however many decisions it holds.

A run waits at one interrupt while N decisions are refused (each a `DecisionRejected`
event recorded in the run's decisions map): the whole history is folded with
`engine.core.state.evolve`, as a restore does. Issue 9's bound: 50,000 refused decisions
on one run fold in under 1 s (before the maps were persistent, 8,000 took 2.1 s and
16,000 10.2 s: each event copied the map).

    .venv/bin/python bench/fold.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.core.state import RunState, evolve
from events.approval import ApprovalRequest
from events.envelope import EventEnvelope
from events.run_events import DecisionRejected, InterruptRaised, RunEventPayload, RunStarted


def _envelope(seq: int, payload: RunEventPayload) -> EventEnvelope:
    return EventEnvelope(
        event_id=f"e{seq}",
        run_id="run",
        seq=seq,
        occurred_at_us=seq,
        agent="a",
        agent_version="1",
        causation_id="c",
        correlation_id="c",
        prev_hash="",
        payload=payload,
    )


def history(refused: int) -> list[EventEnvelope]:
    events: list[RunEventPayload] = [
        RunStarted(input={}, requested_by="alice", command_id="start"),
        InterruptRaised(call=0, interrupt_id="i", request=ApprovalRequest(kind="tool", title="t")),
    ]
    events.extend(
        DecisionRejected(
            interrupt_id="i", decision_id=f"d{n}", kind="approve", decided_by="x", reason="no"
        )
        for n in range(refused)
    )
    return [_envelope(seq, payload) for seq, payload in enumerate(events)]


def fold_seconds(envelopes: list[EventEnvelope]) -> tuple[float, RunState]:
    started = time.perf_counter()
    state: RunState | None = None
    for envelope in envelopes:
        state = evolve(state, envelope)
    assert state is not None
    return time.perf_counter() - started, state


def main() -> None:
    print("refused decisions | fold seconds | µs per event")
    for refused in (8_000, 16_000, 50_000, 200_000):
        envelopes = history(refused)
        seconds, state = min((fold_seconds(envelopes) for _ in range(3)), key=lambda r: r[0])
        assert len(state.decisions) == refused
        print(f"{refused:>17,} | {seconds:>12.3f} | {seconds / len(envelopes) * 1e6:>12.2f}")


if __name__ == "__main__":
    main()
