"""How fast the projections are: throughput, lag under load, query times on a million events.

    .venv/bin/python bench/projections.py                  # everything, MemoryLog
    .venv/bin/python bench/projections.py --kafka          # also through a real Kafka broker
    .venv/bin/python bench/projections.py --only throughput --events 300000
    .venv/bin/python bench/projections.py --only processes --projectors 3   # 1 vs 3 processes

1. throughput: events/s from the runs topic into PostgreSQL for one projector process
   (pre-encoded realistic runs of ~11 events; the clock runs from the projector's start
   until its positions reach the end of every partition); plus where the time goes per event
   (decode, fold and rows, the rest is PostgreSQL and the loop).
2. lag: events published at a steady rate (5,000/s by default) while the projector runs;
   lag in records and in seconds (age of the oldest record not projected yet), sampled
   every 100 ms.
3. queries: the inbox, audit, stats, recommendations and what-if on a million events (the
   copy is built once and kept in schema `bench_1m`; `--fresh` builds it again).
4. processes (only when asked, Kafka only): the same fill of a runs topic of `--partitions`
   partitions (6 by default), then `countersign projector` OS processes in one consumer
   group: one, then `--projectors` (fresh topics and schema each). The clock runs from the
   moment every process answers ready on its probe port (in the group, polled, PostgreSQL
   answering) until the positions stored in PostgreSQL reach the end of every partition;
   events/s counts what was projected in that window. Also the CPU seconds each process
   tree used meanwhile (projectors, broker, PostgreSQL, this process).
5. cpu (only when asked): the projector's own CPU per event, without the overlap of the
   projecting loop: each batch decoded as the projector decodes a record, then applied and
   awaited alone; this thread's CPU time, so waiting for PostgreSQL or for a core is not
   counted (the figure moves far less than events/s on a shared machine).

PostgreSQL: $COUNTERSIGN_DATABASE_URL, else an embedded server under .countersign/bench-pg.
Kafka: $COUNTERSIGN_KAFKA_BOOTSTRAP, else a local broker under .countersign/bench-kafka.
What this script started, it stops at the end. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pickle
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.processes import CpuMeter, Fleet, kafka_env, machine_line, postmaster_pid
from bench.tally import cpu_lines, scaling_line
from countersign import local_kafka, local_pg
from countersign.batch_gc import tune_for_batches
from engine.log.memory import MemoryLog
from engine.log.port import EventLog, Outgoing, Topics
from events.approval import ApprovalRequest
from events.codec import Codec
from events.envelope import GENESIS_HASH, EventEnvelope, hash_encoded
from events.run_events import (
    DecisionAccepted,
    GateEvaluated,
    InterruptEscalated,
    InterruptExpired,
    InterruptRaised,
    ModelCalled,
    RunCompleted,
    RunEventPayload,
    RunStarted,
    ToolCallCompleted,
    ToolCallScheduled,
)
from projections import Insights, Policy, ProjectionStore, Projector, Queries
from projections.batch import LoggedEvent
from projections.event_record import event_record, index_record
from projections.fold import fold
from projections.verify import verify

CODEC = Codec()
ROOT = Path(__file__).resolve().parents[1]
T0 = 1_760_000_000_000_000  # October 2025, µs
DAY = 86_400_000_000
TOOLS = [
    ("refund", "high"),
    ("credit", "medium"),
    ("resend_email", "low"),
    ("close_account", "critical"),
    ("change_plan", "medium"),
]
TEAMS = ["role:support-lead", "role:finance", "role:ops", "role:security"]
APPROVERS = [f"u:{n:02d}" for n in range(40)]


# -- the data -------------------------------------------------------------------------------------


def run_payloads(n: int, rng: random.Random, spread_us: int) -> list[tuple[RunEventPayload, int]]:
    """One run: a lookup that runs unasked, a model call, then a gated tool call."""
    at = T0 + rng.randrange(spread_us)
    run_id = f"run-{n:07d}"
    tool, risk = rng.choice(TOOLS)
    amount = float(rng.choice([20, 90, 250, 480, 900, 2400, 7000]))
    args = {"order": f"A-{n}", "amount": amount, "country": rng.choice(["FR", "DE", "US"])}
    confidence = round(rng.random(), 2)
    out: list[tuple[RunEventPayload, int]] = [
        (RunStarted(input=args, requested_by=f"u:req{n % 97}", command_id=f"c{n}"), at),
        (
            GateEvaluated(
                call=0,
                tool="lookup_order",
                args_digest="d",
                action="auto",
                policy="lookups@1",
                risk="low",
            ),
            at + 1,
        ),
        (
            ToolCallScheduled(
                call=0,
                tool="lookup_order",
                args={"order": f"A-{n}"},
                args_digest="d",
                idempotency_key=f"{run_id}:0",
                idempotent=True,
            ),
            at + 2,
        ),
        (ToolCallCompleted(call=0, result={"paid": amount, "status": "delivered"}), at + 3),
        (
            ModelCalled(
                call=1,
                request_digest="m",
                request={"prompt": "refund?"},
                response={"text": "yes", "confidence": confidence},
            ),
            at + 4,
        ),
    ]
    auto = risk == "low" and rng.random() < 0.7
    out.append(
        (
            GateEvaluated(
                call=2,
                tool=tool,
                args_digest="d",
                action="auto" if auto else "approve",
                policy=f"{tool}@3",
                risk=risk,
                confidence=confidence,
                amount=amount,
            ),
            at + 5,
        )
    )
    if auto:
        return [*out, *ran(run_id, tool, args, at + 6)]
    interrupt = f"{run_id}:approval"
    request = ApprovalRequest(
        kind="tool",
        title=f"{tool}(amount={amount:g})",
        tool=tool,
        args=args,
        reasoning="the customer asked for it",
        risk=risk,
        amount=amount,
        deadline_us=at + 6 + rng.choice([1, 4, 24]) * 3_600_000_000,
        allowed=("approve", "edit", "reject"),
        approvers=(rng.choice(TEAMS),),
        policy=f"{tool}@3",
        confidence=confidence,
    )
    out.append((InterruptRaised(call=2, interrupt_id=interrupt, request=request), at + 6))
    decided = at + 6 + int(rng.expovariate(1 / 600) * 1_000_000)
    who = rng.choice(APPROVERS)
    roll = rng.random()
    if roll < 0.07:  # still open
        return out
    if roll < 0.10:
        expired = InterruptExpired(interrupt_id=interrupt, action="reject")
        return [*out, (expired, decided), (RunCompleted(output="expired"), decided + 1)]
    if roll < 0.12:
        escalated = InterruptEscalated(
            interrupt_id=interrupt, level=1, approvers=("role:cfo",), reason="late"
        )
        expiry = InterruptExpired(interrupt_id=interrupt, action="escalate")
        return [*out, (expiry, decided), (escalated, decided + 1)]
    kind = "reject" if roll < 0.22 else "edit" if roll < 0.30 else "approve"
    edited = {**args, "amount": min(amount, 500.0)} if kind == "edit" else None
    out.append(
        (
            DecisionAccepted(
                interrupt_id=interrupt,
                decision_id=f"d{n}",
                kind=kind,
                decided_by=who,
                reason="not covered" if kind == "reject" else "",
                edited_args=edited,
            ),
            decided,
        )
    )
    if kind == "reject":
        return [*out, (RunCompleted(output="rejected"), decided + 1)]
    return [*out, *ran(run_id, tool, edited or args, decided + 1)]


def ran(run_id: str, tool: str, args: Any, at: int) -> list[tuple[RunEventPayload, int]]:
    return [
        (
            ToolCallScheduled(
                call=2,
                tool=tool,
                args=args,
                args_digest="d",
                idempotency_key=f"{run_id}:2",
                idempotent=False,
            ),
            at,
        ),
        (ToolCallCompleted(call=2, result={"ok": True, "id": f"x-{run_id}"}), at + 1),
        (RunCompleted(output={"status": "done"}), at + 2),
    ]


def encode_run(n: int, rng: random.Random, spread_us: int) -> list[tuple[str, bytes]]:
    run_id = f"run-{n:07d}"
    prev, out = GENESIS_HASH, []
    for seq, (payload, at) in enumerate(run_payloads(n, rng, spread_us)):
        data = CODEC.encode(
            EventEnvelope(
                event_id=f"{run_id}/{seq}",
                run_id=run_id,
                seq=seq,
                occurred_at_us=at,
                agent=("refunds", "billing", "support")[n % 3],
                agent_version="3",
                causation_id="",
                correlation_id=run_id,
                prev_hash=prev,
                payload=payload,
            )
        )
        prev = hash_encoded(data)
        out.append((run_id, data))
    return out


def dataset(events: int) -> list[tuple[str, bytes]]:
    """About `events` events of interleaved runs, in publish order (cached on disk)."""
    cache = Path(tempfile.gettempdir()) / f"countersign-bench-{events}-v2.pickle"
    if cache.exists():
        loaded: list[tuple[str, bytes]] = pickle.loads(cache.read_bytes())
        return loaded
    rng = random.Random(42)
    spread = 90 * DAY
    out: list[tuple[str, bytes]] = []
    n = 0
    while len(out) < events:
        runs = [encode_run(n + i, rng, spread) for i in range(50)]  # 50 runs at a time
        n += 50
        for position in range(max(len(r) for r in runs)):
            out.extend(r[position] for r in runs if position < len(r))
    cache.write_bytes(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))
    return out


# -- plumbing -------------------------------------------------------------------------------------


PG_DIR = ROOT / ".countersign" / "bench-pg"
KAFKA_DIR = ROOT / ".countersign" / "bench-kafka"


async def database_url() -> str:
    if os.environ.get("COUNTERSIGN_DATABASE_URL"):
        return os.environ["COUNTERSIGN_DATABASE_URL"]
    return await asyncio.to_thread(local_pg.start_embedded, PG_DIR)


async def kafka_bootstrap() -> str:
    configured = os.environ.get("COUNTERSIGN_KAFKA_BOOTSTRAP")
    if configured:
        return configured
    return (await asyncio.to_thread(local_kafka.start, KAFKA_DIR)).bootstrap


async def kafka_log(partitions: int) -> tuple[EventLog, Topics]:
    from engine.log.kafka import KafkaLog

    log = KafkaLog(
        await kafka_bootstrap(), client_id="bench", linger_ms=5, max_batch_bytes=1_048_576
    )
    await log.start()
    topics = Topics(f"bench{uuid.uuid4().hex[:6]}")
    await log.ensure_topics(topics, partitions)
    return log, topics


@contextlib.contextmanager
def stopping_what_starts() -> Iterator[None]:
    """The embedded PostgreSQL and the local broker, stopped at the end if they were not
    running before (their data stays: the query copy is kept)."""
    pg_was = local_pg.is_running(PG_DIR)
    kafka_was = local_kafka.status(KAFKA_DIR) is not None
    try:
        yield
    finally:
        if not kafka_was and local_kafka.status(KAFKA_DIR) is not None:
            local_kafka.stop(KAFKA_DIR)
        if not pg_was and local_pg.is_running(PG_DIR):
            local_pg.stop_embedded(PG_DIR)


async def publish(log: EventLog, topic: str, data: list[tuple[str, bytes]]) -> None:
    for start in range(0, len(data), 5000):
        await log.publish([Outgoing(topic, k, v) for k, v in data[start : start + 5000]])


async def fresh_store(url: str, schema: str | None = None) -> ProjectionStore:
    store = await ProjectionStore.connect(url, schema=schema or f"bench_{uuid.uuid4().hex[:8]}")
    await store.migrate()
    return store


async def drop(url: str, store: ProjectionStore) -> None:
    await store.close()
    home = await fresh_store(url, "bench_home")
    await home.drop_schema(store.schema)
    await home.close()


async def lag_of(log: EventLog, store: ProjectionStore, topic: str) -> int:
    positions = await store.positions("core", topic)
    total = 0
    for partition in range(await log.partition_count(topic)):
        total += max(0, await log.end_offset(topic, partition) - positions.get(partition, 0))
    return total


async def project_all(log: EventLog, store: ProjectionStore, topic: str, max_records: int) -> float:
    """Seconds from the projector's start until it has caught up."""
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(
        Projector(
            log, store, topic, f"bench-{uuid.uuid4().hex[:6]}", CODEC, max_records=max_records
        ).run(stop)
    )
    while await lag_of(log, store, topic):  # noqa: ASYNC110  (polling a database, not an event)
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    return elapsed


# -- 1. throughput --------------------------------------------------------------------------------


def per_event_costs(data: list[tuple[str, bytes]]) -> None:
    sample = [v for _, v in data[:20_000]]
    started = time.perf_counter()
    decoded = [CODEC.decode_event(v) for v in sample]
    decode = (time.perf_counter() - started) / len(sample)
    events = [
        LoggedEvent(envelope=e, partition=0, offset=i, hash=hash_encoded(v), raw=v)
        for i, (e, v) in enumerate(zip(decoded, sample, strict=True))
    ]
    started = time.perf_counter()
    for start in range(0, len(events), 1000):
        chunk = events[start : start + 1000]
        [event_record(e) for e in chunk]
        fold({}, chunk)
    rows = (time.perf_counter() - started) / len(events)
    print(f"  per event: decode {decode * 1e6:.1f} µs (events/codec.py), "
          f"fold + rows + JSON {rows * 1e6:.1f} µs (projections)")  # fmt: skip
    print(f"  ceiling of one process from these two alone: {1 / (decode + rows):,.0f} events/s")


async def throughput(url: str, events: int, use_kafka: bool, max_records: int) -> None:
    data = dataset(events)
    print(f"\n1. throughput, {len(data):,} events (~11 per run), batches of {max_records}")
    per_event_costs(data)
    logs: list[tuple[str, Callable[[], Awaitable[tuple[EventLog, str]]]]] = [
        ("MemoryLog", lambda: memory_log(data))
    ]
    if use_kafka:
        logs.append(("Kafka", lambda: loaded_kafka(data)))
    for name, make in logs:
        log, topic = await make()
        store = await fresh_store(url)
        meter = service_meter()
        tune_for_batches()  # as `countersign projector` does (it also freezes the data set here)
        try:
            meter.start()
            seconds = await project_all(log, store, topic, max_records)
            used = meter.stop()
            print(f"  {name:<10} {len(data) / seconds:>10,.0f} events/s  ({seconds:.1f} s)")
            print(f"    CPU meanwhile (bench: the projector, in this process); {machine_line()}:")
            print("\n".join(cpu_lines(used, len(data), "event", seconds)))
        finally:
            await drop(url, store)
            await log.close()


async def memory_log(data: list[tuple[str, bytes]]) -> tuple[EventLog, str]:
    log = MemoryLog(default_partitions=4)
    await publish(log, "bench.runs", data)
    return log, "bench.runs"


async def loaded_kafka(data: list[tuple[str, bytes]]) -> tuple[EventLog, str]:
    log, topics = await kafka_log(4)
    started = time.perf_counter()
    await publish(log, topics.runs, data)
    print(f"  (published to Kafka at {len(data) / (time.perf_counter() - started):,.0f}/s)")
    return log, topics.runs


# -- 2. lag under a steady flow -------------------------------------------------------------------


async def lag_under_load(url: str, rate: int, seconds: float, use_kafka: bool) -> None:
    data = dataset(int(rate * seconds) + 1000)
    print(f"\n2. lag while {rate:,} events/s flow for {seconds:.0f} s")
    runs: list[tuple[str, Callable[[], Awaitable[tuple[EventLog, str]]]]] = [
        ("MemoryLog", empty_memory)
    ]
    if use_kafka:
        runs.append(("Kafka", empty_kafka))
    for name, make in runs:
        log, topic = await make()
        store = await fresh_store(url)
        try:
            samples = await measure_lag(log, store, topic, data, rate, seconds)
            records = sorted(r for r, _ in samples)
            ages = sorted(a for _, a in samples)
            print(f"  {name:<10} lag p50 {pct(ages, 0.5):.3f} s, p99 {pct(ages, 0.99):.3f} s, "
                  f"max {ages[-1]:.3f} s; records p50 {pct(records, 0.5):.0f}, "
                  f"max {records[-1]:.0f}")  # fmt: skip
        finally:
            await drop(url, store)
            await log.close()


async def empty_memory() -> tuple[EventLog, str]:
    return MemoryLog(default_partitions=4), "bench.runs"


async def empty_kafka() -> tuple[EventLog, str]:
    log, topics = await kafka_log(4)
    return log, topics.runs


def pct(values: list[float], fraction: float) -> float:
    return values[min(len(values) - 1, int(fraction * len(values)))]


async def measure_lag(
    log: EventLog,
    store: ProjectionStore,
    topic: str,
    data: list[tuple[str, bytes]],
    rate: int,
    seconds: float,
) -> list[tuple[float, float]]:
    from projections.status import projection_status

    stop = asyncio.Event()
    projector = asyncio.create_task(Projector(log, store, topic, "lag", CODEC).run(stop))
    samples: list[tuple[float, float]] = []

    async def flow() -> None:
        tick, per_tick = 0.02, max(1, int(rate * 0.02))
        started = time.perf_counter()
        for n, start in enumerate(range(0, int(rate * seconds), per_tick)):
            await log.publish([Outgoing(topic, k, v) for k, v in data[start : start + per_tick]])
            delay = started + (n + 1) * tick - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)

    flowing = asyncio.create_task(flow())
    await asyncio.sleep(1.0)  # let it settle
    while not flowing.done():
        status = await projection_status(log, store, topic)
        samples.append((float(status.lag), status.lag_s))
        await asyncio.sleep(0.1)
    await flowing
    stop.set()
    await projector
    return samples


# -- 4. several projector processes --------------------------------------------------------------


async def processes(url: str, events: int, count: int, partitions: int) -> None:
    data = dataset(events)
    print(f"\n4. projector processes, {len(data):,} events on {partitions} partitions")
    rates = [await projected_by(url, data, n, partitions) for n in sorted({1, count})]
    if count > 1:
        print("  " + scaling_line("events/s", rates[0], rates[-1], count, target=2.5))


async def projected_by(
    url: str, data: list[tuple[str, bytes]], count: int, partitions: int
) -> float:
    """Events/s of `count` projector processes from the moment all are ready."""
    log, topics = await kafka_log(partitions)
    store = await fresh_store(url)
    fleet = None
    try:
        await publish(log, topics.runs, data)
        ends = {p: await log.end_offset(topics.runs, p) for p in range(partitions)}
        env = kafka_env(
            await kafka_bootstrap(),
            topics.prefix,
            partitions,
            COUNTERSIGN_DATABASE_URL=url,
            COUNTERSIGN_PROJECTION_SCHEMA=store.schema,
            COUNTERSIGN_PROJECTOR_GROUP=f"{topics.prefix}.projectors",
        )
        fleet = Fleet(["projector"], env, count)
        launched = time.perf_counter()
        await fleet.ready()
        ready, before = time.perf_counter(), await projected(store, topics.runs, ends)
        meter = projector_meter(fleet)
        meter.start()
        while await projected(store, topics.runs, ends) < sum(ends.values()):  # noqa: ASYNC110
            await asyncio.sleep(0.02)  # (polling a database, not an event)
        done = time.perf_counter()
        used = meter.stop()
        moved = sum(ends.values()) - before
        rate = moved / (done - ready)
        print(f"  {count} process(es): {rate:>8,.0f} events/s once all ready "
              f"({moved:,} events in {done - ready:.1f} s; {before:,} before, during "
              f"{ready - launched:.1f} s of start-up); {len(data) / (done - launched):,.0f}"
              f" events/s from launch")  # fmt: skip
        print(f"    CPU meanwhile (µs per event; cores kept busy); {machine_line()}:")
        print("\n".join(cpu_lines(used, moved, "event", done - ready)))
        return rate
    finally:
        if fleet is not None:
            fleet.end()
        await drop(url, store)
        await log.close()


async def projected(store: ProjectionStore, topic: str, ends: dict[int, int]) -> int:
    """Records projected so far: the stored positions, up to each partition's end."""
    positions = await store.positions("core", topic)
    return sum(min(positions.get(p, 0), end) for p, end in ends.items())


def projector_meter(fleet: Fleet) -> CpuMeter:
    return service_meter(fleet.pids)


def service_meter(projectors: list[int] | None = None) -> CpuMeter:
    """CPU of the projector processes (if any), the broker and PostgreSQL this script runs,
    and this process ("bench")."""
    broker = local_kafka.status(KAFKA_DIR)
    postgres = None if os.environ.get("COUNTERSIGN_DATABASE_URL") else postmaster_pid(PG_DIR)
    return CpuMeter(
        {
            "projectors": projectors or [],
            "broker": broker.pids
            if broker and "COUNTERSIGN_KAFKA_BOOTSTRAP" not in os.environ
            else (),
            "postgres": [postgres] if postgres else [],
        }
    )


# -- 5. the projector's own CPU, batch by batch ---------------------------------------------------


def decoded_as_the_projector_does(value: bytes, offset: int) -> LoggedEvent:
    """As `Projector` decodes for a store that indexes ahead (the PostgreSQL store)."""
    envelope, hash_ = CODEC.decode_event(value), hash_encoded(value)
    record = index_record(envelope, 0, offset, hash_, value)
    return LoggedEvent(
        envelope=envelope, partition=0, offset=offset, hash=hash_, raw=value, index_record=record
    )


async def projector_cpu(url: str, events: int, max_records: int) -> None:
    data = dataset(events)
    print(f"\n5. the projector's CPU, {len(data):,} events in batches of {max_records}")
    store = await fresh_store(url)
    tune_for_batches()  # as `countersign projector` does
    decode = apply = 0.0
    started = time.perf_counter()
    try:
        for start in range(0, len(data), max_records):
            before = time.thread_time()
            chunk = enumerate(data[start : start + max_records], start)
            items = [decoded_as_the_projector_does(value, offset) for offset, (_, value) in chunk]
            decoded = time.thread_time()
            await store.apply("core", "bench.runs", items)
            decode, apply = decode + decoded - before, apply + time.thread_time() - decoded
        seconds = time.perf_counter() - started
    finally:
        await drop(url, store)
    n = len(data)
    print(
        f"  decode {decode / n * 1e6:.1f} µs (with the index record),"
        f" apply {apply / n * 1e6:.1f} µs (fold, rows,"
        f" asyncpg, the loop): {(decode + apply) / n * 1e6:.1f} µs an event of this thread's"
        f" CPU, {n / (decode + apply):,.0f} events/s on a core of its own; {machine_line()}"
    )
    print(f"  one batch after the other, never overlapped: {n / seconds:,.0f} events/s")


# -- 3. queries on a million events ---------------------------------------------------------------


async def queries(url: str, events: int, fresh: bool, max_records: int) -> None:
    schema = f"bench_{events // 1000}k"
    data = dataset(events)
    store = await fresh_store(url, schema)
    print(f"\n3. queries on {len(data):,} events (schema {schema})")
    projected = sum((await store.positions("core", "bench.runs")).values())
    if fresh or projected != len(data):
        await store.close()
        home = await fresh_store(url, "bench_home")
        await home.drop_schema(schema)
        await home.close()
        store = await fresh_store(url, schema)
        log, topic = await memory_log(data)
        seconds = await project_all(log, store, topic, max_records)
        print(f"  (projected in {seconds:.0f} s: {len(data) / seconds:,.0f} events/s)")
    log, _ = await memory_log(data)
    q, insights = Queries(store), Insights(store, due_soon=timedelta(hours=4))
    approver = APPROVERS[3]
    some_run = data[len(data) // 2][0]
    checks: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("inbox: open, oldest first (100)", lambda: insights.inbox(limit=100)),
        ("inbox: --for u:03 --role ops", lambda: insights.inbox(approver, ("ops",), limit=100)),
        ("inbox: --overdue", lambda: insights.inbox(overdue=True, limit=100)),
        ("inbox: overdue by team", insights.overdue_by_team),
        ("inbox: --closed (100)", lambda: insights.inbox(closed=True, limit=100)),
        ("audit: oldest 100", lambda: q.audit(limit=100)),
        ("audit: --run", lambda: q.audit(run_id=some_run)),
        ("audit: --approver (100)", lambda: q.audit(approver=approver, limit=100)),
        (
            "audit: --tool --since (100)",
            lambda: q.audit(tool="refund", since=store_time(45), limit=100),
        ),
        ("audit: --action (100)", lambda: q.audit(action="decision_accepted", limit=100)),
        ("runs show (timeline)", lambda: q.run_timeline(some_run)),
    ]
    checks += [(f"stats --by {by}", lambda by=by: insights.stats(by))  # type: ignore[misc]
               for by in ("tool", "approver", "risk", "day", "agent")]  # fmt: skip
    checks += [
        ("recommendations", insights.recommendations),
        ("what-if (example policy)", lambda: insights.what_if(example_policy())),
        ("verify one run", lambda: verify(log, "bench.runs", store, CODEC, [some_run])),
    ]
    for name, check in checks:
        await check()  # warm up
        times = []
        for _ in range(3 if name in ("recommendations", "what-if (example policy)") else 7):
            started = time.perf_counter()
            await check()
            times.append((time.perf_counter() - started) * 1000)
        print(
            f"  {name:<34} median {statistics.median(times):>9.1f} ms   max {max(times):>9.1f} ms"
        )
    await store.close()


def store_time(days: int) -> Any:
    from projections.fold import timestamp

    return timestamp(T0 + days * DAY)


def example_policy() -> Policy:
    import json

    return Policy.from_json(json.loads((ROOT / "examples/policies/refunds.json").read_text()))


# -- main -----------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    url = await database_url()
    only = set(args.only or ["throughput", "lag", "queries"])
    if "processes" in only:
        await processes(url, args.events, args.projectors, args.partitions)
    if "throughput" in only:
        await throughput(url, args.events, args.kafka, args.max_records)
    if "cpu" in only:
        await projector_cpu(url, args.events, args.max_records)
    if "lag" in only:
        await lag_under_load(url, args.rate, args.seconds, args.kafka)
    if "queries" in only:
        await queries(url, args.query_events, args.fresh, args.max_records)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", action="append", choices=["throughput", "lag", "queries", "processes", "cpu"]
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--max-records", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--query-events", type=int, default=1_000_000)
    parser.add_argument("--fresh", action="store_true", help="build the query copy again")
    parser.add_argument("--kafka", action="store_true", help="also measure through Kafka")
    parser.add_argument("--projectors", type=int, default=3, help="processes: 1 vs this many")
    parser.add_argument("--partitions", type=int, default=6, help="processes: of the runs topic")
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    parsed = parser.parse_args()
    if not 1 <= parsed.projectors <= parsed.partitions:
        parser.error("--projectors must be between 1 and --partitions (a spare one idles)")
    with stopping_what_starts():
        asyncio.run(main(parsed))
