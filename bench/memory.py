"""Memory a worker holds per waiting run: history, state, replayer and suspended coroutine.

One worker (in-process, on the in-memory log) starts `--runs` refund runs, which each wait
for a person's approval; tracemalloc counts what the worker's run table holds for them (the
Python heap freed when the table lets them go), divided by the runs. The log's own copy of
the events is not counted: it is the broker's memory, not the worker's.

    .venv/bin/python bench/memory.py [--runs 10000] [--partitions 4] [--release-waiting]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import tracemalloc
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from consumers.publisher import CommandPublisher
from engine.log.memory import MemoryLog
from engine.log.port import Topics
from engine.runtime.worker import Worker, WorkerSettings
from events.codec import Codec
from examples.refund import app


def waiting(worker: Worker) -> int:
    table = worker._table
    return sum(
        1
        for _, runs in table.by_partition()
        for run in runs.values()
        if run.state is not None and run.state.open_interrupts
    )


async def until(predicate: object, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("the worker did not get there in time")
        await asyncio.sleep(0.05)


async def bench(runs: int, partitions: int, release: bool) -> None:
    event_log = MemoryLog(default_partitions=partitions)
    topics = Topics(f"mem{uuid.uuid4().hex[:6]}")
    await event_log.ensure_topics(topics, partitions)
    codec = Codec()
    worker = Worker(
        app,
        event_log,
        topics,
        codec,
        settings=WorkerSettings(group="mem", poll_timeout_s=0.02, release_waiting=release),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    publisher = CommandPublisher(event_log, topics, codec)
    await until(lambda: worker.owned_partitions, 30)

    async def start(count: int) -> None:
        for first in range(0, count, 500):
            await asyncio.gather(
                *(
                    publisher.start_run(
                        "refund", {"order_id": f"o-{n}", "amount": 2400}, requested_by="bench"
                    )
                    for n in range(first, min(count, first + 500))
                )
            )

    await start(100)  # warm: modules, caches and the first runs' one-off costs
    await until(lambda: waiting(worker) == 100, 120)
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    await start(runs)
    await until(lambda: waiting(worker) == runs + 100, 60 + runs / 50)
    seconds = time.perf_counter() - started
    gc.collect()
    held = tracemalloc.get_traced_memory()[0]
    table = worker._table
    for partition in list(table.partitions):
        table.drop(partition)  # what the worker frees when it lets its runs go
    gc.collect()
    freed = held - tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    stop.set()
    await asyncio.wait_for(task, 30)
    mode = "replayers released" if release else "replayers kept"
    print(f"{runs:,} waiting runs held by one worker ({partitions} partitions, {mode}):")
    print(f"  {freed / (runs + 100):,.0f} B per waiting run (Python heap, tracemalloc)")
    print(f"  started and parked in {seconds:.1f} s under tracemalloc")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--release-waiting", action="store_true", help="WorkerSettings.release_waiting"
    )
    args = parser.parse_args()
    asyncio.run(bench(args.runs, args.partitions, args.release_waiting))


if __name__ == "__main__":
    main()
