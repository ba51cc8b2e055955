"""The peer comparison: one start → interrupt → resume workload on Countersign and LangGraph.

    .venv/bin/python -m bench.peers [--runs 200] [--latency-runs 100] [--long-runs 3]
                                    [--only countersign-kafka|countersign-embedded|langgraph]

Each side runs the same refund agent (no model): an order lookup, then a refund over the
limit, gated for a person; "approve"; the refund runs and the run completes. Measured per side,
one side after the other on this machine: runs started to their interrupt per second
(`--runs` at once), resumes per second (the same runs decided at once), resume latency p50/p99
(`--latency-runs` decided one at a time), bytes stored per run, and the resume of a run with
`--long-steps` lookups before its interrupt. Starts its own local Kafka broker and embedded
PostgreSQL in a temporary directory and stops them at the end. LangGraph needs the optional
`peers` extra (`make bench-peers` installs it). What each side runs: docs/peers.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.peers import countersign_side  # noqa: E402
from bench.peers.figures import Figures, table  # noqa: E402
from bench.peers.measure import Storage  # noqa: E402
from bench.peers.storage import (  # noqa: E402
    database_bytes,
    row_bytes,
    segment_bytes,
    server_settings,
)
from bench.peers.workload import Counts  # noqa: E402
from bench.worker_process import signing_home  # noqa: E402
from countersign import local_kafka, local_pg  # noqa: E402
from countersign.logging import configure_logging  # noqa: E402
from engine.log.kafka import KafkaLog  # noqa: E402
from engine.log.port import Topics  # noqa: E402
from engine.log.postgres import PostgresLog  # noqa: E402

SIDES = ("countersign-kafka", "countersign-embedded", "langgraph")
PACKAGES = (
    "countersign", "aiokafka", "asyncpg", "langgraph", "langgraph-checkpoint",
    "langgraph-checkpoint-postgres", "psycopg", "psycopg-pool",
)  # fmt: skip


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.peers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Figures move by tens of percent on a shared machine: run it twice.",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=200,
        help="runs started (and then decided) at once (default 200)",
    )
    parser.add_argument(
        "--latency-runs",
        type=int,
        default=100,
        help="runs decided one at a time for p50/p99 (default 100)",
    )
    parser.add_argument(
        "--long-runs",
        type=int,
        default=3,
        help="runs with --long-steps lookups before the interrupt (default 3; 0 skips)",
    )
    parser.add_argument(
        "--long-steps",
        type=int,
        default=1000,
        help="lookups (tool calls) before a long run's interrupt (default 1000)",
    )
    parser.add_argument(
        "--warmup", type=int, default=20, help="runs taken through before timing (default 20)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=SIDES,
        help="run this side only (repeat for several; default: all three)",
    )
    parser.add_argument(
        "--partitions", type=int, default=4, help="Countersign: partitions per topic (default 4)"
    )
    parser.add_argument(
        "--langgraph-durability",
        choices=("sync", "async", "exit"),
        default="async",
        help="LangGraph's durability mode (default: its own default, async)",
    )
    parser.add_argument(
        "--langgraph-concurrency",
        type=int,
        default=50,
        help="LangGraph: graph invocations in flight at once in the throughput phases (default 50)",
    )
    parser.add_argument(
        "--langgraph-pool",
        type=int,
        default=10,
        help="LangGraph: max_size of its psycopg connection pool (default 10)",
    )
    parser.add_argument(
        "--langgraph-unlocked",
        action="store_true",
        help="LangGraph: let one saver use its pool concurrently (the workaround of "
        "langgraph#7259; as shipped, one saver serialises its database operations)",
    )
    args = parser.parse_args(argv)
    try:
        args.counts = Counts(
            warmup=args.warmup, runs=args.runs, latency_runs=args.latency_runs,
            long_runs=args.long_runs, long_steps=args.long_steps,
        )  # fmt: skip
    except ValueError as exc:
        parser.error(str(exc))
    if min(args.partitions, args.langgraph_concurrency, args.langgraph_pool) < 1:
        parser.error("--partitions, --langgraph-concurrency and --langgraph-pool: at least 1")
    return args


def machine() -> str:
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), "
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}, "
        f"load average {load}\npackages: {', '.join(versions)}"
    )


async def on_log(
    side: str, log: KafkaLog | PostgresLog, settings: dict[str, str], storage: Storage,
    topics: Topics, args: argparse.Namespace, root: Path,
) -> Figures:  # fmt: skip
    """One Countersign side: `log`'s topics made, a worker on them (`settings` and the
    topics' own), measured; `storage` reads what the side has stored."""
    await log.start()
    try:
        await log.ensure_topics(topics, args.partitions)
        settings = settings | {
            "TOPIC_PREFIX": topics.prefix,
            "PARTITIONS": str(args.partitions),
            "WORKER_GROUP": f"{topics.prefix}.workers",
        }
        home = root / f"{side}-home"
        return await countersign_side.run_side(
            side, log, topics, signing_home(home), home, settings,
            args.counts, storage, args.partitions,
        )  # fmt: skip
    finally:
        await log.close()


async def on_kafka(args: argparse.Namespace, root: Path) -> Figures:
    state_dir = root / "kafka"
    bootstrap = (await asyncio.to_thread(local_kafka.start, state_dir)).bootstrap
    print(f"Kafka {local_kafka.KAFKA_VERSION}: one local broker, replication factor 1")
    data_dir = local_kafka.node(state_dir, 1).data_dir
    topics = Topics(f"peers{uuid.uuid4().hex[:6]}")

    async def storage() -> tuple[int, int]:
        every = segment_bytes(data_dir, f"{topics.prefix}.*-*")
        return every, segment_bytes(data_dir, f"{topics.runs}-*")

    log = KafkaLog(bootstrap, client_id="bench-peers")
    settings = {"LOG": "kafka", "KAFKA_BOOTSTRAP": bootstrap}
    return await on_log("countersign-kafka", log, settings, storage, topics, args, root)


async def on_embedded(args: argparse.Namespace, root: Path) -> Figures:
    url = await asyncio.to_thread(
        local_pg.start_embedded, root / "pg", database="countersign_peers", stop_at_exit=True
    )
    print(await server_settings(url), flush=True)
    topics = Topics(f"peers{uuid.uuid4().hex[:6]}")

    async def storage() -> tuple[int, int]:
        runs = await row_bytes(url, ("cs_log_records",), "WHERE topic = $1", topics.runs)
        return await database_bytes(url), runs

    log = PostgresLog(url, client_id="bench-peers")
    settings = {"LOG": "postgres", "DATABASE_URL": url}
    return await on_log("countersign-embedded", log, settings, storage, topics, args, root)


async def on_langgraph(args: argparse.Namespace, root: Path) -> Figures:
    try:
        from bench.peers import langgraph_side
    except ImportError as exc:
        raise SystemExit(
            f"LangGraph is not installed ({exc}): `make bench-peers`, or "
            '`.venv/bin/pip install -e ".[peers]"`, or --only countersign-kafka'
        ) from exc
    url = await asyncio.to_thread(
        local_pg.start_embedded, root / "pg", database="langgraph_peers", stop_at_exit=True
    )
    print(await server_settings(url), flush=True)
    options = langgraph_side.Options(
        durability=args.langgraph_durability,
        concurrency=args.langgraph_concurrency,
        pool=args.langgraph_pool,
        unlocked=args.langgraph_unlocked,
    )
    return await langgraph_side.run_side(url, args.counts, options)


RUNNERS = {
    "countersign-kafka": on_kafka,
    "countersign-embedded": on_embedded,
    "langgraph": on_langgraph,
}


async def compare(args: argparse.Namespace, root: Path) -> list[Figures]:
    found = []
    for side in [s for s in SIDES if s in (args.only or SIDES)]:
        print(f"{side}: running …", flush=True)
        began = time.perf_counter()
        found.append(await RUNNERS[side](args, root))
        print(f"{side}: done in {time.perf_counter() - began:.0f} s", flush=True)
    return found


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    configure_logging("console", "warning")
    print(machine(), flush=True)
    c = args.counts
    print(
        f"workload: {c.warmup} warm-up runs, {c.runs} runs at once, {c.latency_runs} one at a "
        f"time, {c.long_runs} with {c.long_steps:,} lookups before the interrupt; "
        f"LangGraph durability {args.langgraph_durability!r}, pool {args.langgraph_pool}, "
        f"{args.langgraph_concurrency} in flight, "
        f"saver {'unlocked' if args.langgraph_unlocked else 'as shipped'}",
        flush=True,
    )
    root = Path(tempfile.mkdtemp(prefix="cs-bench-peers-"))
    try:
        found = asyncio.run(compare(args, root))
    finally:
        if (root / "kafka").exists():
            local_kafka.stop(root / "kafka")
        if (root / "pg").exists():
            local_pg.stop_embedded(root / "pg")
        shutil.rmtree(root, ignore_errors=True)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nload average after: {load}\n")
    print(table(found, c.long_steps))
    if "langgraph" in (args.only or SIDES) and not args.langgraph_unlocked:
        print(
            "\nLangGraph's saver as shipped serialises its database operations "
            "(langgraph#7259);\n--langgraph-unlocked measures it with the proposed fix's "
            "workaround (docs/peers.md)."
        )


if __name__ == "__main__":
    main()
