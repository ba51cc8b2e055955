"""Scenario 1: kill -9 a worker at random moments while runs with several steps and
interrupts flow; half the kills land right after a tool ran, before its result commits."""

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
    chaos_kills,
    figures_of,
    read_effects,
    read_runs,
    report,
    verify,
)

pytestmark = [pytest.mark.faults, pytest.mark.kafka]


async def test_kill_9_at_random_moments_loses_and_repeats_nothing(
    fault_broker: Broker,
    workers: Workers,
    client: KafkaLog,
    fresh_prefix: str,
    effects: Path,
    chaos_report: Callable[[str], None],
) -> None:
    chaos = Chaos.from_env("kill-9", short_runs=100)
    rng = chaos.rng()
    topics = Topics(fresh_prefix)
    operator = Operator(client, topics, effects, rng)
    await operator.start()
    began = time.monotonic()
    try:
        for _ in range(3):
            workers.spawn()
        starting = asyncio.create_task(operator.start_runs(chaos.runs, every_s=0.25))
        killing = asyncio.create_task(
            chaos_kills(workers, operator, rng, budget=max(5, chaos.runs // 12))
        )
        await starting
        await operator.until(operator.all_done, 120 + chaos.runs * 0.5, "every run finished")
        killed = await killing
    finally:
        await operator.close()
    runs = await read_runs(fault_broker.bootstrap, topics)
    verdict = verify(runs, operator.runs, operator.sent, read_effects(effects), app)
    figures = {**killed, **figures_of(operator, workers, verdict, began)}
    report(chaos, figures, chaos_report)
    verdict.check()
    assert not workers.crashes()
