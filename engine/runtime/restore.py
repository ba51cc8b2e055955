"""Rebuilding the runs of one partition from the log, from its latest checkpoint (I/O).

`restore_partition` reads the partition's latest checkpoint (`engine.core.checkpoint`), reads the
runs topic from the checkpoint's `restore_from` to its end (read_committed), sorts the
records with a `RestoreScan` (records of forgotten runs are skipped without decoding) and
decodes only the runs the previous owner kept: the live ones, ready to resume without
decoding anything again, and the last finished ones, whose states answer repeated commands.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from engine.core.checkpoint import (
    Checkpoint,
    Horizon,
    RawEvent,
    RecordKind,
    RestoreScan,
    decode_checkpoint,
)
from engine.core.live_run import LiveRun
from engine.core.state import RunState
from engine.errors import ConfigurationError
from engine.log.port import EventLog, Topics
from events.codec import Codec
from events.errors import DecodeError
from events.run_events import RunCancelled, RunCompleted, RunFailed, RunStarted

__all__ = ["Restored", "latest_checkpoint", "restore_partition"]

log = structlog.get_logger(__name__)

_ENDS = (RunCompleted, RunFailed, RunCancelled)
_FIRST_WINDOW = 16


@dataclass
class Restored:
    """What a restore brought back, and what it cost."""

    partition: int
    live: dict[str, LiveRun]
    finished: dict[str, RunState]
    """In the order the runs finished, oldest first."""
    horizon: Horizon
    checkpoint: Checkpoint | None
    read: int
    skipped: int
    seconds: float


async def latest_checkpoint(log_: EventLog, topics: Topics, partition: int) -> Checkpoint | None:
    """The last checkpoint written for runs partition `partition`, or None if there is none
    (a new deployment) or it is unreadable (then a restore reads from offset 0)."""
    end = await log_.end_offset(topics.checkpoints, partition)
    window = _FIRST_WINDOW
    while True:  # markers and aborted records take offsets too: look back until one is found
        start = max(0, end - window)
        last = None
        async for record in log_.read(topics.checkpoints, partition, start):
            last = record
        if last is not None:
            try:
                return decode_checkpoint(last.value)
            except ValueError as exc:
                log.error("checkpoint_unreadable", partition=partition, reason=str(exc))
                return None
        if start == 0:
            return None
        window *= 8


async def restore_partition(
    log_: EventLog, topics: Topics, codec: Codec, partition: int, *, keep_finished: int
) -> Restored:
    started = time.perf_counter()
    checkpoint = await latest_checkpoint(log_, topics, partition)
    start = checkpoint.restore_from if checkpoint is not None else 0
    try:
        restored = await _restore_from(log_, topics, codec, partition, start, keep_finished)
    except ConfigurationError:  # the checkpoint names an offset the log does not have
        if start == 0:
            raise
        log.error("checkpoint_outside_log", partition=partition, restore_from=start)
        restored = await _restore_from(log_, topics, codec, partition, 0, keep_finished)
    restored.checkpoint = checkpoint
    restored.seconds = time.perf_counter() - started
    return restored


async def _restore_from(
    log_: EventLog, topics: Topics, codec: Codec, partition: int, start: int, keep: int
) -> Restored:
    end = await log_.end_offset(topics.runs, partition)
    if start > end:
        log.error("checkpoint_ahead_of_log", partition=partition, restore_from=start, end=end)
        start = 0
    scan = RestoreScan(keep)
    read = 0
    async for record in log_.read(topics.runs, partition, start):
        read += 1
        scan.add(record.key or "", record.offset, record.value, _kind(codec, record.value))
    horizon = Horizon(keep, next_offset=end)
    live = _decode_runs(codec, partition, scan.live.items(), horizon)
    finished: dict[str, RunState] = {}
    for run in _decode_runs(codec, partition, scan.finished.items(), horizon).values():
        if run.state is not None and run.state.terminal:
            horizon.finished(run.run_id)
            finished[run.run_id] = run.state
        else:  # its history broke before its end: kept as it is, like a live run
            live[run.run_id] = run
    return Restored(
        partition=partition,
        live={run_id: run for run_id, run in live.items() if _is_live(run)},
        finished=finished,
        horizon=horizon,
        checkpoint=None,
        read=read,
        skipped=scan.skipped,
        seconds=0.0,
    )


def _kind(codec: Codec, value: bytes) -> RecordKind:
    cls = codec.type_of(value)
    if cls is RunStarted:
        return "start"
    if cls in _ENDS:
        return "end"
    return "other"


def _decode_runs(
    codec: Codec,
    partition: int,
    runs: Iterable[tuple[str, list[RawEvent]]],
    horizon: Horizon,
) -> dict[str, LiveRun]:
    decoded: dict[str, LiveRun] = {}
    for run_id, events in runs:
        run = _decode_run(codec, partition, run_id, events)
        if run is not None and run.state is not None:
            horizon.found(run_id, events[0].offset)
            decoded[run_id] = run
    return decoded


def _decode_run(
    codec: Codec, partition: int, run_id: str, events: list[RawEvent]
) -> LiveRun | None:
    run = LiveRun(run_id, partition)
    for event in events:
        try:
            envelope = codec.decode_event(event.value)
            if envelope.run_id != run_id:
                raise ValueError(f"event of run {envelope.run_id} keyed {run_id!r}")
            run.record(envelope, event.value)
        except (DecodeError, ValueError) as exc:
            # Not ours to fix by guessing: the run stops here and is left as it was.
            log.error(
                "broken_run_history",
                run_id=run_id,
                partition=partition,
                offset=event.offset,
                reason=str(exc),
            )
            break
    return run if run.history else None


def _is_live(run: LiveRun) -> bool:
    return run.state is not None and not run.state.terminal
