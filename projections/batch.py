"""What the projector hands the store: the records of one poll, decoded or not, in log order."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from events.envelope import EventEnvelope


@dataclass(frozen=True, kw_only=True, slots=True)
class LoggedEvent:
    """A decoded event and where it was read: its partition, offset, chain hash and bytes."""

    envelope: EventEnvelope
    partition: int
    offset: int
    hash: str
    raw: bytes
    index_record: tuple[Any, ...] | None = None
    """Its events index record (`projections.event_record`) when the projector built it as
    it decoded, for a store that takes it (`IndexesAhead`); else built where it is written."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Unusable:
    """A record the projection cannot use (and why); stored in `cs_projection_errors`."""

    partition: int
    offset: int
    reason: str
    raw: bytes


BatchItem: TypeAlias = LoggedEvent | Unusable


@dataclass(frozen=True, kw_only=True, slots=True)
class Applied:
    """What one `apply` did: events newly projected, duplicates of projected events and
    unusable records (both stored as errors), records skipped because they were below the
    stored position, and the partitions' next offsets after it."""

    events: int = 0
    duplicates: int = 0
    unusable: int = 0
    skipped: int = 0
    positions: Mapping[int, int] = field(default_factory=dict)
