"""A member's producer begins its next transaction while it waits (engine/log/kafka/early.py),
on the real broker: the coordinator's timeout never fences an idle member, and a zombie's open
transactions are fenced and never visible. The contract's alternation test shows the commits
using what was registered ahead."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from engine.errors import Fenced
from engine.log.kafka import KafkaLog, early
from engine.log.port import Topics
from tests.contracts.conftest import started
from tests.contracts.test_event_log_contract import (
    Worker,
    begun_ahead,
    event,
    read_all,
    settled,
    values,
    zombie_and_owner,
)
from tests.helpers import eventually

pytestmark = pytest.mark.kafka


def _pair(worker: Worker, partition: int = 0) -> Any:
    return worker.member._producers[partition]  # type: ignore[attr-defined]


def _slow_end_txn(producer: Any, delay_s: float = 0.3) -> None:
    """This producer's EndTxn requests wait `delay_s` before they are sent."""
    client = producer.client
    send = client.send

    async def slow(node_id: int, request: Any, *args: Any, **kwargs: Any) -> Any:
        if type(request).__name__.startswith("EndTxnRequest"):
            await asyncio.sleep(delay_s)
        return await send(node_id, request, *args, **kwargs)

    client.send = slow


async def test_an_idle_members_transactions_are_renewed_before_the_coordinator_ends_them(
    kafka_bootstrap: str, fresh_prefix: str
) -> None:
    """With a 3 s transaction timeout, a transaction begun ahead and left open is ended by
    the coordinator (within its 10 s check), which fences the producer: the member without
    renewal is fenced at its next commit, the one with it commits."""
    topics = Topics(fresh_prefix)
    log = KafkaLog(kafka_bootstrap, heartbeat_interval_ms=250, transaction_timeout_ms=3_000)
    async with started(log, topics):
        renewed = await Worker(log, f"{fresh_prefix}.renewed", topics.commands).start()
        left = await Worker(log, f"{fresh_prefix}.left", topics.commands).start()
        await settled(renewed)
        await settled(left)
        left_renewal = left.member._renewal  # type: ignore[attr-defined]
        left_renewal.cancel()
        for worker in (renewed, left):
            await worker.member.commit(0, [event(topics, 0, b"first")], None)
        for worker, group in ((renewed, f"{fresh_prefix}.renewed"), (left, f"{fresh_prefix}.left")):
            for producer in _pair(worker).producers:
                await eventually(lambda p=producer, g=group: begun_ahead(p, g), timeout=10)
        first = early.begun_at(_pair(renewed).producers[0])
        assert first is not None

        await asyncio.sleep(14)  # past the timeout and the coordinator's next check
        for worker in (renewed, left):
            await worker.step()  # heartbeats are aiokafka's own; this keeps polls going

        async with renewed.member._lock(0):  # type: ignore[attr-defined]
            # No renewal in flight (mid-abort, begun_at is None until it begins again).
            again = early.begun_at(_pair(renewed).producers[0])
        assert again is not None
        assert again > first
        for n in range(2):  # through both producers: each had begun ahead and waited
            await renewed.member.commit(0, [event(topics, 0, b"renewed%d" % n)], None)
        with pytest.raises(Fenced):
            await left.member.commit(0, [event(topics, 0, b"timed out")], None)
        committed = values(await read_all(log, topics.runs, 0))
        assert committed == [b"first", b"first", b"renewed0", b"renewed1"]


@pytest.mark.parametrize("turn", [0, 1], ids=["first producer", "its twin"])
async def test_a_zombie_whose_producers_began_ahead_is_fenced_and_never_visible(
    kafka_bootstrap: str, fresh_prefix: str, turn: int
) -> None:
    """The zombie's two open transactions (registered, nothing written) are aborted by the
    new owner's InitProducerId; the zombie's commit through either of them is fenced."""
    topics = Topics(fresh_prefix)
    group = f"{fresh_prefix}.g"
    log = KafkaLog(kafka_bootstrap, heartbeat_interval_ms=250)
    await log.start()
    try:
        zombie, owner = await zombie_and_owner(
            log, topics, group, before=[event(topics, 0, b"before")] * 2
        )
        pair = _pair(zombie)
        assert all(begun_ahead(p, group) for p in pair.producers)
        pair.turn = turn

        with pytest.raises(Fenced):
            await zombie.member.commit(0, [event(topics, 0, b"zombie")], 1)

        await owner.member.commit(0, [event(topics, 0, b"owner")], 1)
        assert values(await read_all(log, topics.runs, 0)) == [b"before", b"before", b"owner"]
    finally:
        await log.close()


async def test_a_partition_left_idle_lets_its_transaction_lapse(
    kafka_bootstrap: str, fresh_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Renewals stop some time after the partition's last commit (each writes markers): the
    transaction is aborted, not begun again, and the next commit begins its own."""
    monkeypatch.setattr("engine.log.kafka.member._KEPT_READY_S", 1.0)
    topics = Topics(fresh_prefix)
    log = KafkaLog(kafka_bootstrap, heartbeat_interval_ms=250, transaction_timeout_ms=2_000)
    async with started(log, topics):
        worker = await Worker(log, f"{fresh_prefix}.g", topics.commands).start()
        await settled(worker)
        await worker.member.commit(0, [event(topics, 0, b"first")], None)
        producer = _pair(worker).producers[0]
        _slow_end_txn(producer)  # each abort's window wide open, as a slow coordinator has it
        await eventually(lambda: early.begun_at(producer) is not None, timeout=10)

        async def lapsed() -> bool:
            """As a commit sees it: under the partition's lock, which a renewal or the lapse
            holds until its abort is answered (mid-abort, begun_at is None already, and the
            state ABORTING_TRANSACTION; a renewal then begins again)."""
            if early.begun_at(producer) is not None:
                return False
            async with worker.member._lock(0):  # type: ignore[attr-defined]
                return early.begun_at(producer) is None and early.begun(producer) is False

        await eventually(lapsed, timeout=10)
        for n in range(2):  # the other producer, then this one, which begins its own
            await worker.member.commit(0, [event(topics, 0, b"again%d" % n)], None)
        assert values(await read_all(log, topics.runs, 0)) == [b"first", b"again0", b"again1"]
