"""The event-log port: a partitioned, ordered, durable log with consumer groups and atomic writes.

Three adapters implement it and pass one contract suite (`tests/contracts/`): the in-memory
twin (`memory.py`), Kafka (`kafka/`) and PostgreSQL (`postgres.py`). Everything above this
port speaks bytes and positions; the codec is not the log's business.

Semantics every adapter keeps:
- Records of one (topic, partition) have increasing offsets in append order; readers see
  only committed records (Kafka: read_committed), in offset order. Offsets are contiguous
  from 0 only for non-transactional appends: on Kafka, transaction markers and aborted
  records take offsets too, so code never infers "the end" from the last offset it saw.
- A run's own order is `seq` in the events, contiguous from 0; offsets are positions only.
- `publish` is durable when it returns (acks=all, idempotent) and not transactional.
- `log_id(topic)` names the topic's identity; offsets are only comparable under one identity.
- A `GroupMember` is one member of a consumer group over one topic. Partitions are assigned
  to exactly one member at a time; the listener hears of every assignment and revocation.
- `GroupMember.commit(partition, records, consumed)` appends `records` and marks the group's
  position on `partition` as `consumed` atomically: all or nothing. Once another member owns
  the partition, a commit by the old owner raises `Fenced` and nothing of it is visible.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class Topics:
    """The topics of one deployment, named `<prefix>.commands` and so on. All have the same
    partition count; `checkpoints` is compacted where the log supports it (Kafka): its
    partition N holds the restore checkpoints of runs partition N (`engine.core.checkpoint`)."""

    prefix: str = "countersign"

    @property
    def commands(self) -> str:
        return f"{self.prefix}.commands"

    @property
    def runs(self) -> str:
        return f"{self.prefix}.runs"

    @property
    def approvals(self) -> str:
        return f"{self.prefix}.approvals"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.dlq"

    @property
    def checkpoints(self) -> str:
        return f"{self.prefix}.checkpoints"

    @property
    def index(self) -> str:
        """Every run id each runs partition ever started (compacted; key = run id, value =
        the start command id): a run id starts once, ever (`engine.core.run_index`)."""
        return f"{self.prefix}.index"

    @property
    def anchors(self) -> str:
        """Signed chain-head anchors of each runs partition (`engine.trust.anchors`): never
        compacted, never expired, written only by workers."""
        return f"{self.prefix}.anchors"

    @property
    def agents(self) -> str:
        """What each worker serves (compacted; key = `agent@version`): `countersign agents`,
        and what `countersign start` checks a run against."""
        return f"{self.prefix}.agents"

    @property
    def routing(self) -> str:
        """The partition map (`engine.log.routing`): one partition, written only when
        partitions are added; not among `all`, which are co-partitioned."""
        return f"{self.prefix}.routing"

    @property
    def all(self) -> tuple[str, ...]:
        return (
            self.commands,
            self.runs,
            self.approvals,
            self.dlq,
            self.checkpoints,
            self.index,
            self.anchors,
            self.agents,
        )


@dataclass(frozen=True, slots=True)
class Record:
    """A record as read from the log."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    timestamp_ms: int
    headers: Headers = ()

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A record to append. `partition=None` lets the log pick it from the key (murmur2 on Kafka)."""

    topic: str
    key: str
    value: bytes
    partition: int | None = None
    headers: Headers = field(default=())


@dataclass(frozen=True, slots=True)
class Position:
    topic: str
    partition: int
    offset: int


class AssignmentListener(Protocol):
    """Hears partition moves. `on_assigned` returns where to start reading each partition
    (an offset), or nothing for a partition to start at the group's committed position."""

    async def on_assigned(self, partitions: frozenset[int]) -> Mapping[int, int]: ...

    async def on_revoked(self, partitions: frozenset[int]) -> None: ...


class GroupMember(Protocol):
    """One member of a consumer group over one topic."""

    @property
    def assigned(self) -> frozenset[int]: ...

    async def start(self) -> None: ...

    async def poll(self, timeout_s: float, max_records: int = 500) -> list[Record]:
        """Committed records of assigned partitions, in offset order per partition."""
        ...

    async def commit(
        self, partition: int, records: Sequence[Outgoing], consumed: int | None
    ) -> list[Position]:
        """Append `records` and set the group position of `partition` to `consumed` (the next
        offset to read), atomically. Raises `Fenced` if this member no longer owns it."""
        ...

    async def seek(self, partition: int, offset: int) -> None:
        """Read `partition` from `offset` next (after a failed commit, to re-read)."""
        ...

    async def stop(self) -> None: ...


class EventLog(Protocol):
    """A connection to the log, shared by everything in one process."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ensure_topics(self, topics: Topics, partitions: int) -> None:
        """Create missing topics; fail clearly if commands and runs are not co-partitioned."""
        ...

    async def partition_count(self, topic: str) -> int: ...

    async def log_id(self, topic: str) -> str:
        """Who `topic` is in this log: the same for every connection to it, different for the
        same name in another log (another cluster or database) and for a topic deleted and
        created again, whose offsets start over. Positions kept outside the log (the
        projections') are bound to it, so they are never applied to records they do not
        describe. `ConfigurationError` for a topic the log does not have."""
        ...

    async def publish(self, records: Sequence[Outgoing]) -> list[Position]:
        """Append durably (not transactionally), in order per partition."""
        ...

    async def end_offset(self, topic: str, partition: int) -> int:
        """The offset the next committed record of the partition will get."""
        ...

    def read(
        self, topic: str, partition: int, start: int, *, follow: bool = False
    ) -> AsyncIterator[Record]:
        """Committed records from `start`. Without `follow` it ends at the end offset as of
        the call; with `follow` it waits for new records (and never ends by itself)."""
        ...

    def member(self, group: str, topic: str, listener: AssignmentListener) -> GroupMember:
        """A new member of `group` over `topic`; call `start()` to join."""
        ...


def partition_for(key: str, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the UTF-8 key), so every adapter agrees."""
    return _murmur2(key) % partitions


@lru_cache(maxsize=4096)
def _murmur2(key: str) -> int:
    """murmur2 of the UTF-8 key, positive (Kafka's `toPositive`). Cached: a decision hashes
    its run id several times (routing, the log's partitioner), each ~5 µs in Python; the
    bound keeps hostile keys from growing it."""
    data = key.encode()
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    h = (seed ^ length) & 0xFFFFFFFF
    i = 0
    while length - i >= 4:
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
        i += 4
    rest = length - i
    if rest == 3:
        h ^= data[i + 2] << 16
    if rest >= 2:
        h ^= data[i + 1] << 8
    if rest >= 1:
        h ^= data[i]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h & 0x7FFFFFFF
