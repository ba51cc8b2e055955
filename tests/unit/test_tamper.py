"""The tamper suite on the in-memory log: an insider doctors the log (consistently: every
rewritten run re-chained) and `verify` names it, every time; clean histories never alarm.

Short form here (a seeded sample); the long form runs 1,000 randomized trials of each:
`make tamper` (COUNTERSIGN_TAMPER_TRIALS, COUNTERSIGN_TAMPER_CLEAN, COUNTERSIGN_TAMPER_SEED).
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter

import pytest

from engine.log.memory import MemoryLog
from engine.log.port import Record, Topics
from projections import MemoryStore, Projector
from projections.verify import AnchorCheck, VerifyReport, verify_report
from tests.helpers import eventually
from tests.tamper import CODEC, DOCTORS, WORKER_KEY, Row, clean_history

TRIALS = int(os.environ.get("COUNTERSIGN_TAMPER_TRIALS", "40"))
CLEAN = int(os.environ.get("COUNTERSIGN_TAMPER_CLEAN", "3"))
SEED = int(os.environ.get("COUNTERSIGN_TAMPER_SEED", "1107"))
TOPICS = Topics("tamper")
CHECK = AnchorCheck(topic=TOPICS.anchors, keys={WORKER_KEY.kid: WORKER_KEY.public()})


async def project(log: MemoryLog, topic: str = TOPICS.runs) -> MemoryStore:
    """The runs `topic` projected to its end (2 partitions) in a fresh in-memory store."""
    store = MemoryStore(schema="public")
    stop = asyncio.Event()
    task = asyncio.create_task(Projector(log, store, topic, "g", CODEC).run(stop))

    async def caught_up() -> bool:
        positions = await store.positions("core", topic)
        ends = [await log.end_offset(topic, p) for p in range(2)]
        return all(positions.get(p, 0) >= end for p, end in enumerate(ends))

    try:
        await eventually(caught_up, message="projected")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    return store


async def clean_log(rng: random.Random) -> MemoryLog:
    log = MemoryLog(default_partitions=2)
    await log.ensure_topics(TOPICS, 2)
    await clean_history(log, TOPICS, rng, runs=rng.randint(3, 8))
    return log


async def check(log: MemoryLog, store: MemoryStore) -> VerifyReport:
    return await verify_report(log, TOPICS.runs, store, CODEC, anchors=CHECK)


def found(report: VerifyReport) -> list[str]:
    return [b.what for v in report.runs for b in v.breaks] + [
        problem for p in report.partitions for problem in p.problems
    ]


def rows(log: MemoryLog, topic: str, partition: int) -> list[Row]:
    return [Row(r.key, r.value) for r in log._topics[topic][partition]]  # the insider's view


def install(log: MemoryLog, topic: str, partition: int, new: list[Row]) -> None:
    """Write the partition's records anew, offsets from 0 (the storage is the insider's)."""
    log._topics[topic][partition] = [
        Record(topic, partition, offset, row.key, row.value, 0) for offset, row in enumerate(new)
    ]


@pytest.mark.parametrize("trial", range(CLEAN))
async def test_clean_histories_raise_no_alarm(trial: int) -> None:
    rng = random.Random(SEED * 7919 + trial)
    log = await clean_log(rng)

    report = await check(log, await project(log))

    assert report.ok, found(report)
    assert all(v.unanchored == 0 for v in report.runs)
    assert sum(p.anchors for p in report.partitions) > 0


async def test_every_doctored_log_is_caught() -> None:
    rng = random.Random(SEED)
    log = await clean_log(rng)
    stale = await project(log)
    assert (await check(log, stale)).ok
    caught: Counter[str] = Counter()
    for trial in range(TRIALS):
        partition = rng.randrange(2)
        runs, anchors = rows(log, TOPICS.runs, partition), rows(log, TOPICS.anchors, partition)
        name = rng.choice(sorted(DOCTORS))
        doctored = DOCTORS[name](rng, runs, anchors)
        if doctored is None:
            continue
        new_runs, new_anchors, label = doctored
        install(log, TOPICS.runs, partition, new_runs)
        install(log, TOPICS.anchors, partition, new_anchors)
        try:
            rebuilt = rng.random() < 0.5  # projections rebuilt from the doctored log, or not
            report = await check(log, await project(log) if rebuilt else stale)
        finally:
            install(log, TOPICS.runs, partition, runs)
            install(log, TOPICS.anchors, partition, anchors)
        assert not report.ok, (trial, name)
        assert any(label in what for what in found(report)), (trial, name, found(report))
        caught[name] += 1
    print(f"\ntamper trials caught: {dict(caught)} of {TRIALS} drawn (seed {SEED})")
    assert sum(caught.values()) >= TRIALS * 0.7
