"""Scenario 4: the broker is killed (SIGKILL, no clean shutdown) in the middle of the load
and started again on the same data. Nothing the log acknowledged is lost (every StartRun and
decision the clients got an acknowledgement for is in the runs' histories), nothing is
duplicated, and the work resumes: every run completes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.log.kafka import KafkaLog
from engine.log.port import Topics
from examples.chaos import app
from tests.faults.conftest import Broker
from tests.faults.harness import (
    Chaos,
    Operator,
    Workers,
    figures_of,
    read_effects,
    read_runs,
    report,
    verify,
)

pytestmark = [pytest.mark.faults, pytest.mark.kafka]


async def test_a_broker_crash_mid_load_loses_and_repeats_nothing(
    fault_broker: Broker,
    workers: Workers,
    client: KafkaLog,
    fresh_prefix: str,
    effects: Path,
    chaos_report: Callable[[str], None],
) -> None:
    chaos = Chaos.from_env("broker-restart", short_runs=80)
    rng = chaos.rng()
    topics = Topics(fresh_prefix)
    operator = Operator(client, topics, effects, rng)
    await operator.start()
    began = time.monotonic()
    try:
        for _ in range(3):
            workers.spawn()
        starting = asyncio.create_task(operator.start_runs(chaos.runs, every_s=0.2))
        restarts = max(1, chaos.runs // 200)
        for number in range(restarts):  # spread over the load
            share = chaos.runs * (number + 1) // (restarts + 1) // 2

            def progressed(share: int = share) -> bool:
                return len(operator.done) >= max(1, share)

            await operator.until(progressed, 120 + chaos.runs * 0.5, "runs flow")
            down = time.monotonic()
            await fault_broker.crash_and_restart(down_s=rng.uniform(1.0, 3.0))
            outage = time.monotonic() - down
        await starting
        await operator.until(operator.all_done, 180 + chaos.runs * 0.5, "every run finished")
    finally:
        await operator.close()
    runs = await read_runs(fault_broker.bootstrap, topics)
    verdict = verify(runs, operator.runs, operator.sent, read_effects(effects), app)
    figures = {
        "broker_crashes": restarts,
        "broker_outage_s": round(outage, 1),
        "commits_failed": workers.count("commit_failed"),
        **figures_of(operator, workers, verdict, began),
    }
    report(chaos, figures, chaos_report)
    verdict.check()
    assert not workers.crashes()
