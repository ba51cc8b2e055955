"""What the open pages hear, and what a waiting decision learns (I/O: follows the topic).

One task per approvals partition follows the topic from where it ended when the server
started. Each notice goes to:
- the decisions waiting for their outcome (`expect`, registered before publishing, so an
  outcome cannot slip past), and a bounded memory of recent outcomes for late askers;
- the pages (`subscribe`), once the projections show it: a page reloads what changed from the
  projections, so telling it before the row is there would show it nothing new. A watch
  polls the projections for pending changes (a new request, a closed one, a run that goes on
  after a decision) and tells the pages when they appear, or after `settle_s` anyway.
A slow page's queue is bounded: when it is full the page gets a `resync` (reload everything)
instead of the events it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import structlog

from consumers.approvals import ApprovalsFeed
from engine.log.port import EventLog
from events.json import JsonObject
from events.notices import ApprovalRequested, DecisionOutcome
from projections.errors import ProjectionsError
from projections.queries import Queries
from projections.rows import FINISHED_STATUSES

log = structlog.get_logger(__name__)

MAX_RECENT = 10_000
MAX_PENDING = 5_000
QUEUE_SIZE = 200
MAX_STREAMS = 1_000
"""Open event streams one server keeps (each holds a connection and a queue)."""
RUNS_PER_CHECK = 50
"""How many runs one look at the projections covers (two queries each)."""


@dataclass(frozen=True, slots=True)
class Change:
    """What a page hears: `kind` raised | decided | counted | refused | run | resync."""

    kind: str
    run_id: str = ""
    interrupt_id: str = ""
    status: str = ""

    def to_sse(self) -> str:
        data = {"kind": self.kind, "run_id": self.run_id, "interrupt_id": self.interrupt_id,
                "status": self.status}  # fmt: skip
        return f"event: inbox\ndata: {json.dumps(data)}\n\n"


@dataclass(slots=True)
class _Pending:
    change: Change
    until: float
    want_open: bool | None = None
    """True: until the request is projected; False: until it is closed; None: a run watch."""
    run_status: str = ""


@dataclass
class LiveFeed:
    feed: ApprovalsFeed
    log: EventLog
    topic: str
    queries: Queries
    settle_s: float = 15.0
    max_streams: int = MAX_STREAMS
    run_watch_s: float = 120.0
    poll_s: float = 0.2
    _waiting: dict[str, list[asyncio.Future[DecisionOutcome]]] = field(default_factory=dict)
    _recent: OrderedDict[str, DecisionOutcome] = field(default_factory=OrderedDict)
    _pages: set[asyncio.Queue[Change]] = field(default_factory=set)
    _pending: dict[tuple[str, str], _Pending] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the server stops: open event streams end."""

    async def run(self, stop: asyncio.Event) -> None:
        count = await self.log.partition_count(self.topic)
        starts = [await self.log.end_offset(self.topic, p) for p in range(count)]
        self.ready.set()
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._follow(p, starts[p])) for p in range(count)]
            tasks.append(group.create_task(self._watch()))
            await stop.wait()
            self.closing.set()
            self._tell(Change("bye"))  # open event streams end now, not at their next beat
            for task in tasks:
                task.cancel()

    # -- decisions waiting for their outcome ----------------------------------------------

    def expect(self, decision_id: str) -> asyncio.Future[DecisionOutcome]:
        """A future for the outcome of `decision_id` (done at once if it is known already)."""
        future: asyncio.Future[DecisionOutcome] = asyncio.get_running_loop().create_future()
        known = self._recent.get(decision_id)
        if known is not None:
            future.set_result(known)
        else:
            self._waiting.setdefault(decision_id, []).append(future)
        return future

    def forget(self, decision_id: str, future: asyncio.Future[DecisionOutcome]) -> None:
        waiting = self._waiting.get(decision_id, [])
        if future in waiting:
            waiting.remove(future)
        if not waiting:
            self._waiting.pop(decision_id, None)

    def recent(self, decision_id: str) -> DecisionOutcome | None:
        return self._recent.get(decision_id)

    # -- pages -----------------------------------------------------------------------------

    def has_room(self) -> bool:
        """Whether another page may open an event stream now."""
        return len(self._pages) < self.max_streams

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Change]]:
        queue: asyncio.Queue[Change] = asyncio.Queue(QUEUE_SIZE)
        self._pages.add(queue)
        try:
            yield queue
        finally:
            self._pages.discard(queue)

    def _tell(self, change: Change) -> None:
        for queue in list(self._pages):
            if queue.full():
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(Change("resync"))
            else:
                queue.put_nowait(change)

    # -- the topic -------------------------------------------------------------------------

    async def _follow(self, partition: int, start: int) -> None:
        async for item in self.feed.notices(partition, start, follow=True):
            notice = item.notice
            if isinstance(notice, DecisionOutcome):
                self._outcome(notice)
            elif isinstance(notice, ApprovalRequested):
                change = Change("raised", notice.run_id, notice.interrupt_id, "open")
                self._pend(change, want_open=True)

    def _outcome(self, outcome: DecisionOutcome) -> None:
        self._recent[outcome.decision_id] = outcome
        while len(self._recent) > MAX_RECENT:
            self._recent.popitem(last=False)
        for future in self._waiting.pop(outcome.decision_id, []):
            if not future.done():
                future.set_result(outcome)
        status = outcome.status or ("accepted" if outcome.accepted else "refused")
        if status == "accepted":
            change = Change("decided", outcome.run_id, outcome.interrupt_id, outcome.kind)
            self._pend(change, want_open=False)
            self._pend(Change("run", outcome.run_id), want_open=None)
        elif status == "counted":
            self._pend(Change("counted", outcome.run_id, outcome.interrupt_id), want_open=None)
        else:
            self._tell(Change("refused", outcome.run_id, outcome.interrupt_id, status))

    def _pend(self, change: Change, *, want_open: bool | None) -> None:
        if len(self._pending) >= MAX_PENDING:
            self._tell(Change("resync"))
            return
        settle = self.run_watch_s if change.kind == "run" else self.settle_s
        key = (change.kind, change.interrupt_id or change.run_id)
        self._pending[key] = _Pending(change, time.monotonic() + settle, want_open)

    # -- the projections -------------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            if self._pending:
                try:
                    await self._check_pending()
                except ProjectionsError as error:  # the database away: pages resync
                    log.warning("live_watch_failed", error=str(error)[:300])
                    self._pending.clear()
                    self._tell(Change("resync"))

    async def _check_pending(self) -> None:
        now = time.monotonic()
        by_run: dict[str, list[tuple[tuple[str, str], _Pending]]] = {}
        for key, pending in list(self._pending.items()):
            if len(by_run) >= RUNS_PER_CHECK and pending.change.run_id not in by_run:
                continue  # a burst: the rest wait for the next look (oldest first)
            by_run.setdefault(pending.change.run_id, []).append((key, pending))
        for run_id, entries in by_run.items():
            rows = {r.interrupt_id: r for r in await self.queries.interrupts(run_id)}
            run = await self.queries.get_run(run_id)
            for key, pending in entries:
                change = pending.change
                if pending.want_open is None and change.kind == "run":
                    status = run.status if run is not None else ""
                    if status and status != pending.run_status:
                        pending.run_status = status
                        self._tell(Change("run", run_id, "", status))
                    if status in FINISHED_STATUSES or now >= pending.until:
                        del self._pending[key]
                    continue
                row = rows.get(change.interrupt_id)
                shown = row is not None and (
                    pending.want_open is None or (row.status == "open") == pending.want_open
                )
                if shown or now >= pending.until:
                    del self._pending[key]
                    shown_status = row.status if row is not None else change.status
                    self._tell(Change(change.kind, run_id, change.interrupt_id, shown_status))


def outcome_json(outcome: DecisionOutcome) -> JsonObject:
    return {
        "decision_id": outcome.decision_id,
        "run_id": outcome.run_id,
        "interrupt_id": outcome.interrupt_id,
        "status": outcome.status or ("accepted" if outcome.accepted else "refused"),
        "accepted": outcome.accepted,
        "kind": outcome.kind,
        "decided_by": outcome.decided_by,
        "reason": outcome.reason,
        "decided_at_us": outcome.decided_at_us,
    }
