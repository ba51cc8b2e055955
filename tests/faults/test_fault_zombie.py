"""Scenario 3: a zombie. The owner is stopped (SIGSTOP) right after a tool ran, before its
result is committed, and stays stopped past its session timeout; another worker takes its
partitions over (its producers fence the zombie's); then the zombie is resumed (SIGCONT) and
tries to commit. None of its writes from then until it is assigned partitions again may be
visible to read_committed readers; every other promise holds as usual."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.log.kafka import KafkaLog
from engine.log.port import Topics
from examples.chaos import app
from tests.faults.conftest import Broker
from tests.faults.harness import (
    Chaos,
    Operator,
    Proc,
    Workers,
    figures_of,
    read_effects,
    read_runs,
    report,
    verify,
    writers,
)

pytestmark = [pytest.mark.faults, pytest.mark.kafka]

SESSION_S = 3.0  # COUNTERSIGN_FAULT_SESSION_MS of the workers (harness default)


def _at(line: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()


def owned_by(proc: Proc) -> set[int]:
    """Partitions the worker restored since its last revocation."""
    owned: set[int] = set()
    for line in proc.lines():
        if line.get("event") == "partitions_revoked":
            owned.clear()
        elif line.get("event") == "partition_restored":
            owned.add(int(line["partition"]))
    return owned


async def wait_for_log(proc: Proc, event: str, timeout_s: float, after: float = 0.0) -> float:
    """Wall time of the first `event` line logged after `after`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in proc.lines():
            if line.get("event") == event and _at(line) > after:
                return _at(line)
        await asyncio.sleep(0.01)
    raise AssertionError(f"{proc.name} logged no {event} within {timeout_s}s\n{proc.tail()}")


async def test_a_zombie_s_writes_after_takeover_are_never_visible(
    fault_broker: Broker,
    workers: Workers,
    client: KafkaLog,
    fresh_prefix: str,
    effects: Path,
    chaos_report: Callable[[str], None],
) -> None:
    chaos = Chaos.from_env("zombie", short_runs=60)
    rng = chaos.rng()
    topics = Topics(fresh_prefix)
    operator = Operator(client, topics, effects, rng)
    operator.workers = workers
    await operator.start()
    began = time.monotonic()
    zombie, heir = workers.spawn(), workers.spawn()
    try:
        starting = asyncio.create_task(operator.start_runs(chaos.runs, every_s=0.15))
        await operator.until(lambda: bool(owned_by(zombie)), 60, "the zombie owns partitions")
        await wait_for_log(zombie, "tool_completed", 30, after=time.time())
        zombie.popen.send_signal(signal.SIGSTOP)
        stopped = time.time()
        zombie_owned = owned_by(zombie)
        await operator.until(lambda: zombie_owned <= owned_by(heir), 60, "the heir took over")
        await asyncio.sleep(SESSION_S)  # runs flow on the heir meanwhile
        zombie.popen.send_signal(signal.SIGCONT)
        resumed = time.time()
        await starting
        await operator.until(operator.all_done, 120 + chaos.runs * 0.5, "every run finished")
    finally:
        await operator.close()
    reassigned = await wait_for_log(zombie, "partition_restored", 30, after=resumed)

    runs = await read_runs(fault_broker.bootstrap, topics)
    verdict = verify(runs, operator.runs, operator.sent, read_effects(effects), app)
    visible = zombie_writes_after_takeover(runs, zombie.pid, stopped, reassigned)
    figures = {
        "zombie_partitions": sorted(zombie_owned),
        "zombie_stopped_s": round(resumed - stopped, 1),
        "zombie_commits_fenced": sum(
            1 for line in zombie.lines() if line.get("event") == "fenced" and _at(line) > resumed
        ),
        "zombie_steps_abandoned": sum(
            1
            for line in zombie.lines()
            if line.get("event") in ("step_abandoned", "partition_lost_mid_step")
            and _at(line) > resumed
        ),
        "zombie_writes_visible": len(visible),
        **figures_of(operator, workers, verdict, began),
    }
    report(chaos, figures, chaos_report)
    assert not visible, visible[:10]
    verdict.check()
    assert not workers.crashes()


def zombie_writes_after_takeover(
    runs: dict[str, Any], zombie: int, stopped: float, reassigned: float
) -> list[str]:
    """Events the zombie wrote that a read_committed reader sees although they were made or
    committed after the takeover and before the zombie owned partitions again."""
    takeover: dict[int, int] = {}  # partition -> first offset the heir wrote after the stop
    made: dict[tuple[int, int], float] = {}
    for events in runs.values():
        for (writer, partition, offset), (_, _, event, _) in zip(
            writers(events), events, strict=True
        ):
            at = event.occurred_at_us / 1e6
            made[(partition, offset)] = at
            if writer != zombie and at >= stopped:
                takeover[partition] = min(takeover.get(partition, offset), offset)
    found = []
    for events in runs.values():
        for writer, partition, offset in writers(events):
            if writer != zombie or made[(partition, offset)] >= reassigned:
                continue
            late = partition in takeover and offset > takeover[partition]
            if late or made[(partition, offset)] >= stopped:
                found.append(f"partition {partition} offset {offset}")
    return found
