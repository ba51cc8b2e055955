"""What the metrics cost on the decision path: decisions/s with Prometheus metrics on versus
the no-op metrics, through one worker, in this process, on the in-memory log.

    .venv/bin/python bench/metrics_overhead.py [--load 1000] [--rounds 9]

The in-memory log takes the broker's noise out: what is left is the worker's own CPU, which
is where the metrics are paid (a real broker only adds time the metrics do not touch, so
the share printed here is an upper bound of the share on Kafka). Each round starts `--load`
refund runs, waits until all ask for approval, then times their `--load` decisions until
every run has finished; the two variants alternate, and the median round of each is
compared, by wall time and by this process's CPU time (which other processes on a shared
machine disturb less). Trace context is carried in both variants (it is not optional). Also
prints what the per-command hooks cost in isolation (the observer, with Prometheus metrics).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import timeit
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import structlog  # noqa: E402

from countersign.prometheus import PrometheusMetrics  # noqa: E402
from engine.log.memory import MemoryLog  # noqa: E402
from engine.log.port import Outgoing, Record, Topics  # noqa: E402
from engine.runtime.observing import Observer, StepReport  # noqa: E402
from engine.runtime.worker import Worker  # noqa: E402
from engine.telemetry import NO_METRICS, Metrics, Telemetry  # noqa: E402
from events.codec import Codec  # noqa: E402
from events.commands import StartRun, SubmitDecision  # noqa: E402
from events.notices import ApprovalRequested  # noqa: E402
from examples.refund import app  # noqa: E402

TOPICS = Topics("bench")
CODEC = Codec()
PARTITIONS = 4


async def _asked(log: MemoryLog, want: int) -> dict[str, str]:
    asked: dict[str, str] = {}
    while len(asked) < want:
        await asyncio.sleep(0.05)
        asked.clear()
        for partition in range(PARTITIONS):
            async for record in log.read(TOPICS.approvals, partition, 0):
                notice = CODEC.decode_notice(record.value)
                if isinstance(notice, ApprovalRequested):
                    asked[notice.run_id] = notice.interrupt_id
    return asked


def _command(command: StartRun | SubmitDecision) -> Outgoing:
    value = CODEC.encode(command)
    return Outgoing(TOPICS.commands, command.run_id, value, headers=(CODEC.schema_header(value),))


async def one_round(metrics: Metrics, load: int) -> tuple[float, float]:
    """Decisions per second of wall time and per second of this process's CPU time, of
    `load` decisions through a fresh worker reporting to `metrics`."""
    log = MemoryLog()
    await log.ensure_topics(TOPICS, PARTITIONS)
    worker = Worker(app, log, TOPICS, CODEC, telemetry=Telemetry(metrics))
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        starts = [
            StartRun(
                command_id=str(uuid.uuid4()),
                run_id=f"b-{uuid.uuid4()}",
                agent="refund",
                input={"order_id": f"O-{n}", "amount": 900},
                requested_by="bench",
                issued_at_us=0,
            )
            for n in range(load)
        ]
        await log.publish([_command(s) for s in starts])
        asked = await _asked(log, load)
        decisions = [
            SubmitDecision(
                decision_id=str(uuid.uuid4()),
                run_id=run_id,
                interrupt_id=interrupt_id,
                kind="approve",
                decided_by="alice",
                issued_at_us=0,
            )
            for run_id, interrupt_id in asked.items()
        ]
        began, cpu = time.perf_counter(), time.process_time()
        await log.publish([_command(d) for d in decisions])
        while worker.live_run_count():  # noqa: ASYNC110  (the worker has no event to wait on)
            await asyncio.sleep(0.005)
        wall_s, cpu_s = time.perf_counter() - began, time.process_time() - cpu
        return load / wall_s, load / cpu_s
    finally:
        stop.set()
        await task


def hook_cost_us() -> float:
    """Microseconds the observer spends per command (command, handled, its share of a commit)."""
    observer = Observer(Telemetry(PrometheusMetrics("worker")))
    record = Record(TOPICS.commands, 0, 1, "run", b"", int(time.time() * 1000))
    report = StepReport()

    def one() -> None:
        observer.command(report, record)
        report.decided_ms.append(record.timestamp_ms)
        report.outcome = "accepted"
        observer.handled(report)
        observer.committed(report, 0.001)
        observer.finished(report)

    count = 20_000
    return timeit.timeit(one, number=count) / count * 1e6


async def main(load: int, rounds: int) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    off: list[float] = []
    on: list[float] = []
    off_cpu: list[float] = []
    on_cpu: list[float] = []
    await one_round(NO_METRICS, min(load, 100))  # warm up
    for n in range(rounds):
        for metered in (False, True) if n % 2 == 0 else (True, False):  # either goes first
            wall, cpu = await one_round(
                PrometheusMetrics("worker") if metered else NO_METRICS, load
            )
            (on if metered else off).append(wall)
            (on_cpu if metered else off_cpu).append(cpu)
    base, metered = statistics.median(off), statistics.median(on)
    # Rounds run in pairs, one of each: the median of the pairs' ratios cancels the drift of
    # a shared machine better than the ratio of the medians.
    paired = statistics.median((a - b) / a for a, b in zip(off, on, strict=True))
    print(f"decisions/s, no-op metrics: {base:8.0f}  (rounds: {_listed(off)})")
    print(f"decisions/s, Prometheus on: {metered:8.0f}  (rounds: {_listed(on)})")
    print(f"metrics overhead on decisions/s: {100 * paired:+.1f} % (median of paired rounds)")
    # CPU time: what this process spent, not what other processes on the machine took.
    cpu_base, cpu_metered = statistics.median(off_cpu), statistics.median(on_cpu)
    cpu_paired = statistics.median((a - b) / a for a, b in zip(off_cpu, on_cpu, strict=True))
    print(
        f"decisions per CPU-second: {cpu_base:.0f} no-op, {cpu_metered:.0f} Prometheus on: "
        f"overhead {100 * cpu_paired:+.1f} % (median of paired rounds)"
    )
    hooks = hook_cost_us()
    per_decision = 1e6 / base
    print(
        f"observer hooks per command: {hooks:.1f} us = {100 * hooks / per_decision:.2f} % of the "
        f"{per_decision:.0f} us a decision takes here"
    )


def _listed(figures: list[float]) -> str:
    return ", ".join(f"{x:.0f}" for x in figures)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--load", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=9)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.load, arguments.rounds))
