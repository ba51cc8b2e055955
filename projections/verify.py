"""`countersign verify`: each run's hash chain, from the log and from the projections, and
both against the workers' signed anchors.

For every run asked about: its records are read from the runs topic through the event-log
port (every partition for `--all`; for named runs only the partitions a run can be on: the
one its projected rows recorded, and its candidate homes under the partition map,
`engine.log.routing`, since a run keeps the partition it started on when partitions are
added), its rows from the events index and the audit log; `projections.chain` finds the
first break, if any, in the log, in the projection, between the two, or in the audit rows.
The log is the source of truth: a break in the projection means its rows were changed after
they were written (the append-only triggers stop the projector's own role, not an owner who
disables them).

With `anchors` (the anchors topic and the trusted worker keys) the log itself is checked
against what the workers signed (`projections.anchored`): someone who can write the log's
storage can re-make a run's chain, but not sign its head; a deleted run, a truncated tail,
a rewritten and re-chained event, an inserted or moved one, and a deleted or unsigned
anchor are each named.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from engine.log.port import EventLog
from engine.log.routing import PartitionMap, candidates
from engine.trust.jws import VerifyKey
from events.codec import Codec
from events.errors import DecodeError
from events.json import JsonObject
from projections.anchored import (
    AnchoredHead,
    PartitionAnchors,
    anchor_break,
    partition_anchors,
    unanchored,
)
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
    unanchored: int | None = None
    """Events past the run's last signed head (the tail not anchored yet); None: no anchors
    were checked."""

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
            "unanchored": self.unanchored,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class AnchorCheck:
    """Where the anchors are and whose signatures count."""

    topic: str
    keys: Mapping[str, VerifyKey]


@dataclass(frozen=True, kw_only=True, slots=True)
class VerifyReport:
    runs: list[RunVerdict]
    partitions: list[PartitionAnchors]

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.runs) and not any(p.problems for p in self.partitions)


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
    anchors: AnchorCheck | None = None,
    partition_map: PartitionMap | None = None,
) -> list[RunVerdict]:
    """Verdicts for `run_ids` (None: every run in the log or in the projection). Refuses
    (`ForeignLog`) projections whose positions were read from another log: comparing them
    with this one would call every run broken. `partition_map`: the deployment's
    (`engine.log.routing_log.load_partition_map`); None: never repartitioned."""
    report = await verify_report(
        log,
        topic,
        store,
        codec,
        run_ids,
        projection=projection,
        anchors=anchors,
        partition_map=partition_map,
    )
    return report.runs


async def verify_report(
    log: EventLog,
    topic: str,
    store: VerifySource,
    codec: Codec,
    run_ids: Sequence[str] | None = None,
    *,
    projection: str = "core",
    anchors: AnchorCheck | None = None,
    partition_map: PartitionMap | None = None,
) -> VerifyReport:
    """`verify`, with the anchors of each partition read (their problems included)."""
    await _same_log(log, topic, store, projection)
    count = await log.partition_count(topic)
    wanted = None if run_ids is None else set(run_ids)
    partitions: Sequence[int] = range(count)
    if wanted is not None:
        partitions = await _partitions_of(
            wanted, store, partition_map or PartitionMap.single(count)
        )
        partitions = [p for p in partitions if p < count]
    positions = await store.positions(projection, topic)
    errors = await store.fetch_error_offsets(projection, topic)
    sides: dict[str, _LogSide] = {run_id: _LogSide() for run_id in wanted or ()}
    for partition in partitions:
        await _read_partition(log, topic, partition, codec, wanted, sides)
    signed: dict[int, PartitionAnchors] = {}
    if anchors is not None:
        for partition in partitions:
            found = await _read_anchors(log, anchors, partition)
            signed[partition] = found
            for run_id in found.heads:
                if wanted is None or run_id in wanted:
                    sides.setdefault(run_id, _LogSide())
            events = sum(
                1 for s in sides.values() for link in s.links if link.partition == partition
            )
            if events and not found.anchors and wanted is None:
                found.problems.append(
                    f"unsigned span: partition {partition} holds {events} events and no anchor"
                )
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
                    signed if anchors is not None else None,
                )
            )
    return VerifyReport(runs=verdicts, partitions=[signed[p] for p in sorted(signed)])


async def _partitions_of(
    run_ids: set[str], store: VerifySource, partition_map: PartitionMap
) -> list[int]:
    """Every partition the runs can be on: where their projected rows say they are, and
    each of their candidate homes (a run started before partitions were added stays on
    the partition it started on)."""
    found: set[int] = set()
    ordered = sorted(run_ids)
    for start in range(0, len(ordered), _CHUNK):
        rows = await store.fetch_events_of(ordered[start : start + _CHUNK])
        found.update(row.partition for run in rows.values() for row in run)
    for run_id in ordered:
        found.update(candidates(run_id, partition_map))
    return sorted(found)


async def _read_anchors(log: EventLog, check: AnchorCheck, partition: int) -> PartitionAnchors:
    records = [(r.offset, r.value) async for r in log.read(check.topic, partition, 0)]
    return partition_anchors(partition, records, check.keys)


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
    anchors: Mapping[int, PartitionAnchors] | None = None,
) -> RunVerdict:
    log, log_problem = log_links(run_id, side.links)
    # The run's heads wherever an anchor names it: a run lives on one partition, and
    # `anchor_break` names a log event that is not on the partition that signed it.
    heads: list[AnchoredHead] = [
        head for p in sorted(anchors or {}) for head in (anchors or {})[p].heads.get(run_id, [])
    ]
    projected, envelopes, row_problem = projection_links(run_id, rows, codec.decode_event)
    found = [log_problem, row_problem]
    if anchors is not None:
        found.append(anchor_break(run_id, log, heads, anchors))
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
        unanchored=None if anchors is None else unanchored(log, heads),
    )


def _first_first(breaks: Iterable[Break]) -> tuple[Break, ...]:
    """Lowest seq first (a break without a seq last); stable for equal seqs."""
    return tuple(sorted(breaks, key=lambda b: (b.seq is None, b.seq or 0)))
