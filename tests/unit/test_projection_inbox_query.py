"""Which inbox a person asks for: bounds refused with the reason, SLA filters as deadline
windows from one "now" (so the list and its counts agree)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from projections.inbox_query import DeadlineWindow, InboxQuery, deadline_window

NOW = datetime(2030, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("query", "why"),
    [
        (InboxQuery(limit=0), "limit"),
        (InboxQuery(limit=10_001), "limit"),
        (InboxQuery(offset=-1), "offset"),
        (InboxQuery(status="maybe"), "status"),  # type: ignore[arg-type]
        (InboxQuery(sla="late"), "sla"),  # type: ignore[arg-type]
        (InboxQuery(status="closed", sla="overdue"), "open requests only"),
        (InboxQuery(tool="t" * 201), "tool"),
        (InboxQuery(agent="a\x00b"), "agent"),
        (InboxQuery(roles=("support",)), "give the principal"),
    ],
)
def test_queries_out_of_bounds_are_refused(query: InboxQuery, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        query.checked()


def test_sla_filters_are_deadline_windows() -> None:
    assert deadline_window("overdue", NOW, HOUR) == DeadlineWindow(until=NOW)
    assert deadline_window("due_soon", NOW, HOUR) == DeadlineWindow(after=NOW, until=NOW + HOUR)
    assert deadline_window("on_time", NOW, HOUR) == DeadlineWindow(after=NOW + HOUR)
    assert deadline_window("no_deadline", NOW, HOUR) == DeadlineWindow(none=True)
    assert deadline_window(None, NOW, HOUR) == DeadlineWindow()
    assert InboxQuery(principal="alice", roles=("support",)).checked().limit == 100
