"""The notifier's ledger: the in-memory twin and PostgreSQL keep one meaning.

A delivery is kept once whatever how often it is recorded; a position moves with its
deliveries; a closed request's request and reminders are cancelled (escalations are not);
a claim leases due deliveries to one owner; an expired lease goes to another; only the owner
marks it sent; a retry makes it due again later, or failed for good.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from consumers.notify_ledger import Ledger, MemoryLedger
from consumers.notify_plan import Delivery

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


Open = Callable[[], Awaitable[Ledger]]


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def open_ledger(request: pytest.FixtureRequest) -> Open:
    if request.param == "memory":

        async def memory() -> Ledger:
            return MemoryLedger()

        return memory
    from consumers.notify_store import PostgresLedger

    url: str = request.getfixturevalue("pg_url")
    schema: str = request.getfixturevalue("fresh_prefix")  # tables of its own per test
    return lambda: PostgresLedger.connect(url, schema=schema)


@pytest.fixture
async def ledger(open_ledger: Open) -> AsyncIterator[Ledger]:
    opened = await open_ledger()
    try:
        yield opened
    finally:
        close = getattr(opened, "close", None)
        if close is not None:
            await close()


def delivery(
    interrupt: str, kind: str = "request", channel: str = "ops", late_s: float = 0
) -> Delivery:
    return Delivery(
        id=f"{interrupt}/{channel}/{kind}", interrupt_id=interrupt, run_id="r", channel=channel,
        kind=kind, due_at=NOW + timedelta(seconds=late_s), message={"headline": interrupt},
    )  # fmt: skip


async def test_recording_twice_keeps_one_delivery_and_moves_the_position(ledger: Ledger) -> None:
    first = [delivery("i1"), delivery("i1", "reminder-60", late_s=100)]
    await ledger.record("t", 0, 5, first, [])
    await ledger.record("t", 0, 5, first, [])
    await ledger.record("t", 1, 2, [delivery("i2")], [])
    assert await ledger.positions("t") == {0: 5, 1: 2}
    assert await ledger.positions("other") == {}
    assert [e.delivery.id for e in await ledger.entries()] == [
        "i1/ops/reminder-60", "i1/ops/request", "i2/ops/request",
    ]  # fmt: skip
    assert (await ledger.entries("i2"))[0].delivery.message == {"headline": "i2"}


async def test_a_closed_request_cancels_its_request_and_reminders_not_escalations(
    ledger: Ledger,
) -> None:
    await ledger.record("t", 0, 1, [delivery("i1"), delivery("i1", "reminder-60"),
                                    delivery("i1", "escalation")], [])  # fmt: skip
    await ledger.record("t", 0, 2, [], ["i1"])
    states = {e.delivery.kind: e.status for e in await ledger.entries("i1")}
    assert states == {"request": "cancelled", "reminder-60": "cancelled", "escalation": "pending"}


async def test_claims_lease_due_deliveries_to_one_owner(ledger: Ledger) -> None:
    await ledger.record("t", 0, 1, [delivery("a"), delivery("b", late_s=60)], [])
    mine = await ledger.claim("one", NOW, LEASE, 10)
    assert [e.delivery.id for e in mine] == ["a/ops/request"]
    assert mine[0].attempts == 1
    assert await ledger.claim("two", NOW, LEASE, 10) == []  # leased: nobody else gets it
    assert not await ledger.sent("a/ops/request", "two", NOW)
    assert await ledger.sent("a/ops/request", "one", NOW)
    assert not await ledger.sent("a/ops/request", "one", NOW)  # once
    later = await ledger.claim("two", NOW + timedelta(seconds=61), LEASE, 10)
    assert [e.delivery.id for e in later] == ["b/ops/request"]


async def test_a_lost_lease_goes_to_another_and_the_old_owner_cannot_mark_it(
    ledger: Ledger,
) -> None:
    await ledger.record("t", 0, 1, [delivery("a")], [])
    await ledger.claim("dead", NOW, LEASE, 10)
    taken = await ledger.claim("alive", NOW + LEASE + timedelta(seconds=1), LEASE, 10)
    assert [e.attempts for e in taken] == [2]
    assert not await ledger.sent("a/ops/request", "dead", NOW)
    assert await ledger.sent("a/ops/request", "alive", NOW)


async def test_retry_makes_it_due_again_or_failed_for_good(ledger: Ledger) -> None:
    await ledger.record("t", 0, 1, [delivery("a"), delivery("b")], [])
    await ledger.claim("one", NOW, LEASE, 10)
    await ledger.retry("a/ops/request", "one", NOW + timedelta(seconds=5), "down")
    await ledger.retry("b/ops/request", "one", NOW, "400", permanent=True)
    assert await ledger.claim("one", NOW + timedelta(seconds=4), LEASE, 10) == []
    again = await ledger.claim("one", NOW + timedelta(seconds=5), LEASE, 10)
    assert [(e.delivery.id, e.attempts, e.last_error) for e in again] == [
        ("a/ops/request", 2, "down")
    ]
    failed = {e.delivery.id: e.status for e in await ledger.entries()}
    assert failed["b/ops/request"] == "failed"
