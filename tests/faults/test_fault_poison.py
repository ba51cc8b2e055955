"""Scenario 6: poison messages mixed into the commands topic at a known rate (every third
StartRun is followed by one bad command, cycling through every kind of bad input). The
dead-letter count equals the number injected, each with its source coordinates and reason;
no worker crashes; memory stays bounded; the group's lag returns to zero; the good runs
all complete as usual."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.log.kafka import KafkaLog
from engine.log.port import Topics
from engine.runtime.restore import latest_checkpoint
from events.codec import Codec
from examples.chaos import app
from tests.faults.conftest import Broker
from tests.faults.harness import (
    PARTITIONS,
    POISON_LIMIT,
    POISON_REASONS,
    Chaos,
    Operator,
    Workers,
    command_at,
    dead_letters,
    figures_of,
    peak_rss_mb,
    poison,
    read_effects,
    read_runs,
    report,
    verify,
)
from tests.helpers import eventually

pytestmark = [pytest.mark.faults, pytest.mark.kafka]

RATE = 3  # one bad command after every third StartRun
RSS_LIMIT_MB = 400


async def lag(client: KafkaLog, topics: Topics) -> int:
    """Commands not yet consumed by the worker group: the end of each commands partition
    minus the position committed with the partition's latest checkpoint."""
    total = 0
    for partition in range(PARTITIONS):
        checkpoint = await latest_checkpoint(client, topics, partition, Codec())
        consumed = checkpoint.consumed if checkpoint and checkpoint.consumed is not None else 0
        total += await client.end_offset(topics.commands, partition) - consumed
    return total


async def test_poison_goes_to_the_dead_letter_topic_and_nothing_stops(
    fault_broker: Broker,
    workers: Workers,
    client: KafkaLog,
    fresh_prefix: str,
    effects: Path,
    chaos_report: Callable[[str], None],
) -> None:
    chaos = Chaos.from_env("poison", short_runs=60)
    rng = chaos.rng()
    topics = Topics(fresh_prefix)
    operator = Operator(client, topics, effects, rng)
    await operator.start()
    workers.env["COUNTERSIGN_MAX_MESSAGE_BYTES"] = str(POISON_LIMIT)
    began = time.monotonic()
    kinds = itertools.cycle(sorted(POISON_REASONS))
    injected: dict[tuple[int, int], str] = {}  # (partition, offset) -> kind
    codec = Codec()
    try:
        for _ in range(3):
            workers.spawn()
        for number in range(chaos.runs):
            await operator.start_runs(1)
            if number % RATE == RATE - 1:
                kind = next(kinds)
                bad = poison(kind, codec, f"poison-{number}", topics.commands)
                at = await operator.publish_raw(bad)
                injected[(at.partition, at.offset)] = kind
            await asyncio.sleep(0.1)
        await operator.until(operator.all_done, 120 + chaos.runs * 0.5, "every run finished")
        await eventually(lambda: _no_lag(client, topics), timeout=60, message="lag back to 0")
        rss = {proc.name: round(peak_rss_mb(proc.pid), 1) for proc in workers.alive}
    finally:
        await operator.close()

    letters = await dead_letters(client, topics)
    wrong = []
    for letter in letters:
        kind = injected.get((letter.source_partition, letter.source_offset), "?")
        source = await command_at(client, topics, letter.source_partition, letter.source_offset)
        if (
            letter.source_topic != topics.commands
            or source != letter.value
            or POISON_REASONS.get(kind) is None
            or POISON_REASONS[kind] not in letter.reason
        ):
            wrong.append(
                f"{kind}: {letter.reason} @{letter.source_partition}:{letter.source_offset}"
            )
    runs = await read_runs(fault_broker.bootstrap, topics)
    verdict = verify(runs, operator.runs, operator.sent, read_effects(effects), app)
    figures = {
        "poison_injected": len(injected),
        "poison_kinds": len(set(injected.values())),
        "dead_lettered": len(letters),
        "dead_letters_wrong": len(wrong),
        "peak_rss_mb": rss,
        **figures_of(operator, workers, verdict, began),
    }
    report(chaos, figures, chaos_report)
    assert len(letters) == len(injected)
    assert not wrong, wrong
    assert max(rss.values()) < RSS_LIMIT_MB
    verdict.check()
    assert not workers.crashes()


async def _no_lag(client: KafkaLog, topics: Topics) -> bool:
    return await lag(client, topics) == 0
