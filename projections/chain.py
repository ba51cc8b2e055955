"""Hash-chain verification of a run's history, from the log and from the projections. Pure.

Every event's hash is sha256 of its exact bytes and every event carries the hash of the one
before it (`prev_hash`, empty for seq 0), with seqs contiguous from 0. So:

- `log_break` walks the run's records in log order and finds the first seq that is missing,
  out of order, forked (two different events with one seq) or whose `prev_hash` is not its
  predecessor's hash;
- `projection_break` does the same for the events index rows and also checks each row
  against its own bytes: the stored hash is the bytes' hash, and the seq, ids, type, time,
  prev_hash and payload columns say what the bytes say;
- `comparison_break` checks that the two agree, event by event, up to what the projector
  has read (the tail it has not read yet is lag, not a break);
- `audit_break` checks the stored audit rows against the rows the fold makes from the
  verified events.

Each returns the first `Break` (where, seq, what) or None.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from events.envelope import GENESIS_HASH, EventEnvelope, hash_encoded
from events.errors import EventsError
from events.json import Json, JsonObject
from projections.describe import payload_json
from projections.fold import timestamp
from projections.rows import AuditRow, EventRow

Where: TypeAlias = Literal["log", "projection", "comparison", "audit", "anchor"]
Decode: TypeAlias = Callable[[bytes], EventEnvelope]


@dataclass(frozen=True, kw_only=True, slots=True)
class Break:
    """The first place a run's history does not hold together."""

    run_id: str
    where: Where
    seq: int | None
    what: str

    def to_json(self) -> JsonObject:
        return {"run_id": self.run_id, "where": self.where, "seq": self.seq, "what": self.what}

    def __str__(self) -> str:
        at = "" if self.seq is None else f" at seq {self.seq}"
        return f"{self.run_id}: {self.where}{at}: {self.what}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Link:
    """One event as a link of the chain: its seq, the hash of its bytes, the hash it names."""

    seq: int
    hash: str
    prev_hash: str
    partition: int = -1
    offset: int = -1


def _short(value: str) -> str:
    return (value[:12] + "…") if len(value) > 12 else (value or "(genesis)")


def chain_break(run_id: str, links: Sequence[Link], where: Where) -> Break | None:
    """The first link out of seq order or not naming its predecessor's hash."""
    previous = GENESIS_HASH
    for expected, link in enumerate(links):
        if link.seq != expected:
            what = (
                f"seq {expected} is missing (the next event has seq {link.seq})"
                if link.seq > expected
                else f"seq {link.seq} comes again or out of order after seq {expected - 1}"
            )
            return Break(run_id=run_id, where=where, seq=expected, what=what)
        if link.prev_hash != previous:
            return Break(
                run_id=run_id,
                where=where,
                seq=link.seq,
                what=f"prev_hash {_short(link.prev_hash)} is not the hash of seq "
                f"{link.seq - 1} ({_short(previous)})",
            )
        previous = link.hash
    return None


def log_link(partition: int, offset: int, raw: bytes, envelope: EventEnvelope) -> Link:
    """A record of the log as a link (its bytes are hashed; they need not be kept)."""
    return Link(
        seq=envelope.seq,
        hash=hash_encoded(raw),
        prev_hash=envelope.prev_hash,
        partition=partition,
        offset=offset,
    )


def log_links(run_id: str, records: Iterable[Link]) -> tuple[list[Link], Break | None]:
    """The run's links in log order, without exact duplicates (a record repeated byte for
    byte is harmless; the projector records it as a duplicate), and the first break: a fork
    (two different events with one seq) or a break of the chain."""
    links: list[Link] = []
    seen: dict[int, str] = {}
    for link in records:
        known = seen.get(link.seq)
        if known == link.hash:
            continue
        if known is not None:
            return links, Break(
                run_id=run_id,
                where="log",
                seq=link.seq,
                what=f"two different events claim seq {link.seq} (the second at offset "
                f"{link.offset} of partition {link.partition})",
            )
        seen[link.seq] = link.hash
        links.append(link)
    ordered = sorted(links, key=lambda link: (link.partition, link.offset))
    return ordered, chain_break(run_id, ordered, "log")


def projection_links(
    run_id: str, rows: Sequence[EventRow], decode: Decode
) -> tuple[list[Link], list[EventEnvelope], Break | None]:
    """Links and decoded events of the stored rows (by seq); the first row that disagrees
    with its own bytes, or the first break in their chain."""
    links: list[Link] = []
    envelopes: list[EventEnvelope] = []
    for row in rows:
        problem, envelope = _row_problem(row, decode)
        if problem is not None or envelope is None:
            return (
                links,
                envelopes,
                Break(
                    run_id=run_id, where="projection", seq=row.seq, what=problem or "undecodable"
                ),
            )
        links.append(
            Link(
                seq=row.seq,
                hash=row.hash,
                prev_hash=envelope.prev_hash,
                partition=row.partition,
                offset=row.offset,
            )
        )
        envelopes.append(envelope)
    return links, envelopes, chain_break(run_id, links, "projection")


def _row_problem(row: EventRow, decode: Decode) -> tuple[str | None, EventEnvelope | None]:
    actual = hash_encoded(row.raw)
    if actual != row.hash:
        what = (
            f"stored hash {_short(row.hash)} is not the hash of the stored bytes "
            f"({_short(actual)}): the bytes or the hash were changed"
        )
        return what, None
    try:
        envelope = decode(row.raw)
    except EventsError as error:
        return f"the stored bytes do not decode: {error}", None
    columns = {
        "run_id": (row.run_id, envelope.run_id),
        "seq": (row.seq, envelope.seq),
        "event_id": (row.event_id, envelope.event_id),
        "type": (row.type, envelope.type),
        "prev_hash": (row.prev_hash, envelope.prev_hash),
        "occurred_at": (row.occurred_at, timestamp(envelope.occurred_at_us)),
    }
    for name, (stored, from_bytes) in columns.items():
        if stored != from_bytes:
            return f"column {name} is {stored!r} but the event's bytes say {from_bytes!r}", None
    if clean(row.payload) != clean(payload_json(envelope.payload)):
        return "the payload column differs from the event's bytes", None
    return None, envelope


def clean(value: Json) -> Json:
    """A JSON value as PostgreSQL keeps it: NUL as U+FFFD, non-finite numbers as null."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k.replace("\x00", "\ufffd"): clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def comparison_break(
    run_id: str,
    log: Sequence[Link],
    projected: Sequence[Link],
    positions: Mapping[int, int],
    unusable: Mapping[tuple[int, int], str] | None = None,
) -> Break | None:
    """The first event the log and the projection disagree on. Log events at or past the
    projection's position in their partition are not expected yet (lag). `unusable` maps
    (partition, offset) to the reason a record was stored as an error instead."""
    by_seq = {link.seq: link for link in projected}
    for link in log:
        if link.offset >= positions.get(link.partition, 0):
            break  # not read by the projector yet; neither is anything after it in this run
        stored = by_seq.pop(link.seq, None)
        if stored is None:
            why = (unusable or {}).get((link.partition, link.offset))
            what = "in the log but missing from the projection"
            if why:
                what += f" (the projector recorded an error for it: {why[:200]})"
            return Break(run_id=run_id, where="comparison", seq=link.seq, what=what)
        if stored.hash != link.hash:
            return Break(
                run_id=run_id,
                where="comparison",
                seq=link.seq,
                what=f"the projection's event ({_short(stored.hash)}) is not the log's "
                f"({_short(link.hash)})",
            )
    if by_seq:
        extra = min(by_seq)
        in_log = {link.seq for link in log}
        if extra not in in_log:
            return Break(
                run_id=run_id,
                where="comparison",
                seq=extra,
                what="in the projection but not in the log",
            )
    return None


def audit_break(
    run_id: str, expected: Sequence[AuditRow], stored: Sequence[AuditRow]
) -> Break | None:
    """The first audit row that is missing, extra or different from what the fold of the
    verified events makes (rows are compared by seq and action, without their ids)."""
    want = {(r.seq, r.action): _comparable(r) for r in expected}
    have = {(r.seq, r.action): _comparable(r) for r in stored}
    for key in sorted(want.keys() | have.keys()):
        seq, action = key
        if key not in have:
            return Break(run_id=run_id, where="audit", seq=seq, what=f"{action} row is missing")
        if key not in want:
            return Break(
                run_id=run_id,
                where="audit",
                seq=seq,
                what=f"{action} row is not what any event says",
            )
        if have[key] != want[key]:
            changed = sorted(k for k in want[key] if want[key][k] != have[key].get(k))
            return Break(
                run_id=run_id,
                where="audit",
                seq=seq,
                what=f"{action} row differs from the event in {', '.join(changed)}",
            )
    return None


def _comparable(row: AuditRow) -> JsonObject:
    data = row.to_json()
    del data["id"]
    cleaned = clean(data)
    assert isinstance(cleaned, dict)
    return cleaned
