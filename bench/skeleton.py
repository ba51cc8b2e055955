"""The walking skeleton on a real local broker: latency, throughput and log size.

    .venv/bin/python bench/skeleton.py [--runs 200] [--load 2000] [--brokers 3] [--agent credit]

Starts a broker of its own in a temporary directory (or uses COUNTERSIGN_KAFKA_BOOTSTRAP);
with `--brokers 3` a three-node cluster, where topics get replication factor 3 and
min.insync.replicas 2 (every commit waits for two copies),
one worker OS process (`countersign worker --app examples.refund:app`; with `--agent credit`
the same run with an idempotent tool after the interrupt, one transaction a decision:
`bench/agents.py`), and from this
process publishes commands and follows the runs topic (`BENCH_WORKER_ARGS="--health-port 0"`
adds worker flags: with it, the worker keeps Prometheus metrics). Prints:
- decision → run completed: p50 / p99 over `--runs` runs decided one at a time;
- decisions/s through the one worker process with `--load` runs waiting at once;
- log bytes per completed refund run (Avro values, and on-disk bytes of the runs topic);
- the per-event byte budget that drives it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.follower import Follower  # noqa: E402
from bench.stats import percentile  # noqa: E402
from bench.worker_process import signing_home, spawn_worker, stop_worker, worker_env  # noqa: E402
from consumers.publisher import CommandPublisher  # noqa: E402
from countersign import local_kafka  # noqa: E402
from engine.log.kafka import KafkaLog  # noqa: E402
from engine.log.port import Topics  # noqa: E402
from events.codec import Codec  # noqa: E402

APPS = {"refund": "examples.refund:app", "credit": "bench.agents:app"}


async def bench(
    bootstrap: str, runs: int, load: int, state_dir: Path | None, agent: str = "refund"
) -> None:
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    topics, codec = Topics(prefix), Codec()
    event_log = KafkaLog(bootstrap, client_id="bench")
    await event_log.start()
    await event_log.ensure_topics(topics, 4)
    replication = await event_log.replication()
    print(
        f"{len(bootstrap.split(','))} broker(s), replication factor {replication.factor}, "
        f"min.insync.replicas {replication.min_insync}"
    )
    home = Path(tempfile.mkdtemp(prefix="cs-bench-home-"))
    key = signing_home(home)  # workers on Kafka refuse unsigned commands
    settings = {
        "LOG": "kafka",
        "KAFKA_BOOTSTRAP": bootstrap,
        "TOPIC_PREFIX": prefix,
        "WORKER_GROUP": f"{prefix}.workers",
    }
    worker = spawn_worker(  # started once, before any timing
        [APPS[agent]],
        worker_env(home, settings),
        os.environ.get("BENCH_WORKER_LOG", os.devnull),
        *os.environ.get("BENCH_WORKER_ARGS", "").split(),  # e.g. "--health-port 0"
    )
    follower = Follower(event_log, topics, codec)
    await follower.start(4)
    publisher = CommandPublisher(event_log, topics, codec, key=key)
    try:
        latencies = []
        for i in range(runs):
            run_id = await publisher.start_run(
                agent, {"order_id": f"L-{i}", "amount": 2400}, requested_by="bench"
            )
            await follower.wait(lambda: run_id in follower.interrupts)  # noqa: B023 (awaited here)
            sent = time.perf_counter()
            await publisher.submit_decision(
                run_id, follower.interrupts[run_id], "approve", decided_by="alice"
            )
            await follower.wait(lambda: run_id in follower.completed)  # noqa: B023 (awaited here)
            latencies.append((follower.completed[run_id] - sent) * 1000)
        print(
            f"decision -> completed over {runs} runs, one at a time: "
            f"p50 {statistics.median(latencies):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms,"
            f" max {max(latencies):.1f} ms"
        )

        load_ids = [f"load-{uuid.uuid4()}" for _ in range(load)]
        for chunk in range(0, load, 500):
            await asyncio.gather(
                *(
                    publisher.start_run(
                        agent, {"order_id": r, "amount": 2400}, requested_by="bench", run_id=r
                    )
                    for r in load_ids[chunk : chunk + 500]
                )
            )
        await follower.wait(lambda: all(r in follower.interrupts for r in load_ids), 600)
        started = time.perf_counter()
        for chunk in range(0, load, 500):
            await asyncio.gather(
                *(
                    publisher.submit_decision(
                        r, follower.interrupts[r], "approve", decided_by="alice"
                    )
                    for r in load_ids[chunk : chunk + 500]
                )
            )
        await follower.wait(lambda: all(r in follower.completed for r in load_ids), 600)
        seconds = time.perf_counter() - started
        print(
            f"{load} decisions with {load} runs waiting: {seconds:.2f} s, "
            f"{load / seconds:.0f} decisions/s through one worker process"
        )

        done = [r for r in follower.completed]
        per_run = statistics.mean(follower.value_bytes[r] for r in done)
        print(
            f"log bytes per completed refund run: {per_run:.0f} B of Avro values "
            f"({per_run / 9:.0f} B per event, 9 events)"
        )
        if state_dir is not None:
            node = local_kafka.node(state_dir, 1)  # one replica's copy
            data = node.data_dir
            disk = sum(
                f.stat().st_size for d in data.glob(f"{prefix}.runs-*") for f in d.glob("*.log")
            )
            print(
                f"on-disk runs topic: {disk / len(done):.0f} B per completed run "
                "(record batches, headers, transaction markers)"
            )
    finally:
        stop_worker(worker)
        await follower.stop()
        await event_log.close()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--load", type=int, default=2000)
    parser.add_argument("--brokers", type=int, default=1, choices=(1, 3))
    parser.add_argument("--agent", default="refund", choices=sorted(APPS))
    args = parser.parse_args()
    bootstrap = os.environ.get("COUNTERSIGN_KAFKA_BOOTSTRAP")
    state_dir = None
    if not bootstrap:
        state_dir = Path(tempfile.mkdtemp(prefix="cs-bench-kafka-"))
        bootstrap = local_kafka.start(state_dir, brokers=args.brokers).bootstrap
    try:
        asyncio.run(bench(bootstrap, args.runs, args.load, state_dir, args.agent))
    finally:
        if state_dir is not None:
            local_kafka.stop(state_dir)
            shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
