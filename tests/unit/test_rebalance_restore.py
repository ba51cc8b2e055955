"""A restore that a revocation overtakes installs nothing: on Kafka the client revokes while a
step still reads (it restores after a failed commit), and what it read then must not make the
worker serve a partition the group gave to another member."""

from __future__ import annotations

import asyncio
from typing import Any

from engine.log.memory import MemoryLog
from engine.log.port import Topics
from engine.runtime.ownership import Ownership
from engine.runtime.rebalance import Rebalancer
from engine.runtime.table import RunTable
from engine.runtime.timers import DeadlineTimer
from events.codec import Codec
from tests.helpers import eventually


class _HeldLog:
    """The in-memory log, whose end offsets wait for `go` (a restore that is reading)."""

    def __init__(self, inner: MemoryLog) -> None:
        self._inner = inner
        self.go = asyncio.Event()
        self.asked = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def end_offset(self, topic: str, partition: int) -> int:
        self.asked += 1
        await self.go.wait()
        return await self._inner.end_offset(topic, partition)


async def _rebalancer() -> tuple[Rebalancer, _HeldLog, RunTable, Ownership]:
    inner = MemoryLog(default_partitions=1)
    topics = Topics("held")
    await inner.ensure_topics(topics, 1)
    held = _HeldLog(inner)
    table, own = RunTable(), Ownership()
    rebalancer = Rebalancer(
        held,  # type: ignore[arg-type]
        topics,
        Codec(),
        table,
        own,
        DeadlineTimer(),
        keep_finished=10,
        revoke_grace_s=0.1,
    )
    return rebalancer, held, table, own


async def test_a_restore_overtaken_by_a_revocation_installs_nothing() -> None:
    rebalancer, held, table, own = await _rebalancer()
    restoring = asyncio.create_task(rebalancer.restore_or_defer(0))
    await eventually(lambda: held.asked > 0, message="the restore reads")

    rebalancer.drop(0)  # what on_revoked does meanwhile
    held.go.set()

    assert await restoring is None
    assert 0 not in table
    assert 0 not in own
    assert rebalancer.next_restored() is None  # nothing left to resume either


async def test_a_restore_left_alone_installs_the_partition() -> None:
    rebalancer, held, table, own = await _rebalancer()
    held.go.set()

    assert await rebalancer.restore_or_defer(0) is not None
    assert 0 in table
    assert 0 in own
