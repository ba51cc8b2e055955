"""The log checked against its signed anchors (`engine.trust.anchors`). Pure.

- `partition_anchors` reads one partition's anchors in log order: each must be signed by a
  trusted worker key, and their `seq` run 0, 1, 2, … with each `prev` the hash of the one
  before. It returns the anchored heads per run and the partition's problems (an anchor
  deleted, replaced, reordered or unsigned).
- `anchor_break` checks one run's log links against its anchored heads: every anchored
  (seq, hash) must be the log's event at that seq — else the run was deleted, truncated,
  or changed (a rewritten event re-chained after it cannot match the signed head); and an
  event inside the anchored range of its partition that no anchor names was put there
  afterwards (inserted, or moved in from elsewhere).
- `unanchored` counts a run's events past its last anchored head: the tail not signed yet
  (at most `anchor_every_events` or `anchor_every_s` old on a live worker), not a break.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from engine.trust.anchors import Anchor, anchor_hash, read_anchor
from engine.trust.jws import BadToken, VerifyKey
from events.json import JsonObject
from projections.chain import Break, Link

__all__ = ["AnchoredHead", "PartitionAnchors", "anchor_break", "partition_anchors", "unanchored"]


@dataclass(frozen=True, slots=True)
class AnchoredHead:
    seq: int
    hash: str
    anchor: int
    """The seq of the anchor that named it."""
    partition: int
    """The partition whose anchor named it: where the run lives."""


@dataclass(kw_only=True)
class PartitionAnchors:
    partition: int
    anchors: int = 0
    through: int = 0
    """Every runs record below this offset should be covered by an anchor."""
    heads: dict[str, list[AnchoredHead]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    last_at: int = 0

    def to_json(self) -> JsonObject:
        return {
            "partition": self.partition,
            "anchors": self.anchors,
            "through": self.through,
            "last_anchor_at": self.last_at,
            "problems": list(self.problems),
        }


def partition_anchors(
    partition: int, records: Iterable[tuple[int, bytes]], keys: Mapping[str, VerifyKey]
) -> PartitionAnchors:
    """`records`: (offset, value) of the anchors partition, in log order."""
    found = PartitionAnchors(partition=partition)
    expected, prev = 0, ""
    for offset, value in records:
        try:
            anchor = read_anchor(value, keys)
        except BadToken as exc:
            found.problems.append(
                f"unsigned span: the record at offset {offset} is not an anchor signed by a "
                f"trusted worker key ({exc})"
            )
            continue
        problem = _sequence_problem(anchor, partition, expected, prev)
        if problem:
            found.problems.append(problem)
        expected, prev = max(expected, anchor.seq + 1), anchor_hash(value)
        _note(found, anchor)
    return found


def _sequence_problem(anchor: Anchor, partition: int, expected: int, prev: str) -> str:
    if anchor.partition != partition:
        return f"anchor {anchor.seq} names partition {anchor.partition}: moved here"
    if anchor.seq > expected:
        last = anchor.seq - 1
        missing = f"{expected}" if last == expected else f"{expected} to {last}"
        return f"anchor {missing} of partition {partition} is missing: deleted"
    if anchor.seq < expected:
        return f"anchor {anchor.seq} of partition {partition} comes again or out of order"
    if anchor.prev != prev:
        return (
            f"anchor {anchor.seq} of partition {partition} does not name the hash of anchor "
            f"{anchor.seq - 1}: an anchor before it was replaced or reordered"
        )
    return ""


def _note(found: PartitionAnchors, anchor: Anchor) -> None:
    found.anchors += 1
    found.through = max(found.through, anchor.through)
    found.last_at = max(found.last_at, anchor.issued_at)
    for run_id, (seq, digest) in anchor.heads.items():
        found.heads.setdefault(run_id, []).append(
            AnchoredHead(seq, digest, anchor.seq, anchor.partition)
        )


def anchor_break(
    run_id: str,
    links: Sequence[Link],
    heads: Sequence[AnchoredHead],
    anchors: Mapping[int, PartitionAnchors],
) -> Break | None:
    """The first way the run's log disagrees with its anchors (see the module doc)."""
    by_seq = {link.seq: link for link in links}
    last = max(links, key=lambda link: link.seq).seq if links else -1
    for head in sorted(heads, key=lambda h: h.seq):
        where = f"anchor {head.anchor}"
        if not links:
            return _break(
                run_id,
                head.seq,
                f"deleted: {where} signed its head at seq {head.seq}, "
                "but the log has none of its events",
            )
        link = by_seq.get(head.seq)
        if link is None:
            return _break(
                run_id,
                head.seq,
                f"truncated: {where} signed seq {head.seq}, but the log ends at seq {last}",
            )
        if link.partition != head.partition:
            return _break(
                run_id,
                head.seq,
                f"moved: seq {head.seq} is on partition {link.partition}, but {where} of "
                f"partition {head.partition} signed it there",
            )
        if link.hash != head.hash:
            return _break(
                run_id,
                head.seq,
                f"changed: seq {head.seq} is not the event {where} signed "
                "(an event at or before it was rewritten and the chain re-made)",
            )
    signed = max((h.seq for h in heads), default=-1)
    for link in sorted(links, key=lambda link: link.seq):
        home = anchors.get(link.partition)
        if home is not None and link.seq > signed and 0 <= link.offset < home.through:
            return _break(
                run_id,
                link.seq,
                f"unsigned span: seq {link.seq} at offset {link.offset} "
                f"lies in the anchored range of partition {home.partition} (below "
                f"{home.through}) but no anchor signed it: inserted or moved there",
            )
    return None


def unanchored(links: Sequence[Link], heads: Sequence[AnchoredHead]) -> int:
    signed = max((h.seq for h in heads), default=-1)
    return sum(1 for link in links if link.seq > signed)


def _break(run_id: str, seq: int, what: str) -> Break:
    return Break(run_id=run_id, where="anchor", seq=seq, what=what)
