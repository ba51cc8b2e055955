"""What the API and the page ask of Countersign, in one place (I/O: the store and the log).

Reads go to the projections (`projections.queries`, `projections.insights`); a decision is
checked against the card (`countersign.web.decisions`), published by the signing publisher
with the caller's principal, and its outcome awaited through the live feed.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from countersign.web.cards import Card, read_card
from countersign.web.decisions import DecisionDraft, decision_id_for, read_decision
from countersign.web.live import LiveFeed
from countersign.web.signing import SignedPublisher
from engine.log.port import EventLog
from events.codec import Codec
from events.commands import SubmitDecision
from events.json import Json
from events.notices import DecisionOutcome
from projections.inbox_query import InboxPage, InboxQuery
from projections.insights import Insights
from projections.queries import Queries
from projections.rows import AuditRow, TimelineEntry
from projections.verify import RunVerdict, VerifySource, verify

MAX_KEYS = 50_000


class NotFound(LookupError):
    """No such request (or run) is projected."""


class RequestClosed(Exception):
    """The request is decided, expired or withdrawn already: nothing was sent."""


class NotAllowed(Exception):
    """The caller may not decide this request (the reason says who may): nothing was sent."""


class KeyReused(ValueError):
    """An Idempotency-Key sent again with another body."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Sent:
    decision_id: str
    run_id: str
    interrupt_id: str
    outcome: DecisionOutcome | None
    """None: not known within the wait (ask again later)."""


class InboxService:
    def __init__(
        self,
        *,
        queries: Queries,
        insights: Insights,
        verify_source: VerifySource,
        event_log: EventLog,
        runs_topic: str,
        codec: Codec,
        publisher: SignedPublisher,
        live: LiveFeed,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.queries = queries
        self.insights = insights
        self._verify_source = verify_source
        self._log = event_log
        self._runs_topic = runs_topic
        self._codec = codec
        self.publisher = publisher
        self.live = live
        self._clock = clock or (lambda: datetime.now(UTC))
        self._keys: OrderedDict[str, str] = OrderedDict()
        """decision id → its body's fingerprint, and whether this server has published it."""
        self._published: set[str] = set()

    async def page(self, query: InboxQuery) -> InboxPage:
        return await self.insights.inbox_page(query)

    async def card(self, run_id: str, interrupt_id: str) -> Card:
        found = await read_card(
            self.queries, run_id, interrupt_id, now=self._clock(), due_soon=self.insights.due_soon
        )
        if found is None:
            raise NotFound(f"no request {interrupt_id} of run {run_id} is projected")
        return found

    async def decide(
        self,
        *,
        principal: str,
        roles: tuple[str, ...],
        run_id: str,
        interrupt_id: str,
        body: Json,
        idempotency_key: str,
        wait_s: float,
    ) -> Sent:
        """Check, publish as `principal`, and wait up to `wait_s` for the outcome."""
        card = await self.card(run_id, interrupt_id)
        if card.row.status == "open" and not card.row.may_decide(principal, roles):
            raise NotAllowed(
                f"{principal} may not decide this request; {', '.join(card.item.deciders)} may"
            )
        draft = read_decision(body, request=card.request, allowed=card.row.allowed)
        decision_id = decision_id_for(principal, interrupt_id, idempotency_key)
        self._remember(decision_id, draft)
        if card.row.status != "open" and self.live.recent(decision_id) is None:
            known = await self._audited(run_id, decision_id)
            if known is None:
                raise RequestClosed(_closed(card))
        future = self.live.expect(decision_id)
        try:
            if not future.done():
                await self._send_once(
                    _command(draft, decision_id, principal, run_id, interrupt_id), roles
                )
            outcome = await _within(future, wait_s)
        finally:
            self.live.forget(decision_id, future)
        return Sent(decision_id=decision_id, run_id=run_id, interrupt_id=interrupt_id,
                    outcome=outcome)  # fmt: skip

    async def outcome(self, run_id: str, decision_id: str, wait_s: float) -> DecisionOutcome | None:
        """The outcome of a decision: heard by this server, else waited for `wait_s`."""
        future = self.live.expect(decision_id)
        try:
            if future.done():
                return future.result()
            audited = await self._audited(run_id, decision_id)
            if audited is not None:
                return audited
            return await _within(future, wait_s)
        finally:
            self.live.forget(decision_id, future)

    async def timeline(self, run_id: str) -> list[TimelineEntry]:
        return await self.queries.run_timeline(run_id)

    async def audit(self, run_id: str) -> list[AuditRow]:
        return await self.queries.audit(run_id=run_id, limit=1_000)

    async def verify(self, run_id: str) -> RunVerdict:
        verdicts = await verify(self._log, self._runs_topic, self._verify_source, self._codec,
                                [run_id])  # fmt: skip
        return verdicts[0]

    async def _send_once(self, command: SubmitDecision, roles: tuple[str, ...]) -> None:
        """Publish, unless this server published this decision already: a retry with the
        same key, even a concurrent one, waits for the first one's outcome."""
        if command.decision_id in self._published:
            return
        self._published.add(command.decision_id)
        try:
            await self.publisher.publish(command, roles)
        except BaseException:
            self._published.discard(command.decision_id)  # not sent: a retry sends it
            raise

    def _remember(self, decision_id: str, draft: DecisionDraft) -> None:
        fingerprint = draft.fingerprint()
        known = self._keys.get(decision_id)
        if known is not None and known != fingerprint:
            raise KeyReused("this Idempotency-Key was used for another decision: use a new key")
        self._keys[decision_id] = fingerprint
        self._keys.move_to_end(decision_id)
        while len(self._keys) > MAX_KEYS:
            forgotten, _ = self._keys.popitem(last=False)
            self._published.discard(forgotten)

    async def _audited(self, run_id: str, decision_id: str) -> DecisionOutcome | None:
        """A decision's outcome as the audit recorded it (for one asked about later)."""
        for row in await self.queries.audit(run_id=run_id, limit=10_000):
            if row.decision_id == decision_id and row.action in _DECIDED:
                status = _DECIDED[row.action]
                return DecisionOutcome(
                    run_id=run_id,
                    interrupt_id=row.interrupt_id or "",
                    decision_id=decision_id,
                    accepted=status != "refused",
                    kind=row.kind or "",
                    decided_by=row.actor,
                    reason=row.reason or "",
                    decided_at_us=int(row.at.timestamp() * 1_000_000),
                    status=status,
                )
        return None


_DECIDED = {
    "decision_accepted": "accepted",
    "decision_refused": "refused",
    "vote_recorded": "counted",
}


def _closed(card: Card) -> str:
    row = card.row
    if row.status == "expired":
        return "this request expired: it can no longer be decided"
    who = f" by {row.decided_by}" if row.decided_by else ""
    return f"this request is already {row.status}{who}"


def _command(
    draft: DecisionDraft, decision_id: str, principal: str, run_id: str, interrupt_id: str
) -> SubmitDecision:
    return SubmitDecision(
        decision_id=decision_id,
        run_id=run_id,
        interrupt_id=interrupt_id,
        kind=draft.kind,
        decided_by=principal,
        issued_at_us=time.time_ns() // 1000,
        reason=draft.reason,
        edited_args=draft.args,
        response=draft.response,
        digest=draft.digest,
    )


async def _within(future: asyncio.Future[DecisionOutcome], wait_s: float) -> DecisionOutcome | None:
    if wait_s <= 0:
        return future.result() if future.done() else None
    try:
        return await asyncio.wait_for(asyncio.shield(future), wait_s)
    except TimeoutError:
        return None
