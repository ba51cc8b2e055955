"""One request card for the page and the API: the reviewer's card and the run (I/O: reads).

The reviewer's card (`projections.card.ReviewCard`, what `countersign inbox show` prints) has
the row (status, votes, outcome), the request as raised (full arguments, digest, context,
the argument and answer schemas the forms are made from), what changed since the previous
proposal of the same call, and what the deadline does. The web adds the inbox item (SLA
state, age, who may decide) and the run's row, which says what became of the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from events.approval import ApprovalRequest
from events.json import JsonObject
from projections.card import ReviewCard
from projections.inbox import InboxItem
from projections.queries import Queries
from projections.rows import InterruptRow, RunRow


@dataclass(frozen=True, kw_only=True, slots=True)
class Card:
    review: ReviewCard
    item: InboxItem
    run: RunRow | None

    @property
    def row(self) -> InterruptRow:
        return self.review.row

    @property
    def request(self) -> ApprovalRequest:
        return self.review.request

    @property
    def seconds_left(self) -> float | None:
        return self.review.seconds_left

    def may_decide(self, principal: str, roles: tuple[str, ...]) -> bool:
        return self.row.status == "open" and self.row.may_decide(principal, roles)

    def to_json(self) -> JsonObject:
        return {
            **self.item.to_json(),
            **self.review.to_json(),
            "run": None if self.run is None else self.run.to_json(),
            "digest": self.request.digest,
        }


async def read_card(
    queries: Queries, run_id: str, interrupt_id: str, *, now: datetime, due_soon: timedelta
) -> Card | None:
    """The card, or None when no such request of that run is projected (yet)."""
    review = await queries.card(interrupt_id, now)
    if review is None or review.row.run_id != run_id:
        return None
    item = InboxItem.of(review.row, now, due_soon)
    return Card(review=review, item=item, run=await queries.get_run(run_id))
