"""A producer's next transaction, begun and registered while it waits (I/O on aiokafka's
transaction manager).

On Kafka 3.9 (transactions v1) a transaction registers each partition it writes
(AddPartitionsToTxn) and the consumer group whose position it commits (AddOffsetsToTxn)
before it may write either, one request at a time: two of a commit's five round trips. A
producer waiting for its turn can send both before the work arrives: `KafkaMember` has both
of a partition's producers begin their next transactions once the partition has had no
commit for a moment, registered with what its commits wrote lately, and the commit then pays
only the offsets, the records and the end (docs/performance.md, "The next transaction, begun
while the producer waits").

aiokafka registers a partition only when a record is sent to it and a group only together
with an offset. Its transaction manager is swapped for a subclass that may also register a
group with no offset yet; the sender's own routine still sends every request, one at a
time, with its own retries and errors. What a transaction registered and did not write only
receives its markers.

An open transaction is aborted by the coordinator after `transaction_timeout_ms`, which also
fences the producer: one begun early is renewed (aborted, begun and registered again) long
before that, by `KafkaMember`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from aiokafka.errors import IllegalOperation
from aiokafka.producer.transaction_manager import TransactionManager, TransactionState
from aiokafka.structs import TopicPartition

from engine.log.kafka.clients import transaction_error

__all__ = ["MAX_PARTITIONS", "begin", "begun", "begun_at", "install", "renew"]

MAX_PARTITIONS = 16
"""At most this many partitions are registered ahead: each one registered and not written
still receives a marker at the transaction's end."""


class _EarlyManager(TransactionManager):  # type: ignore[misc]  # aiokafka is untyped
    """aiokafka's transaction manager, which may also register a consumer group before any
    offset is sent for it (`consumer_group_to_add` is what its sender asks)."""

    _early_group: str | None = None
    _early_since: float | None = None
    _early_partitions: tuple[TopicPartition, ...] = ()

    def consumer_group_to_add(self) -> str | None:
        group: str | None = super().consumer_group_to_add()
        if group is None and self._txn_consumer_group is None and self.is_in_transaction():
            return self._early_group
        return group

    def complete_transaction(self) -> None:
        self._forget_early()
        super().complete_transaction()

    def aborting_transaction(self) -> None:
        self._forget_early()
        super().aborting_transaction()

    def error_transaction(self, exc: BaseException) -> None:
        self._forget_early()
        super().error_transaction(exc)

    def fatal_error(self, exc: BaseException) -> None:
        self._forget_early()
        super().fatal_error(exc)

    def _forget_early(self) -> None:
        self._early_group = None
        self._early_since = None
        self._early_partitions = ()


def install(producer: Any) -> None:
    """Before the producer starts: its transaction manager may then register ahead. The
    subclass adds no state the sender reads, so the switch is safe on a fresh manager."""
    manager = producer._txn_manager
    if type(manager) is not TransactionManager:
        raise TypeError(f"not aiokafka's transaction manager: {type(manager)!r}")
    manager.__class__ = _EarlyManager


def begin(
    producer: Any,
    partitions: Iterable[TopicPartition],
    group: str,
) -> None:
    """Begin the producer's next transaction now and register `partitions` (the first
    MAX_PARTITIONS in order) and `group`; the sender sends both in the background. Only on a
    started, installed producer that is not in a transaction."""
    manager = producer._txn_manager
    if not isinstance(manager, _EarlyManager) or not manager.has_pid():
        raise RuntimeError("begin ahead needs a started producer with install() applied")
    chosen = tuple(sorted(partitions)[:MAX_PARTITIONS])
    manager.begin_transaction()
    manager._early_group = group
    manager._early_since = time.monotonic()
    manager._early_partitions = chosen
    for tp in chosen:
        manager.maybe_add_partition_to_txn(tp)
    manager.notify_task_waiter()


async def renew(producer: Any, *, again: bool = True) -> None:
    """Abort a transaction begun ahead and unused, then (if `again`) begin and register the
    same again: the coordinator counts `transaction_timeout_ms` from its first
    registration."""
    manager = producer._txn_manager
    partitions, group = manager._early_partitions, manager._early_group
    if group is None:
        raise RuntimeError("renew needs a transaction begun ahead")
    await producer.abort_transaction()
    if again:
        begin(producer, partitions, group)


def begun(producer: Any) -> bool:
    """Whether the producer's transaction is already open (begun ahead). False when it is
    ready for a new one; an error the sender met in the background is raised (it ended
    the transaction: aborting is allowed after an abortable one)."""
    manager = producer._txn_manager
    state = manager.state
    if state is TransactionState.IN_TRANSACTION:
        return True
    if state is TransactionState.READY:
        return False
    error = transaction_error(producer)
    if error is not None:
        raise error
    raise IllegalOperation(f"transactional producer in state {state.name}")


def begun_at(producer: Any) -> float | None:
    """When (time.monotonic) the open transaction was begun (or renewed) ahead; None if it was
    not begun ahead."""
    since: float | None = getattr(producer._txn_manager, "_early_since", None)
    return since
