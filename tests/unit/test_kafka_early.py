"""engine/log/kafka/early.py without a broker: aiokafka's transaction manager is plain state,
and its sender only asks it what to send next (partitions, then the group, then offsets)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

# The adapter's own client: the module under test patches its transaction manager.
from aiokafka.errors import (  # noqa: TID251
    GroupAuthorizationFailedError,
    IllegalOperation,
    ProducerFenced,
)
from aiokafka.producer.transaction_manager import (  # noqa: TID251
    TransactionManager,
    TransactionState,
)
from aiokafka.structs import OffsetAndMetadata, TopicPartition  # noqa: TID251

from engine.log.kafka import early

GROUP = "g"
RUNS = [TopicPartition("runs", n) for n in range(20)]


def producer(*, pid: bool = True) -> Any:
    manager = TransactionManager("g.commands.0", 60_000)
    fake = SimpleNamespace(_txn_manager=manager)
    early.install(fake)
    if pid:
        manager.set_pid_and_epoch(7, 0)
    return fake


async def test_begun_ahead_the_sender_registers_partitions_then_the_group() -> None:
    p = producer()
    manager = p._txn_manager
    assert early.begun(p) is False

    early.begin(p, [RUNS[1], RUNS[0]], GROUP)

    assert early.begun(p) is True
    assert manager.partitions_to_add() == {RUNS[0], RUNS[1]}
    assert manager.consumer_group_to_add() == GROUP
    for tp in (RUNS[0], RUNS[1]):
        manager.partition_added(tp)
    manager.consumer_group_added(GROUP)
    assert manager.consumer_group_to_add() is None  # registered once
    assert manager.offsets_to_commit() is None  # nothing to commit until the commit says so


async def test_an_offset_sent_later_goes_straight_to_its_commit() -> None:
    p = producer()
    manager = p._txn_manager
    early.begin(p, [RUNS[0]], GROUP)
    manager.partition_added(RUNS[0])
    manager.consumer_group_added(GROUP)

    offsets = {RUNS[0]: OffsetAndMetadata(5, "")}
    manager.add_offsets_to_txn(offsets, GROUP)

    assert manager.consumer_group_to_add() is None
    assert manager.offsets_to_commit() == (offsets, GROUP)


async def test_an_offset_sent_before_the_group_was_registered_waits_for_it() -> None:
    p = producer()
    manager = p._txn_manager
    early.begin(p, [], GROUP)
    manager.add_offsets_to_txn({RUNS[0]: OffsetAndMetadata(5, "")}, GROUP)

    assert manager.consumer_group_to_add() == GROUP
    assert manager.offsets_to_commit() is None


async def test_the_end_of_a_transaction_forgets_what_was_begun_ahead() -> None:
    p = producer()
    manager = p._txn_manager
    early.begin(p, [RUNS[0]], GROUP)
    manager.partition_added(RUNS[0])
    assert early.begun_at(p) is not None

    manager.aborting_transaction()

    assert manager.consumer_group_to_add() is None  # an abort registers nothing more
    assert early.begun_at(p) is None
    manager.complete_transaction()
    assert early.begun(p) is False
    assert manager.consumer_group_to_add() is None


async def test_at_most_max_partitions_are_registered_ahead() -> None:
    p = producer()
    early.begin(p, RUNS, GROUP)

    assert p._txn_manager.partitions_to_add() == set(RUNS[: early.MAX_PARTITIONS])


async def test_an_abortable_error_met_ahead_is_raised_by_begun() -> None:
    p = producer()
    early.begin(p, [RUNS[0]], GROUP)
    p._txn_manager.error_transaction(GroupAuthorizationFailedError(GROUP))

    with pytest.raises(GroupAuthorizationFailedError):
        early.begun(p)
    assert p._txn_manager.state is TransactionState.ABORTABLE_ERROR
    p._txn_manager.aborting_transaction()  # the commit may still abort it


async def test_a_fencing_met_ahead_is_raised_by_begun() -> None:
    p = producer()
    early.begin(p, [RUNS[0]], GROUP)
    p._txn_manager.fatal_error(ProducerFenced())

    with pytest.raises(ProducerFenced):
        early.begun(p)


async def test_begin_needs_a_started_installed_producer_out_of_a_transaction() -> None:
    with pytest.raises(RuntimeError, match="started producer"):
        early.begin(producer(pid=False), [RUNS[0]], GROUP)
    plain = SimpleNamespace(_txn_manager=TransactionManager("t", 60_000))
    plain._txn_manager.set_pid_and_epoch(1, 0)
    with pytest.raises(RuntimeError, match="install"):
        early.begin(plain, [RUNS[0]], GROUP)
    p = producer()
    early.begin(p, [RUNS[0]], GROUP)
    with pytest.raises(AssertionError):  # aiokafka's own state check: not twice
        early.begin(p, [RUNS[0]], GROUP)
    with pytest.raises(TypeError):  # installed once only, on aiokafka's own manager
        early.install(p)


async def test_begun_refuses_a_state_it_cannot_name_an_error_for() -> None:
    p = producer(pid=False)

    with pytest.raises(IllegalOperation, match="UNINITIALIZED"):
        early.begun(p)


async def test_renew_aborts_and_begins_the_same_again() -> None:
    p = producer()
    manager = p._txn_manager
    early.begin(p, [RUNS[0], RUNS[1]], GROUP)
    first = early.begun_at(p)
    aborted: list[bool] = []

    async def abort_transaction() -> None:  # what the sender does once EndTxn is answered
        aborted.append(True)
        manager.aborting_transaction()
        manager._pending_txn_partitions.clear()
        manager.complete_transaction()

    p.abort_transaction = abort_transaction
    await asyncio.sleep(0.001)
    await early.renew(p)

    assert aborted == [True]
    assert early.begun(p) is True
    assert manager.partitions_to_add() == {RUNS[0], RUNS[1]}
    assert manager.consumer_group_to_add() == GROUP
    after = early.begun_at(p)
    assert first is not None
    assert after is not None
    assert after > first  # begun again now


async def test_renew_that_does_not_begin_again_leaves_the_producer_ready() -> None:
    p = producer()
    manager = p._txn_manager
    early.begin(p, [RUNS[0]], GROUP)

    async def abort_transaction() -> None:
        manager.aborting_transaction()
        manager._pending_txn_partitions.clear()
        manager.complete_transaction()

    p.abort_transaction = abort_transaction
    await early.renew(p, again=False)

    assert early.begun(p) is False
    assert early.begun_at(p) is None


async def test_a_pair_remembers_the_latest_partitions_written_up_to_the_bound() -> None:
    from engine.log.kafka.member import _Pair
    from engine.log.port import Position

    pair = _Pair((producer(), producer()))
    pair.wrote([Position("runs", n, 0) for n in range(early.MAX_PARTITIONS)])
    pair.wrote([Position("runs", 0, 1), Position("approvals", 3, 0)])

    written = list(pair.written)
    assert len(written) == early.MAX_PARTITIONS
    assert TopicPartition("runs", 1) not in written  # the oldest went first
    assert written[-2:] == [TopicPartition("runs", 0), TopicPartition("approvals", 3)]
    assert pair.committed_at > 0
