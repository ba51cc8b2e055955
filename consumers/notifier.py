"""`countersign notify`: approvals go where people are (I/O: the topic, the ledger, the senders).

Two loops over one ledger (`consumers.notify_ledger`):
- intake: a member of the notifier group over the approvals topic; each batch of a partition
  is planned (`consumers.notify_plan`: which channels, which reminders, which requests
  closed) and recorded with the partition's next offset in one transaction. On assignment
  it starts each partition where the ledger says, so a restart or a rebalance re-reads only
  what was not recorded, and recording it again adds nothing.
- sending: due deliveries are leased, sent, and marked sent; a failure that may pass (the
  receiver down, a timeout, a 5xx) is tried again later, backing off (`backoff_s` doubling up
  to `max_backoff_s`), until it goes through; one that cannot (a 4xx, an unknown channel) is
  marked failed and logged. A reminder for a request no longer open is not sent.
A record that is not a notice is skipped and counted: the topic is shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from consumers.notify_channels import Senders, SendFailed
from consumers.notify_ledger import Entry, Ledger
from consumers.notify_plan import Channel, Delivery, Routing, plan
from engine.log.port import EventLog, GroupMember, Record, Topics
from events.codec import Codec
from events.errors import DecodeError

log = structlog.get_logger(__name__)

IsOpen = Callable[[str, str], Awaitable[bool]]
"""(run_id, interrupt_id) → whether the request is still open (the projections know)."""


class Sender:
    """What sends one delivery to one channel (`Senders` is the real one)."""

    async def send(self, channel: Channel, delivery: Delivery) -> None:  # pragma: no cover
        raise NotImplementedError


@dataclass(kw_only=True)
class NotifierSettings:
    base_url: str
    group: str = "countersign.notifier"
    lease: timedelta = timedelta(seconds=60)
    batch: int = 100
    idle_s: float = 0.5
    backoff_s: float = 1.0
    max_backoff_s: float = 300.0
    owner: str = field(default_factory=lambda: f"notifier-{uuid.uuid4().hex[:8]}")


@dataclass
class Counts:
    read: int = 0
    skipped: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0


class Notifier:
    def __init__(
        self,
        event_log: EventLog,
        topics: Topics,
        codec: Codec,
        ledger: Ledger,
        routing: Routing,
        sender: Senders | Sender,
        settings: NotifierSettings,
        *,
        is_open: IsOpen | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._log = event_log
        self._topic = topics.approvals
        self._codec = codec
        self._ledger = ledger
        self._routing = routing
        self._sender = sender
        self._settings = settings
        self._is_open = is_open
        self._clock = clock
        self.counts = Counts()

    async def run(self, stop: asyncio.Event) -> None:
        member = self._log.member(self._settings.group, self._topic, self)
        try:  # joining is inside: a notifier stopped while it joins still leaves the group
            await member.start()
            log.info(
                "notifier_serving",
                topic=self._topic,
                group=self._settings.group,
                channels=sorted(self._routing.channels),
                owner=self._settings.owner,
            )
            async with asyncio.TaskGroup() as group:
                group.create_task(self._intake(member, stop))
                group.create_task(self._sending(stop))
        finally:
            await member.stop()

    # -- the group listener ----------------------------------------------------------------

    async def on_assigned(self, partitions: frozenset[int]) -> Mapping[int, int]:
        stored = await self._ledger.positions(self._topic)
        log.info("notifier_partitions_assigned", partitions=sorted(partitions))
        return {p: stored.get(p, 0) for p in partitions}

    async def on_revoked(self, partitions: frozenset[int]) -> None:
        log.info("notifier_partitions_revoked", partitions=sorted(partitions))

    # -- intake ----------------------------------------------------------------------------

    async def _intake(self, member: GroupMember, stop: asyncio.Event) -> None:
        while not stop.is_set():
            records = await member.poll(0.5, max_records=500)
            by_partition: dict[int, list[Record]] = {}
            for record in records:
                by_partition.setdefault(record.partition, []).append(record)
            for partition, batch in by_partition.items():
                await self._record(partition, batch)

    async def _record(self, partition: int, batch: Sequence[Record]) -> None:
        deliveries: list[Delivery] = []
        closes: list[str] = []
        for record in batch:
            try:
                notice = self._codec.decode_notice(record.value)
            except DecodeError as error:
                self.counts.skipped += 1
                log.debug("notice_skipped", partition=partition, offset=record.offset,
                          reason=str(error)[:200])  # fmt: skip
                continue
            planned = plan(notice, self._routing, base_url=self._settings.base_url)
            deliveries.extend(planned.deliveries)
            closes.extend(planned.closes)
        self.counts.read += len(batch)
        next_offset = batch[-1].offset + 1
        await self._ledger.record(self._topic, partition, next_offset, deliveries, closes)

    # -- sending ---------------------------------------------------------------------------

    async def _sending(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            claimed = await self._ledger.claim(
                self._settings.owner, self._clock(), self._settings.lease, self._settings.batch
            )
            if claimed:
                await asyncio.gather(*(self._deliver(entry) for entry in claimed))
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._settings.idle_s)

    async def _deliver(self, entry: Entry) -> None:
        delivery, owner = entry.delivery, self._settings.owner
        bound = log.bind(delivery=delivery.id, run_id=delivery.run_id,
                         interrupt_id=delivery.interrupt_id, attempt=entry.attempts)  # fmt: skip
        channel = self._routing.channels.get(delivery.channel)
        if channel is None:
            await self._ledger.retry(delivery.id, owner, self._clock(), "no such channel now",
                                     permanent=True)  # fmt: skip
            self.counts.failed += 1
            bound.error("notification_failed", reason="the channel is no longer configured")
            return
        if delivery.kind.startswith("reminder-") and not await self._still_open(delivery):
            await self._ledger.retry(delivery.id, owner, self._clock(), "closed", permanent=True)
            return
        try:
            await self._sender.send(channel, delivery)
        except SendFailed as failure:
            await self._failed(entry, failure, bound)
            return
        await self._ledger.sent(delivery.id, owner, self._clock())
        self.counts.sent += 1
        bound.info("notification_sent", channel=channel.name, kind=delivery.kind)

    async def _failed(self, entry: Entry, failure: SendFailed, bound: object) -> None:
        delivery = entry.delivery
        wait = min(
            self._settings.backoff_s * 2 ** (entry.attempts - 1), self._settings.max_backoff_s
        )
        again = self._clock() + timedelta(seconds=wait)
        await self._ledger.retry(delivery.id, self._settings.owner, again, str(failure),
                                 permanent=not failure.retry)  # fmt: skip
        if failure.retry:
            self.counts.retried += 1
            log.warning(
                "notification_retry", delivery=delivery.id, channel=delivery.channel,
                reason=str(failure), in_s=round(wait, 2), attempt=entry.attempts,
            )  # fmt: skip
        else:
            self.counts.failed += 1
            log.error("notification_failed", delivery=delivery.id, channel=delivery.channel,
                      reason=str(failure))  # fmt: skip

    async def _still_open(self, delivery: Delivery) -> bool:
        if self._is_open is None:
            return True
        return await self._is_open(delivery.run_id, delivery.interrupt_id)
