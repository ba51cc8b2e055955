"""Which inbox a person asks for: filters, order, one page, and the SLA counts beside it. Pure.

    query = InboxQuery(sla="overdue", tool="refund", principal="alice", roles=("support-lead",))
    page = await Insights(store).inbox_page(query)    # page.items, page.counts, page.total

Open requests come soonest deadline first (those without a deadline last), closed ones
latest first. An SLA filter is a deadline window computed here, from one "now", so the list
and its counts agree: `due_soon` is a deadline in (now, now + due-soon], `overdue` one at or
before now, `on_time` one after the window, `no_deadline` none at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, TypeAlias

from events.json import JsonObject
from projections.inbox import InboxItem, SlaState
from projections.queries import MAX_LIMIT

InboxStatus: TypeAlias = Literal["open", "closed"]
INBOX_STATUSES: tuple[InboxStatus, ...] = ("open", "closed")
OPEN_SLA: tuple[SlaState, ...] = ("overdue", "due_soon", "on_time", "no_deadline")
MAX_NAME_CHARS = 200
"""A tool or agent name to filter by; longer is refused rather than sent to the database."""


@dataclass(frozen=True, kw_only=True, slots=True)
class InboxQuery:
    """`principal` (with its `roles`) narrows to what it may decide now; None: everything."""

    status: InboxStatus = "open"
    sla: SlaState | None = None
    tool: str | None = None
    agent: str | None = None
    principal: str | None = None
    roles: tuple[str, ...] = ()
    limit: int = 100
    offset: int = 0

    def checked(self) -> InboxQuery:
        """This query, or `ValueError` saying what is wrong with it."""
        if self.status not in INBOX_STATUSES:
            raise ValueError(f"status must be one of {', '.join(INBOX_STATUSES)}")
        if self.sla is not None and self.sla not in OPEN_SLA:
            raise ValueError(f"sla must be one of {', '.join(OPEN_SLA)}")
        if self.sla is not None and self.status != "open":
            raise ValueError("an SLA filter applies to open requests only")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, not {self.limit}")
        if not 0 <= self.offset <= 1_000_000:
            raise ValueError("offset must be between 0 and 1000000")
        for name, value in (("tool", self.tool), ("agent", self.agent)):
            if value is not None and (len(value) > MAX_NAME_CHARS or "\x00" in value):
                raise ValueError(f"{name} must be a name of at most {MAX_NAME_CHARS} characters")
        if self.roles and self.principal is None:
            raise ValueError("roles narrow down a principal: give the principal too")
        return self


@dataclass(frozen=True, slots=True)
class DeadlineWindow:
    """What an SLA filter asks of the deadline: after `after`, at or before `until`, or none."""

    after: datetime | None = None
    until: datetime | None = None
    none: bool = False


def deadline_window(sla: SlaState | None, now: datetime, due_soon: timedelta) -> DeadlineWindow:
    match sla:
        case "overdue":
            return DeadlineWindow(until=now)
        case "due_soon":
            return DeadlineWindow(after=now, until=now + due_soon)
        case "on_time":
            return DeadlineWindow(after=now + due_soon)
        case "no_deadline":
            return DeadlineWindow(none=True)
        case _:
            return DeadlineWindow()


@dataclass(frozen=True, kw_only=True, slots=True)
class InboxPage:
    """One page of the inbox; `counts` are of every open request matching the filters but
    the SLA one (so a person sees how many are overdue while looking at another list)."""

    items: list[InboxItem]
    counts: dict[SlaState, int]
    total: int
    """How many match every filter (the pages together)."""
    query: InboxQuery
    now: datetime

    def to_json(self) -> JsonObject:
        q = self.query
        return {
            "items": [item.to_json() for item in self.items],
            "total": self.total,
            "counts": {state: self.counts.get(state, 0) for state in OPEN_SLA},
            "limit": q.limit,
            "offset": q.offset,
            "now": self.now.isoformat(),
        }
