"""One request card: the inbox row, the request as raised, and its run (I/O: reads the store).

The row says where the request stands (status, votes, outcome); the request as raised (read
back from the events index, the exact `InterruptRaised`) adds what a person decides on: the
full arguments, their digest, the context, the argument and answer schemas the forms are
made from. The run row says what became of the run after the decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from events.approval import ApprovalRequest
from events.codec import Codec
from events.json import JsonObject
from events.run_events import InterruptRaised
from projections.describe import payload_json
from projections.inbox import InboxItem
from projections.queries import Queries
from projections.rows import InterruptRow, RunRow


@dataclass(frozen=True, kw_only=True, slots=True)
class Card:
    item: InboxItem
    request: ApprovalRequest
    run: RunRow | None
    now: datetime

    @property
    def row(self) -> InterruptRow:
        return self.item.request

    @property
    def seconds_left(self) -> float | None:
        if self.row.deadline is None or self.row.status != "open":
            return None
        return (self.row.deadline - self.now).total_seconds()

    def may_decide(self, principal: str, roles: tuple[str, ...]) -> bool:
        return self.row.status == "open" and self.row.may_decide(principal, roles)

    def to_json(self) -> JsonObject:
        return {
            **self.item.to_json(),
            "request": payload_json(self.request),
            "digest": self.request.digest,
            "seconds_left": self.seconds_left,
            "run": None if self.run is None else self.run.to_json(),
        }


async def read_card(
    queries: Queries,
    codec: Codec,
    run_id: str,
    interrupt_id: str,
    *,
    now: datetime,
    due_soon: timedelta,
) -> Card | None:
    """The card, or None when no such request of that run is projected (yet)."""
    row = next(
        (r for r in await queries.interrupts(run_id) if r.interrupt_id == interrupt_id), None
    )
    if row is None:
        return None
    events = await queries.events(run_id, row.seq)
    if not events or events[0].seq != row.seq:
        return None
    raised = codec.decode_event(events[0].raw).payload
    if not isinstance(raised, InterruptRaised) or raised.interrupt_id != interrupt_id:
        return None
    run = await queries.get_run(run_id)
    item = InboxItem.of(row, now, due_soon)
    return Card(item=item, request=raised.request, run=run, now=now)
