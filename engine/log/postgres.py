"""The PostgreSQL adapter of the event-log port (asyncpg); asyncpg's objects never leave it.

One database holds the whole log: topics and partitions are rows, records are rows keyed by
(topic, partition, offset), consumer groups are member rows with leases plus one ownership
row per partition (`postgres_sql.py` has the tables). It runs on the embedded PostgreSQL
(`countersign.local_pg`) or any PostgreSQL 13+.

How it keeps the port's promises:
- Order and visibility. Every append is one statement (`cs_log_append`) that locks the
  partitions' counter rows in (topic, partition) order, takes the next offsets, inserts the
  records and holds those locks until it commits. Appends to one partition therefore commit
  one after another in offset order (a transaction becomes visible before it releases its
  locks), so a reader at offset N never sees N+1 without N: no gaps, no skipped records.
  Offsets are contiguous from 0 (an aborted append takes no offsets, unlike Kafka).
- Exactly-once command handling. `GroupMember.commit` is one statement (`cs_log_commit`),
  so one transaction: it checks that the member still owns the partition at its epoch
  (the ownership row's lock is taken and held to commit), stores the group position, then
  appends. Fenced: nothing written, `Fenced` raised.
- One writer per partition, so per run. A partition's ownership row names one member and an
  epoch; a member acquires a partition only while the row has no owner (`owner IS NULL`),
  and every acquisition increments the epoch. The row is released by its owner after its
  listener heard the revocation, or by any member once the owner's lease expired (it
  stopped heart-beating: killed, stalled or cut off). A commit holds the row's lock from its
  ownership check to its commit, and an acquisition must lock the row too; so for two
  workers on one database both appending to one run, one of them would have to commit
  while the row names the other — the check refuses exactly that. A takeover either waits
  for the old owner's commit (and then reads its position) or fences it. A zombie that
  wakes after its lease expired is fenced on its first commit and told of the revocation at
  its next poll.
- Groups. Members heartbeat in the background (`heartbeat_interval_s`) and lose their
  partitions `session_timeout_s` after the last heartbeat. Each member, at its next poll
  after a group change (or every heartbeat interval), computes the round-robin split of
  the partitions over the live members (sorted by id) — revokes and releases what is no
  longer its own, then acquires whatever of its share is free: revocation always comes
  before reassignment, as with Kafka's eager protocol. Group changes are serialized by an
  advisory lock per group.
- Wake-ups. Appends and group changes NOTIFY a channel per topic or group from inside their
  transaction (`postgres_notify.py`); polls and following reads wait on those, with a
  `fallback_poll_s` timeout in case a notification was lost.

Documented limits (differences from Kafka):
- No retention: records stay until deleted by hand (Kafka deletes non-runs topics after
  `retention.ms`). The runs topic must stay anyway; the others are small.
- Partitions of a topic are fixed at creation, as on Kafka; `publish` to a topic that was
  never ensured is a `ConfigurationError` (Kafka may auto-create it).
- Appends to one partition are serialized by a row lock, so the write rate of one
  partition is bounded by one transaction at a time (thousands per second on one machine).

Errors: connection trouble, deadlocks and serialization failures raise `TransientLogError`
(the outcome of an append may be unknown: the worker re-reads and relies on command ids);
a record for a missing topic or partition raises `ConfigurationError` and writes nothing;
anything else from PostgreSQL raises `LogError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import asyncpg
import structlog

from engine.errors import ConfigurationError, Fenced, LogError, TransientLogError
from engine.log import postgres_sql as sql
from engine.log.port import AssignmentListener, Outgoing, Position, Record, Topics, partition_for
from engine.log.postgres_group import GroupStore, Ownership, PostgresMember
from engine.log.postgres_notify import Notifier, Signal

__all__ = ["PostgresLog", "PostgresMember"]

log = structlog.get_logger(__name__)

_SCHEMA_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
_TRANSIENT = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.TransactionRollbackError,  # deadlock, serialization failure
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, cancelled
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)


class PostgresLog:
    """The event log in one PostgreSQL database; one per process, shared by everything in it."""

    def __init__(
        self,
        url: str,
        *,
        schema: str = "public",
        client_id: str = "countersign",
        pool_size: int = 8,
        session_timeout_s: float = 10.0,
        heartbeat_interval_s: float = 1.0,
        fallback_poll_s: float = 1.0,
        read_page: int = 1000,
        connect_timeout_s: float = 30.0,
    ) -> None:
        if not schema or set(schema) - _SCHEMA_CHARS or schema[0].isdigit():
            raise ConfigurationError(f"schema {schema!r} is not a plain lower-case identifier")
        if heartbeat_interval_s * 3 > session_timeout_s:
            raise ConfigurationError("heartbeat_interval_s must be at most session_timeout_s / 3")
        self.url = url
        self.schema = schema
        self.client_id = client_id
        self.session_timeout_s = session_timeout_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.fallback_poll_s = fallback_poll_s
        self._pool_size = pool_size
        self._read_page = read_page
        self._connect_timeout_s = connect_timeout_s
        self._pool: Any = None
        self._notifier = Notifier(self._connect_listener)
        self._counts: dict[str, int] = {}
        self._members: set[PostgresMember] = set()

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        async with _errors("connect"):
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=self._pool_size,
                timeout=self._connect_timeout_s,
                server_settings={
                    "search_path": self.schema,
                    "application_name": f"{self.client_id}-log"[:63],
                },
            )
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    await conn.execute(sql.DDL_LOCK, self.schema)
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                    await conn.execute(sql.DDL)
                await self._notifier.start()
            except BaseException:
                pool, self._pool = self._pool, None
                pool.terminate()
                raise

    async def close(self) -> None:
        for member in list(self._members):
            await member.stop()
        await self._notifier.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 10.0)
            except (TimeoutError, *_TRANSIENT) as error:
                log.warning("log_pool_close_failed", error=repr(error))
                pool.terminate()

    async def _connect_listener(self) -> Any:
        return await asyncpg.connect(self.url, timeout=self._connect_timeout_s)

    # -- topics -------------------------------------------------------------------------------

    async def ensure_topics(self, topics: Topics, partitions: int) -> None:
        if partitions < 1:
            raise ConfigurationError(f"a topic needs at least one partition, not {partitions}")
        names = list(topics.all)
        async with _errors("ensure_topics"), self._tx() as conn:
            await conn.execute(sql.DDL_LOCK, self.schema)
            counts = await _partition_counts(conn, names)
            for name in (topics.commands, topics.runs):
                if name in counts and counts[name] != partitions:
                    raise ConfigurationError(
                        f"topic {name} has {counts[name]} partitions, expected {partitions}: "
                        "the commands and runs topics must be co-partitioned"
                    )
            missing = [name for name in names if name not in counts]
            if missing:
                await conn.execute(sql.CREATE_PARTITIONS, missing, partitions)
        self._counts.update(counts)
        self._counts.update({name: partitions for name in missing})

    async def partition_count(self, topic: str) -> int:
        count = self._counts.get(topic)
        if count is None:
            async with _errors("partition_count"):
                counts = await _partition_counts(self._p(), [topic])
            if topic not in counts:
                raise ConfigurationError(f"topic {topic} does not exist")
            count = self._counts[topic] = counts[topic]
        return count

    async def log_id(self, topic: str) -> str:
        """`postgres:<this log's id>:<topic>` (the id is drawn when the log's tables are made)."""
        async with _errors("log_id"):
            found = await self._p().fetchval(sql.LOG_ID, topic)
        if found is None:
            raise ConfigurationError(f"topic {topic} does not exist")
        return f"postgres:{found}:{topic}"

    # -- appending ----------------------------------------------------------------------------

    async def publish(self, records: Sequence[Outgoing]) -> list[Position]:
        if not records:
            return []
        plan = await self._plan(records)
        async with _errors("publish"):
            rows = await self._p().fetch(sql.APPEND, *plan.arrays)
        return plan.positions(rows)

    async def _plan(self, records: Sequence[Outgoing]) -> _Plan:
        """Partitions chosen and checked before anything is written: all or nothing."""
        partitions = []
        for out in records:
            count = await self.partition_count(out.topic)
            if out.partition is None:
                partitions.append(partition_for(out.key, count))
            elif 0 <= out.partition < count:
                partitions.append(out.partition)
            else:
                raise ConfigurationError(f"topic {out.topic} has no partition {out.partition}")
        return _Plan(records, partitions, self.schema)

    async def _commit(
        self, owner: Ownership, partition: int, records: Sequence[Outgoing], consumed: int | None
    ) -> list[Position]:
        """For `PostgresMember.commit`: fence check, position and records in one statement."""
        plan = await self._plan(records)
        async with _errors("commit"):
            rows = await self._p().fetch(
                sql.COMMIT,
                owner.group,
                owner.topic,
                partition,
                owner.member_id,
                owner.epoch(partition),
                consumed,
                *plan.arrays,
            )
        return plan.positions(rows)

    # -- reading ------------------------------------------------------------------------------

    async def end_offset(self, topic: str, partition: int) -> int:
        async with _errors("end_offset"):
            end = await self._p().fetchval(sql.END_OFFSET, topic, partition)
        if end is None:
            raise ConfigurationError(f"topic {topic} has no partition {partition}")
        return int(end)

    async def read(
        self, topic: str, partition: int, start: int, *, follow: bool = False
    ) -> AsyncIterator[Record]:
        end = await self.end_offset(topic, partition)
        if start < 0:
            raise ConfigurationError(f"offset {start} is outside {topic}[{partition}]")
        if not follow:
            async for record in self._pages(topic, partition, start, end):
                yield record
            return
        signal = Signal()
        channel = sql.notify_channel("t", self.schema, topic)
        wanted = str(partition)

        def wake(payload: str) -> None:
            if payload in (wanted, ""):
                signal.fire()

        await self._notifier.subscribe(channel, wake)
        try:
            position = start
            while True:
                seen = signal.version
                async for record in self._pages(topic, partition, position, None):
                    yield record
                    position = record.offset + 1
                await signal.wait(seen, self.fallback_poll_s)
        finally:
            await self._notifier.unsubscribe(channel, wake)

    async def _pages(
        self, topic: str, partition: int, start: int, end: int | None
    ) -> AsyncIterator[Record]:
        """Records from `start` up to `end` (None: up to what is committed now), one page
        (one query, no connection held) at a time."""
        position = start
        upper = end if end is not None else 2**63 - 1
        while position < upper:
            async with _errors("read"):
                rows = await self._p().fetch(
                    sql.READ, topic, partition, position, upper, self._read_page
                )
            for row in rows:
                yield _record(topic, row)
            if len(rows) < self._read_page:
                return
            position = int(rows[-1]["offset"]) + 1

    # -- groups -------------------------------------------------------------------------------

    def member(self, group: str, topic: str, listener: AssignmentListener) -> PostgresMember:
        member_id = f"{self.client_id}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        member = PostgresMember(_Groups(self), group, topic, listener, member_id)
        self._members.add(member)
        return member

    def _p(self) -> Any:
        if self._pool is None:
            raise LogError("the PostgreSQL log is not started (or already closed)")
        return self._pool

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[Any]:
        async with self._p().acquire() as conn, conn.transaction():
            yield conn


class _Groups(GroupStore):
    """What a `PostgresMember` needs of its log: the group statements, run here."""

    def __init__(self, owner: PostgresLog) -> None:
        self._log = owner

    @property
    def session_timeout_s(self) -> float:
        return self._log.session_timeout_s

    @property
    def heartbeat_interval_s(self) -> float:
        return self._log.heartbeat_interval_s

    @property
    def fallback_poll_s(self) -> float:
        return self._log.fallback_poll_s

    def channel(self, kind: str, *names: str) -> str:
        return sql.notify_channel(kind, self._log.schema, *names)

    async def subscribe(self, channel: str, callback: Callable[[str], None]) -> None:
        await self._log._notifier.subscribe(channel, callback)

    async def unsubscribe(self, channel: str, callback: Callable[[str], None]) -> None:
        await self._log._notifier.unsubscribe(channel, callback)

    async def partition_count(self, topic: str) -> int:
        return await self._log.partition_count(topic)

    async def join(self, owner: Ownership, partitions: int) -> None:
        async with _errors("join"), self._log._tx() as conn:
            await conn.execute(sql.ENSURE_ASSIGNMENTS, owner.group, owner.topic, partitions)
            await conn.fetchval(sql.JOIN, *owner.key, self.session_timeout_s)
            await conn.execute(sql.NOTIFY, owner.group_channel, "join")

    async def heartbeat(self, owner: Ownership) -> bool:
        async with _errors("heartbeat"):
            found = await self._log._p().fetchval(sql.HEARTBEAT, *owner.key, self.session_timeout_s)
        return found is not None

    async def view(self, owner: Ownership) -> tuple[list[str], dict[int, tuple[str | None, int]]]:
        """Expire dead members (releasing their partitions), renew or rejoin this one; return
        the live members (sorted) and each partition's (owner, epoch)."""
        async with _errors("rebalance"), self._log._tx() as conn:
            await conn.execute(sql.GROUP_LOCK, owner.group_channel)
            expired = await conn.fetch(sql.EXPIRE, owner.group, owner.topic)
            joined = await conn.fetchval(sql.JOIN, *owner.key, self.session_timeout_s)
            live = [str(r["member_id"]) for r in await conn.fetch(sql.LIVE, *owner.key[:2])]
            orphans = await conn.fetch(sql.RELEASE_ORPHANS, owner.group, owner.topic, live)
            rows = await conn.fetch(sql.OWNERSHIP, owner.group, owner.topic)
            if expired or joined or orphans:
                await conn.execute(sql.NOTIFY, owner.group_channel, "change")
        if expired:
            log.info(
                "group_members_expired",
                group=owner.group,
                topic=owner.topic,
                members=[str(r["member_id"]) for r in expired],
            )
        return live, {int(r["partition"]): (r["owner"], int(r["epoch"])) for r in rows}

    async def acquire(
        self, owner: Ownership, partitions: frozenset[int]
    ) -> dict[int, tuple[int, int | None]]:
        """Take the free ones of `partitions`: {partition: (epoch, committed position)}."""
        async with _errors("acquire"):
            rows = await self._log._p().fetch(sql.ACQUIRE, *owner.key, sorted(partitions))
        return {
            int(r["partition"]): (
                int(r["epoch"]),
                None if r["committed"] is None else int(r["committed"]),
            )
            for r in rows
        }

    async def release(self, owner: Ownership, partitions: frozenset[int]) -> None:
        async with _errors("release"), self._log._tx() as conn:
            await conn.execute(sql.RELEASE, *owner.key, sorted(partitions))
            await conn.execute(sql.NOTIFY, owner.group_channel, "release")

    async def leave(self, owner: Ownership) -> None:
        async with _errors("leave"), self._log._tx() as conn:
            await conn.execute(sql.LEAVE, *owner.key)
            await conn.execute(sql.NOTIFY, owner.group_channel, "leave")

    async def fetch(
        self, topic: str, positions: dict[int, int], limit: int
    ) -> dict[int, list[Record]]:
        wanted = sorted(positions)
        async with _errors("poll"):
            rows = await self._log._p().fetch(
                sql.FETCH, topic, wanted, [positions[p] for p in wanted], limit
            )
        found: dict[int, list[Record]] = {}
        for row in rows:
            record = _record(topic, row)
            found.setdefault(record.partition, []).append(record)
        return found

    async def commit(
        self, owner: Ownership, partition: int, records: Sequence[Outgoing], consumed: int | None
    ) -> list[Position]:
        return await self._log._commit(owner, partition, records, consumed)

    def forget(self, member: PostgresMember) -> None:
        self._log._members.discard(member)


class _Plan:
    """Records as the parallel arrays the append functions take."""

    def __init__(self, records: Sequence[Outgoing], partitions: list[int], schema: str) -> None:
        self._targets = [(out.topic, p) for out, p in zip(records, partitions, strict=True)]
        now_ms = int(time.time() * 1000)
        channels = {out.topic: sql.notify_channel("t", schema, out.topic) for out in records}
        self.arrays: tuple[list[Any], ...] = (
            [out.topic for out in records],
            partitions,
            [out.key for out in records],
            [out.value for out in records],
            [now_ms] * len(records),
            [sql.encode_headers(out.headers) for out in records],
            [channels[out.topic] for out in records],
        )

    def positions(self, rows: Sequence[Any]) -> list[Position]:
        offsets = {int(row["ord"]): int(row["offset"]) for row in rows}
        if len(offsets) != len(self._targets):
            raise LogError(f"appended {len(offsets)} of {len(self._targets)} records")
        return [
            Position(topic, partition, offsets[i])
            for i, (topic, partition) in enumerate(self._targets, start=1)
        ]


async def _partition_counts(conn: Any, topics: list[str]) -> dict[str, int]:
    rows = await conn.fetch(sql.PARTITION_COUNTS, topics)
    return {str(r["topic"]): int(r["partitions"]) for r in rows}


def _record(topic: str, row: Any) -> Record:
    return Record(
        topic=topic,
        partition=int(row["partition"]),
        offset=int(row["offset"]),
        key=row["key"],
        value=bytes(row["value"]),
        timestamp_ms=int(row["timestamp_ms"]),
        headers=sql.decode_headers(row["headers"]),
    )


@contextlib.asynccontextmanager
async def _errors(what: str) -> AsyncIterator[None]:
    """asyncpg's errors become ours; our own SQLSTATEs say fenced or no such partition."""
    try:
        yield
    except asyncpg.PostgresError as error:
        state = getattr(error, "sqlstate", None)
        if state == sql.FENCED:
            raise Fenced(str(error)) from error
        if state == sql.NO_PARTITION:
            raise ConfigurationError(str(error)) from error
        if isinstance(error, _TRANSIENT):
            raise TransientLogError(f"{what}: {error!r}") from error
        raise LogError(f"{what}: {error!r}") from error
    except _TRANSIENT as error:
        raise TransientLogError(f"{what}: {error!r}") from error
