"""`verify` after partitions were added: a run keeps the partition it started on, so its
records and its anchors are found through the partition map (`engine.log.routing`), not a
hash of its id over today's partition count; an insider's doctoring is still named there."""

from __future__ import annotations

import random

from engine.log.memory import MemoryLog
from engine.log.port import partition_for
from engine.log.routing import PartitionMap
from engine.log.routing_log import record_partition_map
from projections import MemoryStore
from projections.verify import VerifyReport, verify_report
from tests.tamper import CODEC
from tests.unit.test_tamper import CHECK, TOPICS, clean_log, found, install, project, rows

GROWN = PartitionMap((2, 4))


async def repartitioned(seed: int) -> tuple[MemoryLog, list[str]]:
    """A clean, anchored history on 2 partitions, then grown to 4 (as `topics repartition`
    does: partitions added, the new map recorded); returns the runs whose home moved.

    Run ids are the publisher's own (random): a history where no run's hash home moves
    (each moves with probability 1/2, 3 to 8 runs) is made again."""
    for attempt in range(20):
        log, moved = await _grown(random.Random(seed + attempt))
        if moved:
            return log, moved
    raise AssertionError("no run's hash home moved in 20 histories")


async def _grown(rng: random.Random) -> tuple[MemoryLog, list[str]]:
    log = await clean_log(rng)
    for name in (TOPICS.commands, TOPICS.runs, TOPICS.anchors):
        log._topics[name].extend([] for _ in range(2))  # the broker adds empty partitions
    await record_partition_map(log, TOPICS, GROWN)
    run_ids = {
        CODEC.decode_event(r.value).run_id for p in range(2) for r in log._topics[TOPICS.runs][p]
    }
    moved = sorted(r for r in run_ids if partition_for(r, 2) != partition_for(r, 4))
    return log, moved


async def check(
    log: MemoryLog, store: MemoryStore, run_ids: list[str], *, mapped: bool = True
) -> VerifyReport:
    partition_map = GROWN if mapped else None
    return await verify_report(
        log, TOPICS.runs, store, CODEC, run_ids, anchors=CHECK, partition_map=partition_map
    )


async def test_named_runs_are_found_on_the_partition_they_started_on() -> None:
    log, moved = await repartitioned(11)
    for store in (await project(log), MemoryStore(schema="public")):  # projected, or not yet
        report = await check(log, store, moved)

        assert report.ok, found(report)
        for verdict in report.runs:
            assert verdict.log_events > 0, verdict.run_id
            assert verdict.unanchored == 0, verdict.run_id  # its anchors were read too
        assert {p.partition for p in report.partitions} >= {partition_for(r, 2) for r in moved}


async def test_a_run_deleted_before_the_repartition_is_named_through_the_map() -> None:
    log, moved = await repartitioned(11)
    victim = moved[0]
    partition = partition_for(victim, 2)
    before = rows(log, TOPICS.runs, partition)
    kept = [row for row in before if CODEC.decode_event(row.value).run_id != victim]
    install(log, TOPICS.runs, partition, kept)
    rebuilt = await project(log)  # the insider rebuilt the projections: no row names the run

    report = await check(log, rebuilt, [victim])
    blind = await check(log, rebuilt, [victim], mapped=False)

    (verdict,) = report.runs
    assert any("deleted" in b.what for b in verdict.breaks), found(report)
    (unseen,) = blind.runs  # without the map only the new home is read: nothing to compare
    assert unseen.ok
    assert unseen.log_events == 0


async def test_a_run_moved_to_another_partition_is_named() -> None:
    log, moved = await repartitioned(11)
    victim = moved[0]
    old, new = partition_for(victim, 2), partition_for(victim, 4)
    before = rows(log, TOPICS.runs, old)
    taken = [row for row in before if CODEC.decode_event(row.value).run_id == victim]
    install(log, TOPICS.runs, old, [row for row in before if row not in taken])
    install(log, TOPICS.runs, new, rows(log, TOPICS.runs, new) + taken)

    report = await check(log, await project(log), [victim])

    (verdict,) = report.runs
    assert any("moved" in b.what for b in verdict.breaks), found(report)
