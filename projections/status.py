"""How far a projection is behind the runs topic: per partition, in records and in seconds;
and whether its positions describe this log at all (`problems`: positions bound to another
log, or past the end of this one, where "lag 0" would otherwise hide that nothing is read)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from engine.log.port import EventLog
from events.json import JsonObject
from projections.log_identity import LogBound, clipped
from projections.rows import StoredPosition


class PositionSource(Protocol):
    schema: str

    async def fetch_positions(self, projection: str, topic: str) -> list[StoredPosition]: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class PartitionStatus:
    partition: int
    position: int
    """The next offset the projection will read."""
    end_offset: int
    lag: int
    """Records not projected yet (Kafka: transaction markers count too)."""
    lag_s: float
    """Age of the oldest record not projected yet; 0 when caught up."""
    last_event_at: datetime | None
    """When the latest projected event of the partition happened."""
    updated_at: datetime | None
    """When the position last moved."""

    @property
    def past_end(self) -> bool:
        """The position lies past the log's end: it was not read from this log."""
        return self.position > self.end_offset

    def to_json(self) -> JsonObject:
        return {
            "partition": self.partition,
            "position": self.position,
            "end_offset": self.end_offset,
            "lag": self.lag,
            "lag_s": round(self.lag_s, 3),
            "last_event_at": None if self.last_event_at is None else self.last_event_at.isoformat(),
            "updated_at": None if self.updated_at is None else self.updated_at.isoformat(),
            "past_end": self.past_end,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class ProjectionStatus:
    projection: str
    schema: str
    topic: str
    partitions: tuple[PartitionStatus, ...]
    log_id: str | None = None
    """The identity of the log asked (`EventLog.log_id`)."""
    bound_log_id: str | None = None
    """The log the positions were read from; None before the first, or for a store that
    does not record it."""

    @property
    def foreign(self) -> bool:
        """The positions were read from another log."""
        return self.bound_log_id is not None and self.bound_log_id != self.log_id

    @property
    def problems(self) -> tuple[str, ...]:
        """What makes the positions wrong for this log, one sentence each (none: fine)."""
        found = []
        if self.foreign:
            found.append(
                f"positions were read from another log ({clipped(self.bound_log_id or '')}),"
                f" not from this one ({clipped(self.log_id or '')})"
            )
        found += [
            f"partition {p.partition}: position {p.position} is past the end ({p.end_offset})"
            for p in self.partitions
            if p.past_end
        ]
        return tuple(found)

    @property
    def remedy(self) -> str | None:
        """What to do about the problems (None when there are none)."""
        if not self.problems:
            return None
        return (
            f"build it again from this log (`countersign projections rebuild {self.projection}`)"
            " or keep this log's projections apart (COUNTERSIGN_PROJECTION_SCHEMA=<another>)"
        )

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def lag_s(self) -> float:
        return max((p.lag_s for p in self.partitions), default=0.0)

    def to_json(self) -> JsonObject:
        return {
            "projection": self.projection,
            "schema": self.schema,
            "topic": self.topic,
            "lag": self.lag,
            "lag_s": round(self.lag_s, 3),
            "partitions": [p.to_json() for p in self.partitions],
            "log_id": self.log_id,
            "bound_log_id": self.bound_log_id,
            "problems": list(self.problems),
            "remedy": self.remedy,
        }


async def projection_status(
    log: EventLog,
    store: PositionSource,
    topic: str,
    projection: str = "core",
    *,
    now: datetime | None = None,
) -> ProjectionStatus:
    """Positions, end offsets and lag of every partition of `topic` (and of any partition
    the positions name that this log does not have: its end is 0)."""
    now = now or datetime.now(UTC)
    stored = {p.partition: p for p in await store.fetch_positions(projection, topic)}
    bound = await store.log_binding(projection, topic) if isinstance(store, LogBound) else None
    count = await log.partition_count(topic)
    partitions = []
    for partition in sorted(set(range(count)) | set(stored)):
        end = await log.end_offset(topic, partition) if partition < count else 0
        row = stored.get(partition)
        position = row.next_offset if row else 0
        lag = max(0, end - position)
        lag_s = 0.0
        if lag:
            oldest = await _record_time(log, topic, partition, position)
            if oldest is not None:
                lag_s = max(0.0, (now - oldest).total_seconds())
        partitions.append(
            PartitionStatus(
                partition=partition,
                position=position,
                end_offset=end,
                lag=lag,
                lag_s=lag_s,
                last_event_at=row.last_event_at if row else None,
                updated_at=row.updated_at if row else None,
            )
        )
    return ProjectionStatus(
        projection=projection,
        schema=store.schema,
        topic=topic,
        partitions=tuple(partitions),
        log_id=await log.log_id(topic),
        bound_log_id=bound,
    )


async def _record_time(log: EventLog, topic: str, partition: int, offset: int) -> datetime | None:
    """When the first record at or after `offset` was appended (None: there is none)."""
    records = log.read(topic, partition, offset)
    async with contextlib.aclosing(records):  # type: ignore[type-var]
        async for record in records:
            return datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)
    return None
