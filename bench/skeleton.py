"""The walking skeleton on a real local broker: latency, throughput and log size.

    .venv/bin/python bench/skeleton.py [--runs 200] [--load 2000] [--brokers 3] [--agent credit]
    .venv/bin/python bench/skeleton.py --warmup 150 --gap-ms 50   # warm broker; decided 50 ms after
    .venv/bin/python bench/skeleton.py --workers 4 --partitions 4 --runs 0   # 1 vs 4 workers

Starts a broker of its own in a temporary directory (or uses COUNTERSIGN_KAFKA_BOOTSTRAP);
with `--brokers 3` a three-node cluster, where topics get replication factor 3 and
min.insync.replicas 2 (every commit waits for two copies), an embedded PostgreSQL (the
workers' subject keys) and a home with a signing key the workers trust, then worker OS
processes in one consumer group (`countersign worker --app examples.refund:app`, each with
a probe port; with `--agent credit` the same run with an idempotent tool after the
interrupt, one transaction a decision: `bench/agents.py`). From this process it publishes
signed commands and follows the runs topic (`BENCH_WORKER_ARGS` adds worker flags). Waits
until every worker is ready (in the group, partitions assigned and restored), then prints:
- decision → run completed: p50 / p99 over `--runs` runs decided one at a time;
- decisions/s through the worker processes with `--load` runs waiting at once, the CPU
  seconds each process tree used meanwhile (workers, broker, PostgreSQL, this process), and
  whether every run completed exactly once (RunCompleted counted per run in the log);
- log bytes per completed refund run (Avro values, and on-disk bytes of the runs topic);
- with `--workers N` (N > 1), the throughput round is run with one worker and then with N,
  each on fresh topics of `--partitions` partitions, and the ratio is printed.
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
from collections.abc import Sequence
from functools import partial
from operator import contains
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.broker import kafka  # noqa: E402
from bench.follower import Follower  # noqa: E402
from bench.processes import CpuMeter, Fleet, kafka_env, machine_line, postmaster_pid  # noqa: E402
from bench.stats import percentile  # noqa: E402
from bench.tally import completions, cpu_lines, scaling_line  # noqa: E402
from consumers.publisher import CommandPublisher  # noqa: E402
from countersign import local_kafka, local_pg  # noqa: E402
from engine.log.kafka import KafkaLog  # noqa: E402
from engine.log.port import Topics  # noqa: E402
from engine.trust.jws import SigningKey  # noqa: E402
from engine.trust.keys import create_key  # noqa: E402
from events.codec import Codec  # noqa: E402
from events.run_events import RunCompleted  # noqa: E402

APPS = {"refund": "examples.refund:app", "credit": "bench.agents:app"}


class Machine:
    """What every round shares: the broker, PostgreSQL, the home and its signing key."""

    def __init__(self, event_log: KafkaLog, bootstrap: str, home: Path, database_url: str) -> None:
        self.log = event_log
        self.bootstrap = bootstrap
        self.home = home
        self.database_url = database_url
        self.key: SigningKey = create_key(home, issuer="bench", default=True).key
        self.broker_pids: tuple[int, ...] = ()

    def meter(self, fleet: Fleet) -> CpuMeter:
        postgres = postmaster_pid(self.home / "pg")
        return CpuMeter(
            {
                "workers": fleet.pids,
                "broker": self.broker_pids,
                "postgres": [postgres] if postgres else [],
            }
        )


class Round:
    """Fresh topics of `partitions` partitions, `workers` worker processes in one group, the
    follower and a signing publisher."""

    def __init__(self, machine: Machine, agent: str, workers: int, partitions: int) -> None:
        self.machine = machine
        self.agent = agent
        self.workers = workers
        self.partitions = partitions
        self.prefix = f"bench{uuid.uuid4().hex[:6]}"
        self.topics, self.codec = Topics(self.prefix), Codec()
        self.follower = Follower(machine.log, self.topics, self.codec)
        self.publisher = CommandPublisher(machine.log, self.topics, self.codec, key=machine.key)
        self.fleet: Fleet | None = None

    async def up(self) -> Fleet:
        await self.machine.log.ensure_topics(self.topics, self.partitions)
        env = kafka_env(
            self.machine.bootstrap,
            self.prefix,
            self.partitions,
            COUNTERSIGN_HOME=str(self.machine.home),
            COUNTERSIGN_DATABASE_URL=self.machine.database_url,
            COUNTERSIGN_WORKER_GROUP=f"{self.prefix}.workers",
        )
        extra = os.environ.get("BENCH_WORKER_ARGS", "").split()
        self.fleet = Fleet(["worker", "--app", APPS[self.agent], *extra], env, self.workers)
        await self.follower.start(self.partitions)
        seconds = await self.fleet.ready()
        print(f"{self.workers} worker process(es) on {self.partitions} partitions, "
              f"all ready after {seconds:.1f} s")  # fmt: skip
        return self.fleet

    async def down(self) -> None:
        if self.fleet is not None:
            self.fleet.end()
        await self.follower.stop()

    async def start_runs(self, run_ids: Sequence[str]) -> None:
        for chunk in range(0, len(run_ids), 500):
            await asyncio.gather(
                *(
                    self.publisher.start_run(
                        self.agent, {"order_id": r, "amount": 2400}, requested_by="bench", run_id=r
                    )
                    for r in run_ids[chunk : chunk + 500]
                )
            )

    async def decide(self, run_ids: Sequence[str]) -> None:
        interrupts = self.follower.interrupts
        for chunk in range(0, len(run_ids), 500):
            await asyncio.gather(
                *(
                    self.publisher.submit_decision(r, interrupts[r], "approve", decided_by="alice")
                    for r in run_ids[chunk : chunk + 500]
                )
            )

    async def completed_in_log(self) -> list[str]:
        """The run id of every RunCompleted in the runs topic, read again from the start."""
        found = []
        for partition in range(self.partitions):
            async for record in self.machine.log.read(self.topics.runs, partition, 0):
                event = self.codec.decode_event(record.value)
                if isinstance(event.payload, RunCompleted):
                    found.append(event.run_id)
        return found


async def latency(stand: Round, runs: int, warmup: int = 0, gap_ms: float = 0) -> None:
    """`warmup` decisions first, not counted (a broker just started compiles its request
    paths meanwhile); each decision `gap_ms` after its request was seen (a person reads it
    first; 0: at once, as the issue's figures were taken)."""
    follower, latencies = stand.follower, []
    for i in range(warmup + runs):
        run_id = await stand.publisher.start_run(
            stand.agent, {"order_id": f"L-{i}", "amount": 2400}, requested_by="bench"
        )
        await follower.wait(partial(contains, follower.interrupts, run_id))
        if gap_ms:
            await asyncio.sleep(gap_ms / 1000)
        sent = time.perf_counter()
        await stand.publisher.submit_decision(
            run_id, follower.interrupts[run_id], "approve", decided_by="alice"
        )
        await follower.wait(partial(contains, follower.completed, run_id))
        if i >= warmup:
            latencies.append((follower.completed[run_id] - sent) * 1000)
    after = f" after {warmup} uncounted" if warmup else ""
    wait = f", each {gap_ms:g} ms after its request was seen" if gap_ms else ""
    print(
        f"decision -> completed over {runs} runs, one at a time{after}{wait}: "
        f"p50 {statistics.median(latencies):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms,"
        f" max {max(latencies):.1f} ms"
    )


async def throughput(stand: Round, fleet: Fleet, load: int) -> float:
    """Decisions/s with `load` runs waiting; prints CPU use and the exactly-once check."""
    follower = stand.follower
    load_ids = [f"load-{uuid.uuid4()}" for _ in range(load)]
    await stand.start_runs(load_ids)
    await follower.wait(lambda: all(r in follower.interrupts for r in load_ids), 600)
    meter = stand.machine.meter(fleet)
    meter.start()
    started = time.perf_counter()
    await stand.decide(load_ids)
    finished = True
    try:
        await follower.wait(lambda: all(r in follower.completed for r in load_ids), 300)
    except TimeoutError:
        finished = False
    seconds = time.perf_counter() - started
    used = meter.stop()
    done = sum(r in follower.completed for r in load_ids)
    rate = done / seconds
    print(
        f"{load} decisions with {load} runs waiting: {seconds:.2f} s, {rate:.0f} decisions/s "
        f"through {stand.workers} worker process(es)"
        + ("" if finished else f" (TIMED OUT: {done} of {load} seen completed)")
    )
    print(f"  CPU meanwhile (µs per decision; cores kept busy); {machine_line()}:")
    print("\n".join(cpu_lines(used, done, "decision", seconds)))
    fleet.end()  # nothing more is written: the log can be counted
    tally = completions(load_ids, [r for r in await stand.completed_in_log() if r in load_ids])
    print(f"  {tally.summary(load)}")
    return rate


async def log_bytes(stand: Round, state_dir: Path | None) -> None:
    done = list(stand.follower.completed)
    per_run = statistics.mean(stand.follower.value_bytes[r] for r in done)
    print(
        f"log bytes per completed refund run: {per_run:.0f} B of Avro values "
        f"({per_run / 9:.0f} B per event, 9 events)"
    )
    if state_dir is not None:
        node = local_kafka.node(state_dir, 1)  # one replica's copy
        data = node.data_dir
        disk = sum(
            f.stat().st_size for d in data.glob(f"{stand.prefix}.runs-*") for f in d.glob("*.log")
        )
        print(
            f"on-disk runs topic: {disk / len(done):.0f} B per completed run "
            "(record batches, headers, transaction markers)"
        )


async def bench(machine: Machine, args: argparse.Namespace, state_dir: Path | None) -> None:
    replication = await machine.log.replication()
    print(
        f"{len(machine.bootstrap.split(','))} broker(s), replication factor {replication.factor}, "
        f"min.insync.replicas {replication.min_insync}"
    )
    rates = []
    for workers in sorted({1, args.workers}):
        stand = Round(machine, args.agent, workers, args.partitions)
        try:
            fleet = await stand.up()
            if workers == 1 and args.runs:
                await latency(stand, args.runs, args.warmup, args.gap_ms)
            rates.append(await throughput(stand, fleet, args.load))
            if workers == 1:
                await log_bytes(stand, state_dir)
        finally:
            await stand.down()
    if args.workers > 1:
        print(scaling_line("decisions/s", rates[0], rates[-1], args.workers, target=3.5))


async def on_machine(
    bootstrap: str, broker_pids: tuple[int, ...], args: argparse.Namespace, state_dir: Path | None
) -> None:
    home = Path(tempfile.mkdtemp(prefix="cs-bench-home-"))
    url = await asyncio.to_thread(local_pg.start_embedded, home / "pg")
    event_log = KafkaLog(bootstrap, client_id="bench")
    await event_log.start()
    try:
        machine = Machine(event_log, bootstrap, home, url)
        machine.broker_pids = broker_pids
        await bench(machine, args, state_dir)
    finally:
        await event_log.close()
        await asyncio.to_thread(local_pg.stop_embedded, home / "pg")
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument(
        "--warmup", type=int, default=0, help="latency round: decisions first, not counted"
    )
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=0,
        help="latency round: decide this long after the request is seen (default: at once)",
    )
    parser.add_argument("--load", type=int, default=2000)
    parser.add_argument("--brokers", type=int, default=1, choices=(1, 3))
    parser.add_argument("--agent", default="refund", choices=sorted(APPS))
    parser.add_argument("--workers", type=int, default=1, help="compare 1 with N processes")
    parser.add_argument("--partitions", type=int, default=4, help="of runs and commands")
    args = parser.parse_args()
    if not 1 <= args.workers <= args.partitions:
        parser.error("--workers must be between 1 and --partitions (a spare worker idles)")
    with kafka(args.brokers) as (bootstrap, state_dir):
        started = local_kafka.status(state_dir) if state_dir is not None else None
        broker_pids = started.pids if started is not None else ()
        asyncio.run(on_machine(bootstrap, broker_pids, args, state_dir))


if __name__ == "__main__":
    main()
