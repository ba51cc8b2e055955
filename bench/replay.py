"""How long rebuilding a run by replay takes, for histories of 10, 100 and 1,000 events.

The worker keeps live runs' histories decoded, so a resume replays objects: this measures
exactly that (new Replayer + feed + advance to the interrupt), and separately the cost of
decoding the same history from Avro (what a restore on another worker pays once).

    .venv/bin/python bench/replay.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.agent.app import App
from engine.agent.context import RunContext
from engine.agent.policies import Always
from engine.core.executor import Replayer, Services
from events.codec import Codec
from events.envelope import EventEnvelope
from events.json import Json, JsonObject
from events.run_events import RunEventPayload, RunStarted, ToolCallCompleted

app = App("bench")


@app.tool(idempotent=True)
async def step(i: int) -> Json:
    return {"i": i, "ok": True}


@app.tool(policy=Always())
async def finish(total: int) -> Json:
    return {"total": total}


@app.agent("loop", version="1")
async def loop_agent(ctx: RunContext, input: JsonObject) -> Json:
    n = int(input["steps"])  # type: ignore[arg-type]
    total = 0
    for i in range(n):
        result = await ctx.tool("step", {"i": i})
        total += 1 if result.ok else 0
    done = await ctx.tool("finish", {"total": total})
    return {"done": done.value}


SERVICES = Services(
    clock_us=lambda: 1_700_000_000_000_000, new_uuid=lambda: "u", random=lambda: 0.5
)


def build_history(events: int) -> tuple[RunStarted, list[RunEventPayload]]:
    steps = max(0, (events - 2) // 2)
    started = RunStarted(input={"steps": steps}, requested_by="bench", command_id="c")
    spec = app.find_agent("loop")
    assert spec is not None
    replayer = Replayer(app, spec, "run-bench", started, SERVICES)
    history: list[RunEventPayload] = [started]
    while True:
        advance = replayer.advance()
        history.extend(advance.events)
        if not advance.effects:
            break
        done = [
            ToolCallCompleted(call=fx.call, result={"i": fx.call, "ok": True})
            for fx in advance.effects
        ]
        replayer.feed(done)
        history.extend(done)
    return started, history


def rebuild(started: RunStarted, history: list[RunEventPayload]) -> None:
    spec = app.find_agent("loop")
    assert spec is not None
    replayer = Replayer(app, spec, "run-bench", started, SERVICES)
    replayer.feed(history)
    advance = replayer.advance()
    assert not advance.events, "rebuild must not append anything"
    assert not advance.effects, "rebuild must not run anything"


def envelopes(history: list[RunEventPayload]) -> list[bytes]:
    codec = Codec()
    return [
        codec.encode(
            EventEnvelope(
                event_id="00000000-0000-0000-0000-000000000000",
                run_id="run-bench",
                seq=i,
                occurred_at_us=1_700_000_000_000_000,
                agent="loop",
                agent_version="1",
                causation_id="c",
                correlation_id="c",
                prev_hash="0" * 64,
                payload=payload,
            )
        )
        for i, payload in enumerate(history)
    ]


def measure(fn: object, repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


def main() -> None:
    codec = Codec()
    print("rebuild a run by replay (new Replayer + feed + advance to its open interrupt)")
    print(f"{'events':>8} {'replay p50 ms':>14} {'replay max ms':>14} {'decode ms':>10}")
    for target in (10, 100, 1000):
        started, history = build_history(target)
        median, worst = measure(lambda s=started, h=history: rebuild(s, h), 50)
        blobs = envelopes(history)
        decode_median, _ = measure(lambda b=blobs: [codec.decode(x) for x in b], 10)
        print(f"{len(history):>8} {median:>14.3f} {worst:>14.3f} {decode_median:>10.3f}")


if __name__ == "__main__":
    main()
