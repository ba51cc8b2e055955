"""The notifier's ledger: what was read, what is due, what was sent (the port and its twin).

A ledger keeps, in one place that survives restarts:
- where the notifier got to in each approvals partition, written in the same transaction as
  the deliveries those notices called for (`record`), so a restart or a rebalance re-reads
  at most what was not recorded, and re-recording a delivery changes nothing (its id is its
  primary key): each (request, channel, kind) exists once;
- each delivery's state: `pending` (due at `due_at`), leased by the sender that `claim`ed
  it until `lease_until` (a sender that died loses its lease and another takes over),
  then `sent`, `cancelled` (its request closed first), or `failed` (refused for good).
`MemoryLedger` is the in-memory twin; `consumers.notify_store.PostgresLedger` keeps it in
PostgreSQL. Both pass `tests/contracts/test_notify_ledger_contract.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal, Protocol, TypeAlias

from consumers.notify_plan import Delivery

Status: TypeAlias = Literal["pending", "sent", "cancelled", "failed"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Entry:
    delivery: Delivery
    status: Status = "pending"
    attempts: int = 0
    lease_until: datetime | None = None
    owner: str = ""
    last_error: str = ""
    sent_at: datetime | None = None


class Ledger(Protocol):
    async def positions(self, topic: str) -> dict[int, int]: ...

    async def record(
        self,
        topic: str,
        partition: int,
        next_offset: int,
        deliveries: Sequence[Delivery],
        closes: Sequence[str],
    ) -> None:
        """Keep these deliveries (those already kept are left as they are), cancel the
        pending `request`/`reminder-*` deliveries of the closed interrupts, and move the
        partition's position to `next_offset`: all at once, or nothing."""
        ...

    async def claim(self, owner: str, now: datetime, lease: timedelta, limit: int) -> list[Entry]:
        """Due pending deliveries no one holds, now leased to `owner` (attempts counted)."""
        ...

    async def sent(self, delivery_id: str, owner: str, at: datetime) -> bool:
        """Mark it sent, if `owner` still holds it (False: its lease was lost)."""
        ...

    async def retry(
        self, delivery_id: str, owner: str, at: datetime, error: str, *, permanent: bool = False
    ) -> None:
        """Give it back, due again at `at` (or `failed` for good)."""
        ...

    async def entries(self, interrupt_id: str | None = None) -> list[Entry]: ...


class MemoryLedger:
    def __init__(self) -> None:
        self._positions: dict[tuple[str, int], int] = {}
        self._entries: dict[str, Entry] = {}

    async def positions(self, topic: str) -> dict[int, int]:
        return {p: o for (t, p), o in self._positions.items() if t == topic}

    async def record(
        self,
        topic: str,
        partition: int,
        next_offset: int,
        deliveries: Sequence[Delivery],
        closes: Sequence[str],
    ) -> None:
        for delivery in deliveries:
            self._entries.setdefault(delivery.id, Entry(delivery=delivery))
        for interrupt_id in set(closes):
            for key, entry in self._entries.items():
                if entry.delivery.interrupt_id == interrupt_id and cancellable(entry):
                    self._entries[key] = replace(entry, status="cancelled")
        self._positions[(topic, partition)] = next_offset

    async def claim(self, owner: str, now: datetime, lease: timedelta, limit: int) -> list[Entry]:
        due = sorted(
            (e for e in self._entries.values() if claimable(e, now)),
            key=lambda e: (e.delivery.due_at, e.delivery.id),
        )[:limit]
        claimed = []
        for entry in due:
            taken = replace(
                entry, lease_until=now + lease, owner=owner, attempts=entry.attempts + 1
            )
            self._entries[entry.delivery.id] = taken
            claimed.append(taken)
        return claimed

    async def sent(self, delivery_id: str, owner: str, at: datetime) -> bool:
        entry = self._entries.get(delivery_id)
        if entry is None or entry.owner != owner or entry.status != "pending":
            return False
        self._entries[delivery_id] = replace(entry, status="sent", sent_at=at, lease_until=None)
        return True

    async def retry(
        self, delivery_id: str, owner: str, at: datetime, error: str, *, permanent: bool = False
    ) -> None:
        entry = self._entries.get(delivery_id)
        if entry is None or entry.owner != owner or entry.status != "pending":
            return
        moved = replace(entry.delivery, due_at=at)
        status: Status = "failed" if permanent else "pending"
        self._entries[delivery_id] = replace(
            entry, delivery=moved, status=status, lease_until=None, last_error=error[:500]
        )

    async def entries(self, interrupt_id: str | None = None) -> list[Entry]:
        found = [
            e
            for e in self._entries.values()
            if interrupt_id is None or e.delivery.interrupt_id == interrupt_id
        ]
        return sorted(found, key=lambda e: e.delivery.id)


def cancellable(entry: Entry) -> bool:
    kind = entry.delivery.kind
    return entry.status == "pending" and (kind == "request" or kind.startswith("reminder-"))


def claimable(entry: Entry, now: datetime) -> bool:
    return (
        entry.status == "pending"
        and entry.delivery.due_at <= now
        and (entry.lease_until is None or entry.lease_until <= now)
    )
