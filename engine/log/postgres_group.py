"""A member of a consumer group on the PostgreSQL event log (see `postgres.py` for the design).

The member runs the group protocol from `poll`, as the in-memory twin does: after a group
change (a NOTIFY on the group's channel) or every heartbeat interval it reads the group,
tells its listener of partitions it lost (taken over after its lease expired), revokes and
releases partitions that are no longer its share, and acquires the free ones of its share.
A background task renews its lease between polls, so a long `on_assigned` (a replay) or a
long tool call does not lose the partitions; only a process that stops running does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import structlog

from engine.errors import Fenced, LogError
from engine.log.port import AssignmentListener, Outgoing, Position, Record
from engine.log.postgres_notify import Signal

__all__ = ["GroupStore", "Ownership", "PostgresMember"]

log = structlog.get_logger(__name__)

Callback = Callable[[str], None]


class Ownership:
    """Who a member is, and the epoch at which it holds each of its partitions."""

    def __init__(self, group: str, topic: str, member_id: str, group_channel: str) -> None:
        self.group = group
        self.topic = topic
        self.member_id = member_id
        self.group_channel = group_channel
        self.epochs: dict[int, int] = {}

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.topic, self.member_id)

    def epoch(self, partition: int) -> int:
        epoch = self.epochs.get(partition)
        if epoch is None:
            raise Fenced(f"{self.topic}[{partition}] is not assigned to member {self.member_id}")
        return epoch


class GroupStore(Protocol):
    """The database side of the group protocol (implemented in `postgres.py`)."""

    @property
    def session_timeout_s(self) -> float: ...

    @property
    def heartbeat_interval_s(self) -> float: ...

    @property
    def fallback_poll_s(self) -> float: ...

    def channel(self, kind: str, *names: str) -> str: ...

    async def subscribe(self, channel: str, callback: Callback) -> None: ...

    async def unsubscribe(self, channel: str, callback: Callback) -> None: ...

    async def partition_count(self, topic: str) -> int: ...

    async def join(self, owner: Ownership, partitions: int) -> None: ...

    async def heartbeat(self, owner: Ownership) -> bool: ...

    async def view(
        self, owner: Ownership
    ) -> tuple[list[str], dict[int, tuple[str | None, int]]]: ...

    async def acquire(
        self, owner: Ownership, partitions: frozenset[int]
    ) -> dict[int, tuple[int, int | None]]: ...

    async def release(self, owner: Ownership, partitions: frozenset[int]) -> None: ...

    async def leave(self, owner: Ownership) -> None: ...

    async def fetch(
        self, topic: str, positions: dict[int, int], limit: int
    ) -> dict[int, list[Record]]: ...

    async def commit(
        self, owner: Ownership, partition: int, records: Sequence[Outgoing], consumed: int | None
    ) -> list[Position]: ...

    def forget(self, member: PostgresMember) -> None: ...


class PostgresMember:
    """One member of a consumer group over one topic of the PostgreSQL log."""

    def __init__(
        self,
        store: GroupStore,
        group: str,
        topic: str,
        listener: AssignmentListener,
        member_id: str,
    ) -> None:
        self._store = store
        self._topic = topic
        self._listener = listener
        self._owner = Ownership(group, topic, member_id, store.channel("g", group, topic))
        self._records_channel = store.channel("t", topic)
        self._partitions = 0
        self._assigned: frozenset[int] = frozenset()
        self._positions: dict[int, int] = {}
        self._wake = Signal()
        self._group_changes = 0
        self._synced_changes = -1
        self._record_changes = 0
        self._fetched_changes = -1
        self._more = False
        self._next_sync = 0.0
        self._next_fetch = 0.0
        self._rotation = 0
        self._heartbeats: asyncio.Task[None] | None = None
        self._started = False
        self._log = log.bind(group=group, topic=topic, member=member_id)

    @property
    def assigned(self) -> frozenset[int]:
        return self._assigned

    @property
    def member_id(self) -> str:
        return self._owner.member_id

    # -- joining and leaving ------------------------------------------------------------------

    async def start(self) -> None:
        self._partitions = await self._store.partition_count(self._topic)
        await self._store.subscribe(self._owner.group_channel, self._on_group)
        await self._store.subscribe(self._records_channel, self._on_records)
        await self._store.join(self._owner, self._partitions)
        self._heartbeats = asyncio.create_task(self._heartbeat_loop())
        self._started = True
        self._log.info("group_joined")

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self._heartbeats is not None:
            self._heartbeats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeats
        try:
            if self._assigned:
                await self._revoke(self._assigned, release=False)  # `leave` releases them all
        finally:
            try:
                await self._store.leave(self._owner)
            except LogError as error:  # our lease expires instead; others take over then
                self._log.warning("group_leave_failed", error=str(error))
            await self._store.unsubscribe(self._owner.group_channel, self._on_group)
            await self._store.unsubscribe(self._records_channel, self._on_records)
            self._store.forget(self)
            self._log.info("group_left")

    def _on_group(self, payload: str) -> None:
        self._group_changes += 1
        self._wake.fire()

    def _on_records(self, payload: str) -> None:
        if payload and payload.isdigit() and int(payload) not in self._assigned:
            return
        self._record_changes += 1
        self._wake.fire()

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._store.heartbeat_interval_s)
            try:
                alive = await self._store.heartbeat(self._owner)
            except LogError as error:  # retried next interval; the lease covers a few misses
                self._log.warning("group_heartbeat_failed", error=str(error))
                continue
            if not alive:  # expired and removed by another member: rejoin at the next poll
                self._log.warning("group_membership_expired")
                self._on_group("expired")

    # -- polling ------------------------------------------------------------------------------

    async def poll(self, timeout_s: float, max_records: int = 500) -> list[Record]:
        if not self._started:
            raise LogError("poll on a member that is not started")
        deadline = time.monotonic() + timeout_s
        while True:
            seen = self._wake.version
            if self._group_changes != self._synced_changes or time.monotonic() >= self._next_sync:
                await self._sync()
            batch = await self._fetch(max_records) if self._fetch_due() else []
            now = time.monotonic()
            if batch or now >= deadline:
                return batch
            wake_at = min(deadline, self._next_sync, self._next_fetch)
            await self._wake.wait(seen, max(wake_at - now, 0.001))

    def _fetch_due(self) -> bool:
        return bool(self._assigned) and (
            self._more
            or self._record_changes != self._fetched_changes
            or time.monotonic() >= self._next_fetch
        )

    async def _fetch(self, max_records: int) -> list[Record]:
        changes = self._record_changes
        positions = {p: self._positions[p] for p in self._assigned}
        found = await self._store.fetch(self._topic, positions, max_records)
        # Start at a rotating partition, so that one busy partition cannot starve the others.
        order = sorted(positions)
        self._rotation = (self._rotation + 1) % len(order)
        order = order[self._rotation :] + order[: self._rotation]
        batch: list[Record] = []
        more = False
        for partition in order:
            records = found.get(partition, [])
            taken = records[: max_records - len(batch)]
            more = more or len(taken) < len(records) or len(records) >= max_records
            if taken and partition in self._assigned:
                batch += taken
                self._positions[partition] = taken[-1].offset + 1
        self._fetched_changes = changes
        self._more = more
        self._next_fetch = time.monotonic() + self._store.fallback_poll_s
        return batch

    async def seek(self, partition: int, offset: int) -> None:
        if partition not in self._assigned:
            self._log.debug("seek_ignored_not_assigned", partition=partition)
            return
        self._positions[partition] = offset
        self._more = True

    # -- the group protocol -------------------------------------------------------------------

    async def _sync(self) -> None:
        changes = self._group_changes
        self._next_sync = time.monotonic() + self._store.heartbeat_interval_s
        live, rows = await self._store.view(self._owner)
        self._synced_changes = changes
        me = self._owner.member_id
        held = frozenset(
            p for p in self._assigned if rows.get(p) == (me, self._owner.epochs.get(p))
        )
        lost = self._assigned - held
        if lost:  # taken over while our lease had expired: we hear of it only now
            self._log.warning("partitions_lost", partitions=sorted(lost))
            await self._revoke(lost, release=False)
        share = self._share(live)
        if self._assigned - share:
            await self._revoke(self._assigned - share, release=True)
        stale = frozenset(p for p, (owner, _) in rows.items() if owner == me) - self._assigned
        if stale:  # rows still naming us after a failed release or a failed assignment
            await self._store.release(self._owner, stale)
        free = frozenset(
            p for p in share - self._assigned if rows.get(p, (None, 0))[0] is None or p in stale
        )
        if free:
            await self._acquire(free)

    def _share(self, live: list[str]) -> frozenset[int]:
        """Round-robin over the live members in id order: the same answer for every member."""
        if self._owner.member_id not in live:
            return frozenset()
        index = live.index(self._owner.member_id)
        return frozenset(p for p in range(self._partitions) if p % len(live) == index)

    async def _acquire(self, partitions: frozenset[int]) -> None:
        got = await self._store.acquire(self._owner, partitions)
        if not got:
            return
        gained = frozenset(got)
        for partition, (epoch, _) in got.items():
            self._owner.epochs[partition] = epoch
        self._assigned |= gained
        self._log.info("partitions_assigned", partitions=sorted(gained))
        try:
            starts = await self._listener.on_assigned(gained)
        except BaseException:
            self._forget(gained)  # give them back; the next sync may take them again
            with contextlib.suppress(LogError):
                await self._store.release(self._owner, gained)
            raise
        for partition, (_, committed) in got.items():
            start = starts.get(partition)
            self._positions[partition] = start if start is not None else committed or 0
        self._more = True

    async def _revoke(self, partitions: frozenset[int], *, release: bool) -> None:
        """Tell the listener, forget, then (if ours to give) release in the database: the
        next owner cannot acquire before the listener heard of the revocation."""
        self._log.info("partitions_revoked", partitions=sorted(partitions))
        try:
            await self._listener.on_revoked(partitions)
        finally:
            self._forget(partitions)
            if release:
                try:
                    await self._store.release(self._owner, partitions)
                except LogError as error:  # released by the next sync (`stale`)
                    self._log.warning("partitions_release_failed", error=str(error))

    def _forget(self, partitions: frozenset[int]) -> None:
        self._assigned -= partitions
        for partition in partitions:
            self._positions.pop(partition, None)
            self._owner.epochs.pop(partition, None)

    # -- committing ---------------------------------------------------------------------------

    async def commit(
        self, partition: int, records: Sequence[Outgoing], consumed: int | None
    ) -> list[Position]:
        if partition not in self._assigned:
            raise Fenced(f"{self._topic}[{partition}] is not assigned to this member")
        if not records and consumed is None:
            return []
        try:
            return await self._store.commit(self._owner, partition, records, consumed)
        except Fenced:
            self._log.warning("commit_fenced", partition=partition)
            self._on_group("fenced")  # learn at the next poll who owns what
            raise
