"""Issue 17's rolling upgrade, as an operator sees it: a worker or projector of the older
release that meets a newer release's records stands down, stays alive, is not ready (saying
why), and `countersign_stood_down` is 1 for it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from countersign.prometheus import PrometheusMetrics
from engine.log.memory import MemoryLog
from engine.log.port import Topics, partition_for
from engine.runtime.worker import Worker, WorkerSettings
from engine.telemetry import Telemetry
from events.codec import Codec
from projections.memory import MemoryStore
from projections.runner import Projector
from tests import release2
from tests.approvals_harness import Clock, Harness
from tests.helpers import eventually
from tests.unit.test_upgrades import app

PARTITIONS = 2
STOOD_DOWN = 'countersign_stood_down{{role="{}"}} 1.0'


async def _written_by_the_newer_release(log: MemoryLog, topics: Topics, tmp_path: Path) -> Harness:
    await log.ensure_topics(topics, PARTITIONS)
    newer = Harness(log, topics, timeout=10.0, codec=release2.release2_codec(tmp_path))
    await newer.start_worker(app, Clock(), group=f"{topics.prefix}.workers")
    # Newer records on every partition, so whichever the older worker is handed has some
    # (run ids are random: four runs may all hash to one partition).
    homes: set[int] = set()
    n = 0
    while n < 4 or homes != set(range(PARTITIONS)):
        run_id = await newer.publisher.start_run("pay", {"amount": n}, requested_by="bob")
        await newer.open_interrupts(run_id, 1)
        homes.add(partition_for(run_id, PARTITIONS))
        n += 1
        assert n < 64, "no run id hashed to some partition"
    return newer


async def test_an_older_worker_that_stood_down_is_alive_not_ready_and_counted(
    tmp_path: Path,
) -> None:
    log = MemoryLog(default_partitions=PARTITIONS)
    topics = Topics("standing")
    newer = await _written_by_the_newer_release(log, topics, tmp_path)
    metrics = PrometheusMetrics("worker")
    settings = WorkerSettings(group=f"{topics.prefix}.workers", poll_timeout_s=0.05)
    older = Worker(app, log, topics, Codec(), settings=settings, telemetry=Telemetry(metrics))
    await older.watch.sample()
    assert STOOD_DOWN.format("worker").replace("1.0", "0.0") in metrics.exposition().decode()
    task = asyncio.create_task(older.run(asyncio.Event()))
    await eventually(task.done, timeout=20, message="the older worker stands down")
    await task
    assert older.stood_down is not None
    assert older.watch.live().ok
    verdict = await older.watch.ready()
    assert not verdict.ok
    assert verdict.reasons[0].startswith("stood down: ")
    await older.watch.sample()
    assert STOOD_DOWN.format("worker") in metrics.exposition().decode()
    await newer.halt_all()


async def test_an_older_projector_that_stood_down_is_not_ready_and_counted(tmp_path: Path) -> None:
    log = MemoryLog(default_partitions=PARTITIONS)
    topics = Topics("standing-p")
    newer = await _written_by_the_newer_release(log, topics, tmp_path)
    await newer.halt_all()
    metrics = PrometheusMetrics("projector")
    projector = Projector(
        log, MemoryStore(), topics.runs, "p", Codec(), poll_timeout_s=0.05, metrics=metrics
    )
    await asyncio.wait_for(projector.run(asyncio.Event()), 20)  # returns: it stood down
    assert projector.stood_down is not None
    verdict = await projector.watch.ready()
    assert not verdict.ok
    assert verdict.reasons[0].startswith("stood down: ")
    await projector.watch.sample()
    assert STOOD_DOWN.format("projector") in metrics.exposition().decode()
