"""A refund run's events up to its approval, encoded as a worker writes them (for benches).

The refund agent (`examples/refund.py`) is driven by the replayer with its tools run in
turn, each event enveloped, encoded and recorded on a `LiveRun` as the worker's step does:
five events (started, the lookup scheduled and completed, the gate, the interrupt) and
their exact bytes.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.core.executor import Replayer, Services
from engine.core.live_run import LiveRun
from events.codec import Codec
from events.run_events import RunEventPayload, RunStarted, ToolCallCompleted
from examples.refund import app

SERVICES = Services(
    clock_us=lambda: 1_700_000_000_000_000,
    new_uuid=lambda: "5c0c2c9e-0000-4000-8000-000000000000",
    random=lambda: 0.5,
)


def refund_events(codec: Codec) -> tuple[LiveRun, list[bytes]]:
    """The run, waiting for its approval, and its events' bytes."""
    run = LiveRun("0ad40425-5637-4691-906f-ce26c7348d60", 0)
    encoded: list[bytes] = []

    def record(payload: RunEventPayload) -> None:
        envelope = run.envelope(
            payload,
            event_id=SERVICES.new_uuid(),
            occurred_at_us=SERVICES.clock_us(),
            agent="refund",
            agent_version="1",
            causation_id=run.run_id,
        )
        encoded.append(codec.encode(envelope))
        run.record(envelope, encoded[-1], keep=True)

    started = RunStarted(
        input={"order_id": "o-1", "amount": 2400}, requested_by="bench", command_id="c-1"
    )
    record(started)
    spec = app.find_agent("refund")
    assert spec is not None
    replayer = Replayer(app, spec, run.run_id, started, SERVICES)
    while True:
        advance = replayer.advance()
        for event in advance.events:
            record(event)
        if not advance.effects:
            return run, encoded
        for effect in advance.effects:
            tool = app.get_tool(effect.tool)
            assert tool is not None
            result = asyncio.run(tool.invoke(effect.args, effect.idempotency_key))
            done = ToolCallCompleted(call=effect.call, result=result)
            replayer.feed([done])
            record(done)


if __name__ == "__main__":
    codec = Codec()
    _, encoded = refund_events(codec)
    print([codec.decode_event(e).type for e in encoded], sum(map(len, encoded)), "bytes")
