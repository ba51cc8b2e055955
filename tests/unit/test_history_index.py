"""`HistoryIndex.add`, which picks a tool call's schedule and completion by their exact class,
and `Replayer.feed`, which does the same inline, index every sequence of events as the
`match` over classes does (`_add_any`, which used to be all of `add`): the same records,
counts and events, for repeated events, completions before their schedule, other kinds at
the same position and subclasses of the two classes."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.executor import Replayer, Services
from engine.core.history import CallRecord, HistoryIndex
from events.json import digest
from events.run_events import (
    RunEventPayload,
    RunStarted,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallScheduled,
    ValueRecorded,
)
from examples import refund


class _Scheduled(ToolCallScheduled):
    pass


class _Completed(ToolCallCompleted):
    pass


def _pool() -> list[RunEventPayload]:
    events: list[RunEventPayload] = []
    for call in range(3):
        for made in (ToolCallScheduled, _Scheduled):
            for args_digest in ("", digest({"i": call})):
                events.append(
                    made(
                        call=call,
                        tool=f"t{call % 2}",
                        args={"i": call},
                        args_digest=args_digest,
                        idempotency_key="k",
                        idempotent=True,
                    )
                )
        events += [
            ToolCallCompleted(call=call, result=call),
            _Completed(call=call, result=call),
            ToolCallFailed(call=call, error_type="E", error="e"),
            ValueRecorded(call=call, kind="now", value=1),
        ]
    return events


POOL = _pool()


def _snapshot(index: HistoryIndex) -> object:
    def record(rec: CallRecord) -> tuple[Any, ...]:
        events = (rec.scheduled, rec.completed, rec.failed, rec.value, rec.model)
        lists = (rec.evaluations, rec.gates, rec.in_doubt, rec.questions)
        return (
            rec.kind,
            rec.name,
            rec.digest,
            rec.schedules,
            tuple(id(event) for event in events),
            tuple(tuple(id(event) for event in items) for items in lists),
        )

    return (
        index.max_position,
        [(call, record(rec)) for call, rec in index.calls.items()],
        index.outcomes,
        index.escalations,
    )


@settings(max_examples=1500)
@given(picks=st.lists(st.integers(0, len(POOL) - 1), max_size=24))
def test_every_sequence_is_indexed_as_the_match_indexes_it(picks: list[int]) -> None:
    events = [POOL[pick] for pick in picks]
    by_match, by_add = HistoryIndex(), HistoryIndex()
    for event in events:
        by_match._add_any(event)
        by_add.add(event)
    assert _snapshot(by_add) == _snapshot(by_match)

    app = refund.app
    spec = app.find_agent("refund")
    assert spec is not None
    services = Services(clock_us=lambda: 0, new_uuid=lambda: "u", random=lambda: 0.5)
    started = RunStarted(input={}, requested_by="t", command_id="c")
    replayer = Replayer(app, spec, "r", started, services)
    replayer.feed(events)
    assert _snapshot(replayer._index) == _snapshot(by_match)
    assert replayer.news == bool(events)
