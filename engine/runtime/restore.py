"""Rebuilding the runs of one partition from the log, from its latest checkpoint (I/O).

`restore_partition` reads the partition's latest checkpoint (`engine.core.checkpoint`), reads the
runs topic from the checkpoint's `restore_from` to its end (read_committed), sorts the
records with a `RestoreScan` (records of forgotten runs are skipped without decoding) and
decodes only the runs the previous owner kept: the live ones, ready to resume without
decoding anything again, and the last finished ones, whose states answer repeated commands.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import structlog

from engine.core.checkpoint import (
    Checkpoint,
    Horizon,
    RawEvent,
    RecordKind,
    RestoreScan,
)
from engine.core.integrity import Stray, check_run
from engine.core.live_run import LiveRun
from engine.core.run_index import RunIndex
from engine.core.state import RunState
from engine.errors import ConfigurationError
from engine.log.port import EventLog, Headers, Topics
from events.codec import Codec
from events.envelope import EventEnvelope
from events.errors import DecodeError, NewerSchema
from events.run_events import RunCancelled, RunCompleted, RunFailed, RunQuarantined, RunStarted

__all__ = ["Restored", "latest_checkpoint", "restore_partition"]

log = structlog.get_logger(__name__)

_ENDS = (RunCompleted, RunFailed, RunCancelled)
_FIRST_WINDOW = 16
_MAX_ID_BYTES = 1024


@dataclass
class Restored:
    """What a restore brought back, and what it cost."""

    partition: int
    live: dict[str, LiveRun]
    finished: dict[str, RunState]
    """In the order the runs finished, oldest first."""
    horizon: Horizon
    index: RunIndex
    """Every run the partition ever started (`engine.core.run_index`)."""
    quarantine: dict[str, list[Stray]]
    """Runs whose records break their chain in ways no earlier quarantine named."""
    newer: NewerSchema | None
    """A record a newer release wrote, if the restore met one: this worker must stand down."""
    checkpoint: Checkpoint | None
    read: int
    skipped: int
    seconds: float


async def latest_checkpoint(
    log_: EventLog, topics: Topics, partition: int, codec: Codec
) -> Checkpoint | None:
    """The last checkpoint written for runs partition `partition`, or None if there is none
    (a new deployment) or it is unreadable (then a restore reads from offset 0). One a newer
    release wrote raises `NewerSchema`: this worker must stand down, not start over."""
    end = await log_.end_offset(topics.checkpoints, partition)
    window = _FIRST_WINDOW
    while True:  # markers and aborted records take offsets too: look back until one is found
        start = max(0, end - window)
        last = None
        async for record in log_.read(topics.checkpoints, partition, start):
            last = record
        if last is not None:
            try:
                return codec.decode_checkpoint(last.value, last.headers)
            except NewerSchema:
                raise
            except (DecodeError, ValueError) as exc:
                log.error("checkpoint_unreadable", partition=partition, reason=str(exc))
                return None
        if start == 0:
            return None
        window *= 8


async def restore_partition(
    log_: EventLog,
    topics: Topics,
    codec: Codec,
    partition: int,
    *,
    keep_finished: int,
    keep_encoded: bool = False,
) -> Restored:
    """`keep_encoded`: live runs keep their events' bytes, to be packed while they wait."""
    started = time.perf_counter()
    try:
        checkpoint = await latest_checkpoint(log_, topics, partition, codec)
    except NewerSchema as newer:
        return _stood_down(partition, newer)
    start = checkpoint.restore_from if checkpoint is not None else 0
    try:
        restored = await _restore_from(
            log_, topics, codec, partition, start, keep_finished, keep_encoded
        )
    except ConfigurationError:  # the checkpoint names an offset the log does not have
        if start == 0:
            raise
        log.error("checkpoint_outside_log", partition=partition, restore_from=start)
        restored = await _restore_from(
            log_, topics, codec, partition, 0, keep_finished, keep_encoded
        )
    restored.checkpoint = checkpoint
    restored.index.extend(await _started_runs(log_, topics, partition))
    restored.seconds = time.perf_counter() - started
    return restored


async def _started_runs(log_: EventLog, topics: Topics, partition: int) -> list[tuple[str, str]]:
    """(run id, start command id) of every run the partition ever started, from the index
    topic (a record nobody but a worker writes; one that is not what a worker writes is
    skipped: the index may only ever refuse more, never less)."""
    pairs = []
    async for record in log_.read(topics.index, partition, 0):
        if record.key and len(record.value) <= _MAX_ID_BYTES:
            pairs.append((record.key, record.value.decode("utf-8", "replace")))
    return pairs


async def _restore_from(
    log_: EventLog,
    topics: Topics,
    codec: Codec,
    partition: int,
    start: int,
    keep: int,
    keep_encoded: bool,
) -> Restored:
    end = await log_.end_offset(topics.runs, partition)
    if start > end:
        log.error("checkpoint_ahead_of_log", partition=partition, restore_from=start, end=end)
        start = 0
    scan = RestoreScan(keep)
    read = 0
    newer: NewerSchema | None = None
    async for record in log_.read(topics.runs, partition, start):
        read += 1
        kind = _kind(codec, record.value)
        if kind is None:  # a type this release does not know: newer, or junk?
            newer = newer or _newer(codec, record.value, record.headers)
            kind = "other"
        scan.add(record.key or "", record.offset, record.value, kind, record.headers)
    if newer is not None:
        return _stood_down(partition, newer)
    horizon = Horizon(keep, next_offset=end)
    checked = _Checked(codec, partition)
    live = checked.runs(scan.live.items(), horizon, keep_encoded)
    ended = checked.runs(scan.finished.items(), horizon, False)
    decoded = [*live.values(), *ended.values()]
    finished: dict[str, RunState] = {}
    for run in ended.values():
        if run.state is not None and run.state.terminal and run.run_id not in checked.quarantine:
            horizon.finished(run.run_id)
            finished[run.run_id] = run.state
        else:  # its chain broke before its end, or it must be quarantined: kept in full
            live[run.run_id] = run
    index = RunIndex()  # the runs found here too: a log written before the index existed
    index.extend((run.run_id, run.state.start_command_id) for run in decoded if run.state)
    return Restored(
        partition=partition,
        live={run_id: run for run_id, run in live.items() if _kept(run, checked.quarantine)},
        finished=finished,
        horizon=horizon,
        index=index,
        quarantine={} if checked.newer else checked.quarantine,  # newer is not broken
        newer=checked.newer,
        checkpoint=None,
        read=read,
        skipped=scan.skipped,
        seconds=0.0,
    )


def _stood_down(partition: int, newer: NewerSchema) -> Restored:
    """Nothing restored: a newer release wrote this partition's checkpoint."""
    return Restored(
        partition=partition,
        live={},
        finished={},
        horizon=Horizon(0),
        index=RunIndex(),
        quarantine={},
        newer=newer,
        checkpoint=None,
        read=0,
        skipped=0,
        seconds=0.0,
    )


def _kind(codec: Codec, value: bytes) -> RecordKind | None:
    """What a record is, from its header alone (None: a schema this release does not know)."""
    cls = codec.type_of(value)
    if cls is None:
        return None
    if issubclass(cls, RunStarted):  # a later release may read it into a subclass
        return "start"
    if issubclass(cls, _ENDS):
        return "end"
    return "other"


def _newer(codec: Codec, value: bytes, headers: Headers) -> NewerSchema | None:
    """The proof that a newer release wrote `value`, or None (then it is junk, a stray of
    whichever run it names)."""
    try:
        codec.decode(value, headers)
    except NewerSchema as newer:
        return newer
    except DecodeError:
        return None
    return None


class _Checked:
    """Decodes runs from their raw records, keeping each run's chain (`check_run`) and
    noting the runs to quarantine: those with strays no earlier quarantine named. A record a
    newer release wrote is not a stray: it is noted (`newer`), and this worker stands down."""

    def __init__(self, codec: Codec, partition: int) -> None:
        self._codec = codec
        self._partition = partition
        self.quarantine: dict[str, list[Stray]] = {}
        self.newer: NewerSchema | None = None

    def runs(
        self, runs: Iterable[tuple[str, list[RawEvent]]], horizon: Horizon, keep: bool
    ) -> dict[str, LiveRun]:
        decoded: dict[str, LiveRun] = {}
        for run_id, events in runs:
            run = self._run(run_id, events, keep)
            if run is not None and run.state is not None:
                horizon.found(run_id, events[0].offset)
                decoded[run_id] = run
        return decoded

    def _run(self, run_id: str, events: list[RawEvent], keep: bool) -> LiveRun | None:
        headers = {event.offset: event.headers for event in events}

        def decode(offset: int, value: bytes) -> EventEnvelope:
            try:
                return self._codec.decode_event(value, headers[offset])
            except NewerSchema as exc:
                self.newer = self.newer or exc
                raise

        checked = check_run(decode, run_id, ((e.offset, e.value) for e in events))
        run = LiveRun(run_id, self._partition)
        known: set[int] = set()
        for envelope, value, _ in checked.chain:
            try:
                run.record(envelope, value, keep=keep)
            except ValueError as exc:  # the fold refuses it (e.g. no RunStarted first)
                log.error("broken_run_history", run_id=run_id, reason=str(exc))
                return None
            if isinstance(envelope.payload, RunQuarantined):
                known.update(_offsets(envelope.payload))
        new = [stray for stray in checked.strays if stray.offset not in known]
        if new and run.state is not None and not run.state.quarantined:
            self.quarantine[run_id] = new
            log.error(
                "run_chain_broken",
                run_id=run_id,
                partition=self._partition,
                strays=[f"@{s.offset}: {s.why}" for s in new[:10]],
            )
        return run if run.history else None


def _offsets(event: RunQuarantined) -> list[int]:
    strays = event.strays if isinstance(event.strays, list) else []
    return [s["offset"] for s in strays if isinstance(s, dict) and isinstance(s["offset"], int)]


def _kept(run: LiveRun, quarantine: Mapping[str, object]) -> bool:
    """Live runs, and finished ones that must be quarantined (the resume step does it)."""
    return _is_live(run) or run.run_id in quarantine


def _is_live(run: LiveRun) -> bool:
    return run.state is not None and not run.state.terminal
