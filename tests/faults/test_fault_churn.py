"""Scenario 2: rebalance churn. Workers join and leave (gracefully) every few seconds while
runs flow; the same criteria as for kills, plus the resume latency (decision sent → decision
accepted in the log) during churn."""

from __future__ import annotations

import asyncio
import random
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


async def churn(workers: Workers, operator: Operator, rng: random.Random) -> dict[str, int]:
    """Every 2-4 s a worker joins or one leaves (SIGTERM), keeping 2 to 4 of them."""
    joins = leaves = 0
    while not operator.all_done():
        await asyncio.sleep(rng.uniform(2.0, 4.0))
        alive = workers.alive
        if len(alive) < 2 or (len(alive) < 4 and rng.random() < 0.5):
            workers.spawn()
            joins += 1
        else:
            await workers.leave(rng.choice(alive))
            leaves += 1
    return {"joins": joins, "leaves": leaves}


async def test_rebalance_churn_loses_and_repeats_nothing(
    fault_broker: Broker,
    workers: Workers,
    client: KafkaLog,
    fresh_prefix: str,
    effects: Path,
    chaos_report: Callable[[str], None],
) -> None:
    chaos = Chaos.from_env("churn", short_runs=100)
    rng = chaos.rng()
    topics = Topics(fresh_prefix)
    operator = Operator(client, topics, effects, rng)
    await operator.start()
    began = time.monotonic()
    try:
        for _ in range(3):
            workers.spawn()
        starting = asyncio.create_task(operator.start_runs(chaos.runs, every_s=0.25))
        churning = asyncio.create_task(churn(workers, operator, rng))
        await starting
        await operator.until(operator.all_done, 120 + chaos.runs * 0.5, "every run finished")
        churned = await churning
    finally:
        await operator.close()
    runs = await read_runs(fault_broker.bootstrap, topics)
    verdict = verify(runs, operator.runs, operator.sent, read_effects(effects), app)
    figures = {
        **churned,
        "revocations_that_outlived_a_step": workers.count("step_outlived_revocation"),
        **figures_of(operator, workers, verdict, began),
    }
    report(chaos, figures, chaos_report)
    verdict.check()
    assert not workers.crashes()
    # Graceful rebalances let steps finish: no tool call is left in doubt.
    assert figures["in_doubt_raised"] == 0
