"""`countersign verify`: each run's hash chain, from the log and from the projections.

For every run asked about: its records are read from the runs topic through the event-log
port (only the run's partition for one run; every partition for `--all`), its rows from the
events index and the audit log; `projections.chain` finds the first break, if any, in the
log, in the projection, between the two, or in the audit rows. The log is the source of
truth: a break in the projection means its rows were changed after they were written (the
append-only triggers stop the projector's own role, not an owner who disables them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from engine.log.port import EventLog, partition_for
from events.codec import Codec
from events.errors import DecodeError
from events.json import JsonObject
from projections.batch import LoggedEvent
from projections.chain import (
    Break,
    Link,
    audit_break,
    comparison_break,
    log_link,
    log_links,
    projection_links,
)
from projections.errors import ForeignLog
from projections.fold import fold
from projections.log_identity import LogBound, refusal
from projections.rows import AuditRow, EventRow

_CHUNK = 500


class VerifySource(Protocol):
    """What verification reads from the projections; `ProjectionStore` has it."""

    async def positions(self, projection: str, topic: str) -> dict[int, int]: ...

    async def fetch_events_of(self, run_ids: Sequence[str]) -> dict[str, list[EventRow]]: ...

    async def fetch_audit_of(self, run_ids: Sequence[str]) -> dict[str, list[AuditRow]]: ...

    async def fetch_run_ids(self) -> list[str]: ...

    async def fetch_error_offsets(
        self, projection: str, topic: str
    ) -> dict[tuple[int, int], str]: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class RunVerdict:
    run_id: str
    log_events: int
    projected_events: int
    pending: int
    """Events of the log the projector has not read yet (lag, not a break)."""
    undecodable: tuple[int, ...] = ()
    """Offsets of records with the run's key that do not decode (not part of the chain)."""
    breaks: tuple[Break, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.breaks

    @property
    def first_break(self) -> Break | None:
        return self.breaks[0] if self.breaks else None

    def to_json(self) -> JsonObject:
        first = self.first_break
        return {
            "run_id": self.run_id,
            "ok": self.ok,
            "log_events": self.log_events,
            "projected_events": self.projected_events,
            "pending": self.pending,
            "undecodable_offsets": list(self.undecodable),
            "first_break": None if first is None else first.to_json(),
            "breaks": [b.to_json() for b in self.breaks],
        }


@dataclass(kw_only=True)
class _LogSide:
    """A run's records in the log, hashed as they are read (the bytes are not kept)."""

    links: list[Link] = field(default_factory=list)
    undecodable: list[int] = field(default_factory=list)


async def verify(
    log: EventLog,
    topic: str,
    store: VerifySource,
    codec: Codec,
    run_ids: Sequence[str] | None = None,
    *,
    projection: str = "core",
) -> list[RunVerdict]:
    """Verdicts for `run_ids` (None: every run in the log or in the projection). Refuses
    (`ForeignLog`) projections whose positions were read from another log: comparing them
    with this one would call every run broken."""
    await _same_log(log, topic, store, projection)
    count = await log.partition_count(topic)
    wanted = None if run_ids is None else set(run_ids)
    partitions = (
        range(count) if wanted is None else sorted({partition_for(r, count) for r in wanted})
    )
    positions = await store.positions(projection, topic)
    errors = await store.fetch_error_offsets(projection, topic)
    sides: dict[str, _LogSide] = {run_id: _LogSide() for run_id in wanted or ()}
    for partition in partitions:
        await _read_partition(log, topic, partition, codec, wanted, sides)
    if wanted is None:
        for run_id in await store.fetch_run_ids():
            sides.setdefault(run_id, _LogSide())
    verdicts = []
    ordered = sorted(sides)
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        rows = await store.fetch_events_of(chunk)
        audit = await store.fetch_audit_of(chunk)
        for run_id in chunk:
            verdicts.append(
                _verdict(
                    run_id,
                    sides[run_id],
                    rows.get(run_id, []),
                    audit.get(run_id, []),
                    codec,
                    positions,
                    errors,
                )
            )
    return verdicts


async def _same_log(log: EventLog, topic: str, store: VerifySource, projection: str) -> None:
    if not isinstance(store, LogBound):
        return
    bound = await store.log_binding(projection, topic)
    log_id = await log.log_id(topic)
    reason = refusal(
        projection=projection,
        schema=str(getattr(store, "schema", "?")),
        topic=topic,
        log_id=log_id,
        bound=bound,
        positions={},
        ends={},
    )
    if reason is not None:
        raise ForeignLog(reason)


async def _read_partition(
    log: EventLog,
    topic: str,
    partition: int,
    codec: Codec,
    wanted: set[str] | None,
    sides: dict[str, _LogSide],
) -> None:
    async for record in log.read(topic, partition, 0):
        if wanted is not None and record.key not in wanted:
            continue
        try:
            envelope = codec.decode_event(record.value)
        except DecodeError:
            if record.key is not None and (wanted is None or record.key in wanted):
                sides.setdefault(record.key, _LogSide()).undecodable.append(record.offset)
            continue
        if wanted is not None and envelope.run_id not in wanted:
            continue
        side = sides.setdefault(envelope.run_id, _LogSide())
        side.links.append(log_link(record.partition, record.offset, record.value, envelope))


def _verdict(
    run_id: str,
    side: _LogSide,
    rows: Sequence[EventRow],
    audit: Sequence[AuditRow],
    codec: Codec,
    positions: Mapping[int, int],
    errors: Mapping[tuple[int, int], str],
) -> RunVerdict:
    log, log_problem = log_links(run_id, side.links)
    projected, envelopes, row_problem = projection_links(run_id, rows, codec.decode_event)
    found = [log_problem, row_problem]
    found.append(comparison_break(run_id, log, projected, positions, errors))
    if not any(found):
        events = [
            LoggedEvent(envelope=e, partition=r.partition, offset=r.offset, hash=r.hash, raw=r.raw)
            for e, r in zip(envelopes, rows, strict=True)
        ]
        found.append(audit_break(run_id, fold({}, events).audit, audit))
    pending = sum(1 for link in log if link.offset >= positions.get(link.partition, 0))
    return RunVerdict(
        run_id=run_id,
        log_events=len(log),
        projected_events=len(rows),
        pending=pending,
        undecodable=tuple(side.undecodable),
        breaks=_first_first(b for b in found if b is not None),
    )


def _first_first(breaks: Iterable[Break]) -> tuple[Break, ...]:
    """Lowest seq first (a break without a seq last); stable for equal seqs."""
    return tuple(sorted(breaks, key=lambda b: (b.seq is None, b.seq or 0)))
