"""Where replay tooling gets a run's events: a history file, or the projections' events index,
which keeps every event's bytes as the log holds them (I/O).

Either way the events come back checked: they decode, and they chain from seq 0 (the index's
rows are re-hashed, so a row changed after it was written is found here too).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.errors import ConfigurationError
from events.codec import Codec
from events.envelope import EventEnvelope
from events.errors import DecodeError
from events.history_file import HistoryFile, chain_problem, read_history

__all__ = ["MAX_FILE_BYTES", "LoadedRun", "from_file", "from_projections", "many_from_projections"]

MAX_FILE_BYTES = 1 << 30
"""The largest history file read (it is read whole)."""

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class LoadedRun:
    run_id: str
    events: tuple[EventEnvelope, ...]
    raw: tuple[bytes, ...]
    source: str


def from_file(path: Path, codec: Codec) -> HistoryFile:
    """A history file, read and checked (`read_history`); refused over `MAX_FILE_BYTES`."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigurationError(f"{path}: {size} bytes is over the {MAX_FILE_BYTES} limit")
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{path}: {exc.strerror or exc}") from exc
    try:
        return read_history(codec, data)
    except DecodeError as exc:
        raise ConfigurationError(f"{path}: {exc}") from exc


async def from_projections(store: Any, run_id: str, codec: Codec) -> LoadedRun:
    """One run's events from the events index (all the projector has read so far)."""
    rows = await store.fetch_events(run_id)
    if not rows:
        raise ConfigurationError(
            f"run {run_id} is not in the projections (unknown, or the projector has not read it "
            "yet: is `countersign projector` running?)"
        )
    return _checked(run_id, [row.raw for row in rows], codec)


async def many_from_projections(
    store: Any, codec: Codec, *, status: str | None, since: datetime | None
) -> AsyncIterator[LoadedRun | tuple[str, str]]:
    """Every run with `status` (any when None) started at or after `since`, with its events;
    a run whose events do not hold together comes as (run id, why) instead."""
    runs = await store.fetch_runs(status, 100_000_000)
    run_ids = [r.run_id for r in runs if since is None or r.started_at >= since]
    for start in range(0, len(run_ids), _CHUNK):
        chunk = run_ids[start : start + _CHUNK]
        rows = await store.fetch_events_of(chunk)
        for run_id in chunk:
            try:
                yield _checked(run_id, [row.raw for row in rows.get(run_id, [])], codec)
            except ConfigurationError as exc:
                yield run_id, str(exc)


def _checked(run_id: str, raws: Sequence[bytes], codec: Codec) -> LoadedRun:
    try:
        events = [codec.decode_event(raw) for raw in raws]
    except DecodeError as exc:
        raise ConfigurationError(f"run {run_id}: an indexed event does not decode: {exc}") from exc
    problem = chain_problem(events, raws)
    if problem or events[0].run_id != run_id:
        why = problem or "the rows are another run's"
        raise ConfigurationError(f"run {run_id}: its indexed events do not chain: {why}")
    return LoadedRun(run_id, tuple(events), tuple(raws), "projections")
