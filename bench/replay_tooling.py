"""What the replay tooling costs: one run from an exported file at 10 / 100 / 1,000 / 10,000
events (decoding the file, then re-running it against the code), the decode rate, and
`replay --all` over 10,000 paused runs.

    .venv/bin/python bench/replay_tooling.py            # in process: no servers
    .venv/bin/python bench/replay_tooling.py --with-db  # also the real command on the
                                                        # embedded PostgreSQL (slower to set up)

"re-run" is `engine.core.rerun.rerun` (what `countersign replay` does after reading the file:
fold the state, replay the agent once, compare its end); "replayer only" is a bare
`Replayer` fed and advanced once (what a worker does to resume a run). Figures are the best of
several rounds (the machine is shared); a calibration line says how fast this machine is
today (json.loads of a small object).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.replay import SERVICES, app, build_history
from engine.core.executor import Replayer
from engine.core.rerun import RerunOptions, rerun
from events.codec import Codec
from events.envelope import GENESIS_HASH, EventEnvelope, hash_encoded
from events.history_file import read_history, write_history
from events.run_events import RunEventPayload, RunStarted
from examples import refund
from tests.unit.approvals_sim import Sim

CODEC = Codec()
ROUNDS = 5


def best_ms(fn: Callable[[], object], rounds: int = ROUNDS) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return min(samples)


def chained(run_id: str, agent: str, payloads: list[RunEventPayload]) -> list[bytes]:
    raws: list[bytes] = []
    previous = GENESIS_HASH
    for seq, payload in enumerate(payloads):
        envelope = EventEnvelope(
            event_id=f"{run_id}-{seq}",
            run_id=run_id,
            seq=seq,
            occurred_at_us=1_700_000_000_000_000 + seq,
            agent=agent,
            agent_version="1",
            causation_id="c",
            correlation_id=run_id,
            prev_hash=previous,
            payload=payload,
        )
        raw = CODEC.encode(envelope)
        raws.append(raw)
        previous = hash_encoded(raw)
    return raws


def calibration_us() -> float:
    text = json.dumps({"event_id": "0" * 36, "run_id": "run", "seq": 12, "prev_hash": "0" * 64})
    return best_ms(lambda: [json.loads(text) for _ in range(10_000)]) / 10  # µs per call


def one_run_table() -> None:
    print("one run from an exported file (loop agent: N idempotent tool calls, then a gate)")
    header = f"{'events':>7} {'file KiB':>9} {'read+decode ms':>15} {'decode ev/s':>12}"
    print(f"{header} {'re-run ms':>10} {'no state ms':>12} {'replayer only ms':>17}")
    for target in (10, 100, 1_000, 10_000):
        started, history = build_history(target)
        raws = chained("run-bench", "loop", history)
        data = write_history(CODEC, raws)
        read_ms = best_ms(lambda d=data: read_history(CODEC, d), 3 if target > 1000 else ROUNDS)
        events = list(read_history(CODEC, data).events)
        full, stateless = RerunOptions(explain=0), RerunOptions(explain=0, state=False)
        assert rerun(app, events, full).identical
        rerun_ms = best_ms(lambda e=events, o=full: rerun(app, e, o))
        stateless_ms = best_ms(lambda e=events, o=stateless: rerun(app, e, o))

        def bare(s: RunStarted = started, h: list[RunEventPayload] = history) -> None:
            spec = app.find_agent("loop")
            assert spec is not None
            replayer = Replayer(app, spec, "run-bench", s, SERVICES)
            replayer.feed(h[1:])
            replayer.advance()

        rate = len(raws) / (read_ms / 1000)
        print(
            f"{len(raws):>7} {len(data) / 1024:>9.1f} {read_ms:>15.2f} {rate:>12,.0f}"
            f" {rerun_ms:>10.3f} {stateless_ms:>12.3f} {best_ms(bare):>17.3f}"
        )


def paused_runs(count: int) -> list[list[bytes]]:
    """`count` refund runs paused at their approval (5 events each), as the log holds them."""
    template = Sim(refund.app, "refund", {"order_id": "A-17", "amount": 2400}, run_id="t")
    assert template.run.status == "waiting"
    out = []
    for n in range(count):
        run_id = f"paused-{n:05d}"
        payloads = [replace(p) for p in template.events]
        out.append(chained(run_id, "refund", payloads))
    return out


def replay_all_in_process(runs: list[list[bytes]]) -> None:
    started = time.perf_counter()
    decoded = [[CODEC.decode_event(raw) for raw in raws] for raws in runs]
    decode_s = time.perf_counter() - started
    options = RerunOptions(explain=3, state=False)
    started = time.perf_counter()
    reports = [rerun(refund.app, events, options) for events in decoded]
    rerun_s = time.perf_counter() - started
    assert all(r.identical for r in reports)
    events = sum(len(r) for r in runs)
    print(
        f"replay --all, in process: {len(runs):,} paused runs ({events:,} events): decode "
        f"{decode_s:.2f} s, re-run {rerun_s:.2f} s, total {decode_s + rerun_s:.2f} s"
    )


async def _load_db(runs: list[list[bytes]], env: dict[str, str]) -> None:
    from engine.log.port import Outgoing, Topics, partition_for
    from engine.log.postgres import PostgresLog
    from projections import LiveStore, Projector

    url, prefix = env["COUNTERSIGN_DATABASE_URL"], env["COUNTERSIGN_TOPIC_PREFIX"]
    log = PostgresLog(url, client_id="bench")
    await log.start()
    topics = Topics(prefix)
    await log.ensure_topics(topics, 4)
    batch = [
        Outgoing(topics.runs, f"paused-{n:05d}", raw, partition_for(f"paused-{n:05d}", 4))
        for n, raws in enumerate(runs)
        for raw in raws
    ]
    for start in range(0, len(batch), 5_000):
        await log.publish(batch[start : start + 5_000])
    store = await LiveStore.connect(url, home=env["COUNTERSIGN_PROJECTION_SCHEMA"])
    projector = Projector(log, store, topics.runs, "bench", CODEC)
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    while sum((await projector.lag()).values()):  # noqa: ASYNC110  (a bench polls the lag)
        await asyncio.sleep(0.5)
    stop.set()
    await task
    await store.close()
    await log.close()


def replay_all_with_db(runs: list[list[bytes]]) -> None:
    from countersign import local_pg

    with tempfile.TemporaryDirectory(prefix="countersign-bench-") as tmp:
        url = local_pg.start_embedded(Path(tmp) / "pg")
        prefix = f"bench{os.getpid()}"
        env = {
            **os.environ,
            "COUNTERSIGN_LOG": "postgres",
            "COUNTERSIGN_DATABASE_URL": url,
            "COUNTERSIGN_TOPIC_PREFIX": prefix,
            "COUNTERSIGN_PROJECTION_SCHEMA": f"c_{prefix}",
            "COUNTERSIGN_LOG_LEVEL": "warning",
        }
        try:
            asyncio.run(_load_db(runs, env))
            command = [sys.executable, "-m", "countersign.cli", "replay", "--all"]
            command += ["--status", "waiting", "--app", "examples.refund:app", "--json"]
            samples = []
            for _ in range(3):
                started = time.perf_counter()
                done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
                samples.append(time.perf_counter() - started)
                assert done.returncode == 0, done.stderr[-2000:]
            inner = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
            print(
                f"replay --all, the command on the embedded PostgreSQL: {len(runs):,} paused runs"
                f" in {min(samples):.2f} s wall (the command's own figure {inner:.2f} s,"
                f" median {statistics.median(samples):.2f} s)"
            )
        finally:
            local_pg.stop_embedded(Path(tmp) / "pg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--with-db", action="store_true")
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()
    print(f"calibration: json.loads of a small object takes {calibration_us():.2f} µs here")
    one_run_table()
    runs = paused_runs(args.runs)
    replay_all_in_process(runs)
    if args.with_db:
        replay_all_with_db(runs)


if __name__ == "__main__":
    main()
