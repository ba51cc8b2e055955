"""The in-memory twin of the event log: same port, same contract tests, no server.

Partitions move between group members the way Kafka moves them: a member gives up a
partition at its next `poll` after a rebalance, and only then does the new owner get it,
so two members never own one partition at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence

from engine.errors import ConfigurationError, Fenced
from engine.log.port import (
    AssignmentListener,
    Outgoing,
    Position,
    Record,
    Topics,
    partition_for,
)


class MemoryLog:
    def __init__(self, *, default_partitions: int = 4) -> None:
        self._default_partitions = default_partitions
        self._topics: dict[str, list[list[Record]]] = {}
        self._changed = asyncio.Condition()
        self._groups: dict[tuple[str, str], _Group] = {}
        self._id = uuid.uuid4().hex  # another MemoryLog is another log

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ensure_topics(self, topics: Topics, partitions: int) -> None:
        for name in topics.all:
            existing = self._topics.get(name)
            if existing is None:
                self._topics[name] = [[] for _ in range(partitions)]
            elif name in (topics.commands, topics.runs) and len(existing) != partitions:
                raise ConfigurationError(
                    f"topic {name} has {len(existing)} partitions, expected {partitions}"
                )

    async def partition_count(self, topic: str) -> int:
        return len(self._partitions(topic))

    async def log_id(self, topic: str) -> str:
        self._partitions(topic)  # a topic exists once named, as for every other call here
        return f"memory:{self._id}:{topic}"

    def _partitions(self, topic: str) -> list[list[Record]]:
        found = self._topics.get(topic)
        if found is None:
            found = self._topics[topic] = [[] for _ in range(self._default_partitions)]
        return found

    def _target(self, out: Outgoing) -> int:
        count = len(self._partitions(out.topic))
        if out.partition is None:
            return partition_for(out.key, count)
        if not 0 <= out.partition < count:
            raise ConfigurationError(f"topic {out.topic} has no partition {out.partition}")
        return out.partition

    def _append(self, records: Sequence[Outgoing]) -> list[Position]:
        targets = [self._target(out) for out in records]  # all checked first: all or nothing
        positions = []
        now_ms = int(time.time() * 1000)
        for out, partition in zip(records, targets, strict=True):
            log = self._partitions(out.topic)[partition]
            offset = len(log)
            log.append(
                Record(out.topic, partition, offset, out.key, out.value, now_ms, out.headers)
            )
            positions.append(Position(out.topic, partition, offset))
        return positions

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def publish(self, records: Sequence[Outgoing]) -> list[Position]:
        positions = self._append(records)
        await self._notify()
        return positions

    async def end_offset(self, topic: str, partition: int) -> int:
        return len(self._partitions(topic)[partition])

    async def read(
        self, topic: str, partition: int, start: int, *, follow: bool = False
    ) -> AsyncIterator[Record]:
        log = self._partitions(topic)[partition]
        position = start
        end = len(log)
        while True:
            while position < (len(log) if follow else end):
                yield log[position]
                position += 1
            if not follow:
                return
            async with self._changed:
                while len(log) <= position:
                    await self._changed.wait()

    async def wait_for_change(self, timeout_s: float) -> None:
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout_s)

    def member(self, group: str, topic: str, listener: AssignmentListener) -> MemoryMember:
        key = (group, topic)
        state = self._groups.get(key)
        if state is None:
            state = self._groups[key] = _Group(len(self._partitions(topic)))
        return MemoryMember(self, state, topic, listener)


class _Group:
    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.members: list[MemoryMember] = []
        self.owner: dict[int, MemoryMember] = {}
        self.committed: dict[int, int] = {}

    def target(self, member: MemoryMember) -> frozenset[int]:
        if member not in self.members:
            return frozenset()
        index = self.members.index(member)
        return frozenset(p for p in range(self.partitions) if p % len(self.members) == index)


class MemoryMember:
    def __init__(
        self, log: MemoryLog, group: _Group, topic: str, listener: AssignmentListener
    ) -> None:
        self._log = log
        self._group = group
        self._topic = topic
        self._listener = listener
        self._assigned: frozenset[int] = frozenset()
        self._positions: dict[int, int] = {}

    @property
    def assigned(self) -> frozenset[int]:
        return self._assigned

    async def start(self) -> None:
        self._group.members.append(self)
        try:
            await self._rebalance()
        except BaseException:  # cancelled or failed while joining: leave no member behind
            self._abandon()
            raise
        await self._log._notify()

    def _abandon(self) -> None:
        """Leave the group at once, without the listener: what a member that never finished
        joining holds would otherwise stay its own, and no other member would ever get it."""
        if self in self._group.members:
            self._group.members.remove(self)
        for partition, owner in list(self._group.owner.items()):
            if owner is self:
                del self._group.owner[partition]
        self._assigned = frozenset()
        self._positions.clear()

    async def stop(self) -> None:
        if self in self._group.members:
            await self._release(self._assigned)
            self._group.members.remove(self)
            await self._log._notify()

    async def _release(self, partitions: frozenset[int]) -> None:
        if not partitions:
            return
        await self._listener.on_revoked(partitions)
        for partition in partitions:
            if self._group.owner.get(partition) is self:
                del self._group.owner[partition]
            self._positions.pop(partition, None)
        self._assigned = self._assigned - partitions

    async def _rebalance(self) -> None:
        target = self._group.target(self)
        await self._release(self._assigned - target)
        gained = frozenset(p for p in target - self._assigned if p not in self._group.owner)
        if not gained:
            return
        for partition in gained:
            self._group.owner[partition] = self
        self._assigned = self._assigned | gained
        starts = await self._listener.on_assigned(gained)
        for partition in gained:
            self._positions[partition] = starts.get(
                partition, self._group.committed.get(partition, 0)
            )

    async def poll(self, timeout_s: float, max_records: int = 500) -> list[Record]:
        deadline = time.monotonic() + timeout_s
        while True:
            await self._rebalance()
            batch = self._take(max_records)
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0:
                return batch
            await self._log.wait_for_change(remaining)

    def _take(self, max_records: int) -> list[Record]:
        batch: list[Record] = []
        partitions = self._log._partitions(self._topic)
        for partition in sorted(self._assigned):
            log = partitions[partition]
            start = self._positions[partition]
            chunk = log[start : start + max_records - len(batch)]
            batch.extend(chunk)
            self._positions[partition] = start + len(chunk)
        return batch

    async def commit(
        self, partition: int, records: Sequence[Outgoing], consumed: int | None
    ) -> list[Position]:
        if self._group.owner.get(partition) is not self:
            raise Fenced(f"partition {partition} of {self._topic} is owned by another member")
        positions = self._log._append(records)
        if consumed is not None:
            self._group.committed[partition] = consumed
        await self._log._notify()
        return positions

    async def seek(self, partition: int, offset: int) -> None:
        self._positions[partition] = offset

    async def committed(self) -> Mapping[int, int]:
        return dict(self._group.committed)
