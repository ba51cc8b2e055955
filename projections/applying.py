"""What applying a batch means, whatever the store holds it: which items are fresh, which
stored state the fold needs, what a duplicate becomes, where the positions move. Pure.

The PostgreSQL store (`store_writer.py`) and the in-memory twin (`memory.py`) both follow
these steps, so the contract suite holds them to one meaning.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from events.run_events import RunResumed
from projections.batch import BatchItem, LoggedEvent, Unusable
from projections.fold import RunView, timestamp
from projections.rows import ErrorRow, InterruptRow, RunRow

RAW_LIMIT = 1_048_576
"""At most this many bytes of an unusable record are kept with its error row: the record
itself stays in the log, and one huge record must not make every later read of the errors
huge too. Its size and hash are in the reason."""


def fresh(stored: Mapping[int, int], items: Iterable[BatchItem]) -> list[BatchItem]:
    """The items at or after their partition's stored position (0 when none): the others
    were applied before, so applying a batch again, or an overlapping one, does nothing."""
    return [i for i in items if i.offset >= stored.get(i.partition, 0)]


def next_positions(stored: Mapping[int, int], fresh: Iterable[BatchItem]) -> dict[int, int]:
    """The partitions whose position moves, and to where (past their last fresh item)."""
    moved: dict[int, int] = {}
    for item in fresh:
        moved[item.partition] = max(moved.get(item.partition, 0), item.offset + 1)
    return {p: o for p, o in moved.items() if o > stored.get(p, 0)}


def time_or_none(us: int | None) -> datetime | None:
    """A partition's latest event time as stored; None for one out of range (such an event
    is stored as an error, its time is not kept)."""
    if us is None:
        return None
    try:
        return timestamp(us)
    except OverflowError:
        return None


def latest_times(events: Iterable[LoggedEvent]) -> dict[int, int]:
    """The latest `occurred_at_us` per partition among `events` (for lag in seconds)."""
    latest: dict[int, int] = {}
    for event in events:
        at = event.envelope.occurred_at_us
        if at > latest.get(event.partition, -(2**63)):
            latest[event.partition] = at
    return latest


def duplicate(event: LoggedEvent) -> Unusable:
    """An event whose run and seq were projected from another record: kept as an error."""
    env = event.envelope
    return Unusable(
        partition=event.partition,
        offset=event.offset,
        reason=f"duplicate: run {env.run_id} seq {env.seq} was already projected from another"
        " record; the first one is kept",
        raw=event.raw,
    )


Head = tuple[int, str]
"""A run's last projected event: its seq and chain hash."""


def runs_with_history(events: Sequence[LoggedEvent]) -> list[str]:
    """The runs whose first event here is not their seq 0: their stored head is needed."""
    first: dict[str, int] = {}
    for event in events:
        first.setdefault(event.envelope.run_id, event.envelope.seq)
    return [run_id for run_id, seq in first.items() if seq != 0]


def chained(
    events: Sequence[LoggedEvent], heads: Mapping[str, Head]
) -> tuple[list[LoggedEvent], list[Unusable]]:
    """The events to project, and those that break their run's chain, as errors: the
    projections take a run's history as the worker's restore does (`engine.core.integrity`:
    the first record in log order that chains), so a record appended behind a run that does
    not carry the hash of the run's last event is never projected as its history. An event
    at a seq already taken passes through (a duplicate, kept out downstream); one past a gap
    too (the missing one may be an event PostgreSQL refused, recorded as an error: `verify`
    reports the gap either way)."""
    heads = dict(heads)
    out: list[LoggedEvent] = []
    broken: list[Unusable] = []
    for event in events:
        env = event.envelope
        seq, hash_ = heads.get(env.run_id, (-1, ""))
        if env.seq == seq + 1 and env.prev_hash != hash_:
            broken.append(
                Unusable(
                    partition=event.partition,
                    offset=event.offset,
                    reason=f"unchained: run {env.run_id} seq {env.seq} does not carry the hash"
                    f" of seq {seq}; not projected",
                    raw=event.raw,
                )
            )
            continue
        if env.seq > seq:
            heads[env.run_id] = (env.seq, event.hash)
        out.append(event)
    return out, broken


def stored_state_needed(events: Sequence[LoggedEvent]) -> tuple[list[str], list[str]]:
    """The runs whose stored row and open interrupts the fold needs, and the interrupts the
    events name. A run whose first event here is its seq 0 has nothing stored yet, so it is
    not looked up: most runs in a batch of a busy log are such."""
    first_seq: dict[str, int] = {}
    for event in events:
        first_seq.setdefault(event.envelope.run_id, event.envelope.seq)
    run_ids = [run_id for run_id, seq in first_seq.items() if seq != 0]
    interrupt_ids = {
        interrupt_id
        for e in events
        if first_seq[e.envelope.run_id] != 0 and (interrupt_id := interrupt_of(e))
    }
    return run_ids, sorted(interrupt_ids)


def resumed_runs(events: Sequence[LoggedEvent]) -> list[str]:
    """Runs a `RunResumed` of the batch resumes: the fold needs their withdrawn interrupts
    too (the ones their parking withdrew), to open them again."""
    return sorted({e.envelope.run_id for e in events if type(e.envelope.payload) is RunResumed})


def interrupt_of(event: LoggedEvent) -> str | None:
    interrupt_id: str | None = getattr(event.envelope.payload, "interrupt_id", None)
    return interrupt_id


def views_of(runs: Iterable[RunRow], interrupts: Iterable[InterruptRow]) -> dict[str, RunView]:
    """The stored state as the fold takes it (an interrupt found twice is one row)."""
    by_run: dict[str, dict[str, InterruptRow]] = {}
    for row in interrupts:
        by_run.setdefault(row.run_id, {})[row.interrupt_id] = row
    views = {r.run_id: RunView(run=r, interrupts=by_run.pop(r.run_id, {})) for r in runs}
    for run_id, known in by_run.items():  # interrupts of runs whose row is missing
        views[run_id] = RunView(interrupts=known)
    return views


def bounded(item: Unusable) -> Unusable:
    """`item` with at most `RAW_LIMIT` bytes kept (the reason says what was cut)."""
    if len(item.raw) <= RAW_LIMIT:
        return item
    digest = hashlib.sha256(item.raw).hexdigest()
    return Unusable(
        partition=item.partition,
        offset=item.offset,
        reason=f"{item.reason} [record of {len(item.raw)} bytes, sha256 {digest}; the first"
        f" {RAW_LIMIT} kept here, all of it in the log]",
        raw=item.raw[:RAW_LIMIT],
    )


def error_row(projection: str, topic: str, item: Unusable) -> ErrorRow:
    """The `cs_projection_errors` row of an unusable record (its bytes bounded)."""
    kept = bounded(item)
    return ErrorRow(
        projection=projection,
        topic=topic,
        partition=kept.partition,
        offset=kept.offset,
        reason=kept.reason,
        raw=kept.raw,
    )
