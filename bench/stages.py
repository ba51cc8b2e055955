"""Where a lone decision's time goes on Kafka: publish, reach the worker, drive, commit, be seen.

    .venv/bin/python bench/stages.py [--agent refund|credit] [--decisions 300] [--warmup 150]
                                     [--gap-ms 50] [--linger-ms N]

One process: a local broker of its own (or COUNTERSIGN_KAFKA_BOOTSTRAP's), a worker on it
(in-process, unsigned commands: the signature check is ~0.1 ms of CPU, bench/trust.py), a
publisher and a read_committed follower. Each run is started, and `--gap-ms` after its
approval request is seen (a person's decision finds the worker idle; 0: an automated one
right behind the request) the decision is published; the next run starts when this one's
completion is read. The first `--warmup` decisions are not counted: the broker's JVM runs its
request paths interpreted until it has compiled them. Prints p50 (p90) in ms of:

- acked: the publisher's send until the broker acknowledged the decision (acks=all);
- to worker: the send until the worker's poll returned it;
- worker: its poll until its first commit began (intake, replay, the tools that need no
  durable schedule first);
- commits: the transactions (a refund pays two: its tool's schedule is durable before the
  tool runs), with `offsets` (registering and writing the commands position) and `records`
  (registering partitions, producing, ending) of the first one, and the pause between them;
- to reader: the last commit's end until the follower read the run's completion;
- total: the send until the follower read the completion.

Stamps are taken by wrapping the group member's poll and commit and aiokafka's two
transactional calls in this process; nothing else is changed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from operator import contains
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import structlog  # noqa: E402
from aiokafka import AIOKafkaProducer  # noqa: E402

from bench.broker import kafka  # noqa: E402
from bench.follower import Follower  # noqa: E402
from consumers.publisher import CommandPublisher  # noqa: E402
from engine.log.kafka import KafkaLog  # noqa: E402
from engine.log.kafka.member import KafkaMember  # noqa: E402
from engine.log.port import Topics  # noqa: E402
from engine.runtime.worker import Worker, WorkerSettings  # noqa: E402
from events.codec import Codec  # noqa: E402
from tests.helpers import eventually  # noqa: E402

PARTITIONS = 4
STAMPED = {
    (KafkaMember, "poll"): "polled",
    (KafkaMember, "commit"): "commit",
    (AIOKafkaProducer, "send_offsets_to_transaction"): "offsets_sent",
    (AIOKafkaProducer, "commit_transaction"): "txn_ended",
}


class Stamps:
    """perf_counter stamps by name since the last `clear`; `commit` has a start and an end."""

    def __init__(self) -> None:
        self.at: dict[str, list[float]] = {}

    def clear(self) -> None:
        self.at = {}

    def add(self, name: str, moment: float) -> None:
        self.at.setdefault(name, []).append(moment)

    def wrap(self, cls: type, method: str, name: str) -> None:
        original: Callable[..., Awaitable[Any]] = getattr(cls, method)

        async def stamped(obj: object, *args: object, **kwargs: object) -> Any:
            began = time.perf_counter()
            result = await original(obj, *args, **kwargs)
            if name != "polled" or result:  # an empty poll is not the decision's
                if name == "commit":
                    self.add("commit_began", began)
                self.add(name, time.perf_counter())
            return result

        setattr(cls, method, stamped)

    def stages(self, sent: float, acked: float, seen: float) -> dict[str, float] | None:
        at = self.at
        if not at.get("polled") or not at.get("commit") or not at.get("txn_ended"):
            return None  # the worker committed something else meanwhile (an anchor): skip
        began, ended = at["commit_began"], at["commit"]
        offsets = at.get("offsets_sent", [began[0]])[0]
        return {
            "acked": acked - sent,
            "to worker": at["polled"][0] - sent,
            "worker": began[0] - at["polled"][0],
            "commits": sum(e - b for b, e in zip(began, ended, strict=True)),
            "  offsets": offsets - began[0],
            "  records": at["txn_ended"][0] - offsets,
            "  between": began[-1] - ended[0] if len(began) > 1 else 0.0,
            "to reader": seen - ended[-1],
            "total": seen - sent,
        }


async def bench(args: argparse.Namespace, bootstrap: str) -> None:
    stamps = Stamps()
    for (cls, method), name in STAMPED.items():
        stamps.wrap(cls, method, name)
    worker_log = KafkaLog(bootstrap, client_id="bench-worker")
    publisher_log = KafkaLog(bootstrap, client_id="bench", **_linger(args.linger_ms))
    await worker_log.start()
    await publisher_log.start()
    topics, codec = Topics(f"stages{uuid.uuid4().hex[:6]}"), Codec()
    await worker_log.ensure_topics(topics, PARTITIONS)
    app = _app(args.agent)
    settings = WorkerSettings(group=f"{topics.commands}.workers")
    worker = Worker(app, worker_log, topics, codec, settings=settings)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    follower = Follower(worker_log, topics, codec)
    publisher = CommandPublisher(publisher_log, topics, codec)
    try:
        await follower.start(PARTITIONS)
        await eventually(
            lambda: len(worker.owned_partitions) == PARTITIONS,
            timeout=60,
            message="the worker was given every partition",
        )
        rows = []
        for n in range(args.warmup + args.decisions):
            row = await one_decision(args, publisher, follower, stamps, n)
            if n >= args.warmup and row is not None:
                rows.append(row)
    finally:
        stop.set()
        await running
        await follower.stop()
        await publisher_log.close()
        await worker_log.close()
    linger = "the product's" if args.linger_ms is None else f"{args.linger_ms} ms"
    print(
        f"{args.agent}: {len(rows)} lone decisions after {args.warmup} uncounted, "
        f"{args.gap_ms} ms after the request was seen, publisher linger {linger}; "
        "ms p50 (p90):"
    )
    for stage in rows[0]:
        values = sorted(r[stage] * 1000 for r in rows)
        p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
        print(f"  {stage:12s} {statistics.median(values):6.2f} ({p90:6.2f})")


async def one_decision(
    args: argparse.Namespace,
    publisher: CommandPublisher,
    follower: Follower,
    stamps: Stamps,
    n: int,
) -> dict[str, float] | None:
    amount = {"order_id": f"S-{n}", "amount": 2400}
    run_id = await publisher.start_run(args.agent, amount, requested_by="bench")
    await follower.wait(partial(contains, follower.interrupts, run_id))
    await asyncio.sleep(args.gap_ms / 1000)
    stamps.clear()
    sent = time.perf_counter()
    await publisher.submit_decision(
        run_id, follower.interrupts[run_id], "approve", decided_by="alice"
    )
    acked = time.perf_counter()
    await follower.wait(partial(contains, follower.completed, run_id))
    return stamps.stages(sent, acked, follower.completed[run_id])


def _linger(linger_ms: int | None) -> dict[str, int]:
    return {} if linger_ms is None else {"linger_ms": linger_ms}


def _app(agent: str) -> Any:
    if agent == "credit":
        from bench.agents import app
    else:
        from examples.refund import app
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agent", default="refund", choices=("refund", "credit"))
    parser.add_argument("--decisions", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=150, help="decisions not counted")
    parser.add_argument("--gap-ms", type=float, default=50.0)
    parser.add_argument("--linger-ms", type=int, default=None, help="the publisher's")
    args = parser.parse_args()
    if args.decisions < 1 or args.warmup < 0 or args.gap_ms < 0:
        parser.error("--decisions must be positive, --warmup and --gap-ms not negative")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))  # warnings
    with kafka(name="stages") as (bootstrap, _):
        asyncio.run(bench(args, bootstrap))


if __name__ == "__main__":
    main()
