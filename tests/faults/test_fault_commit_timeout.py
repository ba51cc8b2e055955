"""Unknown transaction outcomes: the broker is frozen (SIGSTOP) for a moment, again and
again, while runs flow, so commits in flight time out with their outcome unknown. The
worker's producer is dropped and replaced through a rejoin (never re-created in place), the
partition is rebuilt from the log, and the step retried: nothing torn, nothing twice."""

from __future__ import annotations

import asyncio
import os
import signal
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

FREEZE_S = 2.0  # longer than the commit timeout, shorter than the group session


async def test_commits_with_unknown_outcome_are_retried_without_tearing_or_repeating(
    fault_broker: Broker,
    workers: Workers,
    client: KafkaLog,
    fresh_prefix: str,
    effects: Path,
    chaos_report: Callable[[str], None],
) -> None:
    chaos = Chaos.from_env("commit-timeout", short_runs=40)
    rng = chaos.rng()
    topics = Topics(fresh_prefix)
    operator = Operator(client, topics, effects, rng)
    await operator.start()
    workers.env["COUNTERSIGN_FAULT_COMMIT_TIMEOUT_S"] = "1"
    broker_pid = int((fault_broker.state_dir / "kafka.pid").read_text())
    began = time.monotonic()
    freezes = 0
    try:
        workers.spawn()
        workers.spawn()
        starting = asyncio.create_task(operator.start_runs(chaos.runs, every_s=0.2))
        await operator.until(lambda: len(operator.done) > 0, 60, "runs flow")
        while not starting.done() and freezes < max(3, chaos.runs // 10):
            await asyncio.sleep(rng.uniform(0.5, 1.5))
            os.kill(broker_pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(FREEZE_S)
            finally:
                os.kill(broker_pid, signal.SIGCONT)
            freezes += 1
        await starting
        await operator.until(operator.all_done, 120 + chaos.runs * 0.5, "every run finished")
    finally:
        os.kill(broker_pid, signal.SIGCONT)
        await operator.close()
    runs = await read_runs(fault_broker.bootstrap, topics)
    verdict = verify(runs, operator.runs, operator.sent, read_effects(effects), app)
    figures = {
        "broker_freezes": freezes,
        "commits_failed": workers.count("commit_failed"),
        "producers_dropped": workers.count("producer_dropped"),
        "commits_found_gone_through": workers.count("commit_went_through"),
        **figures_of(operator, workers, verdict, began),
    }
    report(chaos, figures, chaos_report)
    verdict.check()
    assert not workers.crashes()
    assert figures["commits_failed"] > 0, "no commit was caught by a freeze"
