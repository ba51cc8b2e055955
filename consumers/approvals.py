"""The approvals feed: the approvals topic read as typed notices, for anyone who follows it.

    feed = ApprovalsFeed(event_log, topics, codec)
    request = await feed.first_request(run_id, timeout_s=30)   # ApprovalRequested
    async for item in feed.notices(partition, start, follow=True):
        item.notice  # ApprovalRequested | DecisionOutcome | ActionNotified

Workers write three kinds of notice there, keyed by run id: `ApprovalRequested` (an interrupt
is open), `DecisionOutcome` (what became of a decision) and `ActionNotified` (a tool ran
under a NOTIFY policy). A record that does not decode as a notice is skipped and counted:
the topic is shared, and one reader must not stop on what another system wrote there.
The feed only reads; it is used by the command publisher (outcomes), the demo and the CLI.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

from engine.log.port import EventLog, Topics, partition_for
from events.codec import Codec
from events.errors import DecodeError
from events.notices import ApprovalRequested, DecisionOutcome, Notice

__all__ = ["ApprovalsFeed", "FeedItem", "FeedTimeout"]

log = structlog.get_logger(__name__)

N = TypeVar("N", bound=Notice)


class FeedTimeout(TimeoutError):
    """The notice waited for did not arrive in time (is a worker running for this prefix?)."""


@dataclass(frozen=True, slots=True)
class FeedItem:
    """A notice and where it was read."""

    partition: int
    offset: int
    notice: Notice


class ApprovalsFeed:
    def __init__(self, event_log: EventLog, topics: Topics, codec: Codec) -> None:
        self._log = event_log
        self._topic = topics.approvals
        self._codec = codec
        self.skipped = 0
        """Records read that were not notices (written by someone else, or damaged)."""

    async def partition_of(self, run_id: str) -> int:
        """The partition that holds every notice of `run_id` (key = run id)."""
        return partition_for(run_id, await self._log.partition_count(self._topic))

    async def position(self, run_id: str) -> tuple[int, int]:
        """Where the next notice of `run_id` will be written: take it before publishing a
        command, then wait from there, so an answer cannot slip past unseen."""
        partition = await self.partition_of(run_id)
        return partition, await self._log.end_offset(self._topic, partition)

    async def notices(
        self, partition: int, start: int = 0, *, follow: bool = False
    ) -> AsyncIterator[FeedItem]:
        """The notices of one partition from `start`, in order; with `follow`, forever."""
        stream = self._log.read(self._topic, partition, start, follow=follow)
        try:
            async for record in stream:
                try:
                    notice = self._codec.decode_notice(record.value)
                except DecodeError as error:
                    self.skipped += 1
                    log.debug("notice_skipped", partition=partition, offset=record.offset,
                              reason=str(error)[:200])  # fmt: skip
                    continue
                yield FeedItem(record.partition, record.offset, notice)
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:  # stop a following reader now, not at garbage collection
                await close()

    async def of_run(
        self, run_id: str, start: int = 0, *, follow: bool = False
    ) -> AsyncIterator[FeedItem]:
        """The notices of one run (read from its partition)."""
        async for item in self.notices(await self.partition_of(run_id), start, follow=follow):
            if item.notice.run_id == run_id:
                yield item

    async def wait_for(
        self,
        kind: type[N],
        matches: Callable[[N], bool],
        position: tuple[int, int],
        timeout_s: float,
    ) -> N:
        """The first notice of type `kind` from `position` (partition, offset) that `matches`."""

        async def scan() -> N:
            partition, start = position
            async for item in self.notices(partition, start, follow=True):
                if isinstance(item.notice, kind) and matches(item.notice):
                    return item.notice
            raise FeedTimeout("the approvals topic ended")  # pragma: no cover - follow never ends

        try:
            return await asyncio.wait_for(scan(), timeout_s)
        except TimeoutError as exc:
            raise FeedTimeout(
                f"no {kind.__name__} within {timeout_s:g}s "
                "(is a worker running for this topic prefix?)"
            ) from exc

    async def first_request(self, run_id: str, timeout_s: float = 30.0) -> ApprovalRequested:
        """The run's first approval request, read from the start of its partition."""
        return await self.wait_for(
            ApprovalRequested,
            lambda notice: notice.run_id == run_id,
            (await self.partition_of(run_id), 0),
            timeout_s,
        )

    async def outcome(
        self,
        decision_id: str,
        position: tuple[int, int],
        timeout_s: float = 30.0,
        *,
        accept_held: bool = False,
    ) -> DecisionOutcome:
        """The outcome of `decision_id`: accepted, refused, or counted (one vote of a quorum).
        A decision held for an interrupt not raised yet is waited out unless `accept_held`."""
        return await self.wait_for(
            DecisionOutcome,
            lambda notice: (
                notice.decision_id == decision_id and (accept_held or notice.status != "held")
            ),
            position,
            timeout_s,
        )
