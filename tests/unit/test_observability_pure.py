"""The pure parts of observability: W3C trace context in headers, the run census, the
health verdicts and the step report's outcomes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from immutables import Map

from engine.core.census import RunCensus, census
from engine.core.handling import DecisionVerdict
from engine.core.health import ProcessHealth
from engine.core.state import RunState
from engine.core.trace_context import TraceContext, trace_context
from engine.log.memory import MemoryLog
from engine.runtime.observing import StepReport, new_trace
from engine.telemetry import NO_METRICS
from events.approval import ApprovalRequest
from events.run_events import InterruptRaised
from projections.errors import StoreUnavailable
from projections.watch import ProjectorWatch

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
PARENT = f"00-{TRACE}-{SPAN}-01"


def _parsed(*headers: tuple[str, bytes]) -> TraceContext | None:
    return trace_context(tuple(headers))


def test_a_valid_traceparent_is_read_and_written_back_the_same() -> None:
    context = _parsed(("traceparent", PARENT.encode()), ("tracestate", b"vendor=abc"))
    assert context == TraceContext(TRACE, SPAN, 1, b"vendor=abc")
    assert context.headers() == (("traceparent", PARENT.encode()), ("tracestate", b"vendor=abc"))


@pytest.mark.parametrize(
    "value",
    [
        b"",
        PARENT.upper().encode(),  # upper-case hex is not the format
        f"ff-{TRACE}-{SPAN}-01".encode(),  # version ff is forbidden
        f"00-{'0' * 32}-{SPAN}-01".encode(),  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01".encode(),  # all-zero span id
        f"00-{TRACE}-{SPAN}-01-extra".encode(),  # version 00 has four fields exactly
        f"01-{TRACE}-{SPAN}-01-".encode() + b"x" * 600,  # a payload, not a context
        f"00-{TRACE[:-1]}-{SPAN}-01".encode(),
        b"\x00" * 55,
    ],
)
def test_a_malformed_traceparent_is_ignored(value: bytes) -> None:
    assert _parsed(("traceparent", value)) is None


def test_a_later_version_may_append_fields() -> None:
    context = _parsed(("traceparent", f"01-{TRACE}-{SPAN}-00-future".encode()))
    assert context is not None
    assert context.traceparent == f"00-{TRACE}-{SPAN}-00"


def test_two_traceparents_are_neither_believed() -> None:
    assert _parsed(("traceparent", PARENT.encode()), ("traceparent", PARENT.encode())) is None


@pytest.mark.parametrize("state", [b"x" * 513, b"a=\x00b", b"caf\xc3\xa9=1"])
def test_an_oversized_or_unprintable_tracestate_is_dropped_the_traceparent_kept(
    state: bytes,
) -> None:
    context = _parsed(("traceparent", PARENT.encode()), ("tracestate", state))
    assert context is not None
    assert context.state == b""
    assert len(context.headers()) == 1


@given(st.lists(st.tuples(st.sampled_from(["traceparent", "tracestate", "x"]), st.binary())))
def test_any_headers_give_a_context_that_writes_a_valid_traceparent_or_none(
    headers: list[tuple[str, bytes]],
) -> None:
    context = trace_context(tuple(headers))
    if context is not None:
        assert trace_context(context.headers()) == context


def test_a_new_trace_is_valid_and_new_each_time() -> None:
    first, second = new_trace(), new_trace()
    assert trace_context(first.headers()) == first
    assert first.trace_id != second.trace_id


def _state(status: str, *, kinds: tuple[str, ...] = (), quarantined: bool = False) -> RunState:
    interrupts = Map(
        {
            f"i{n}": InterruptRaised(
                call=n, interrupt_id=f"i{n}", request=ApprovalRequest(kind=kind, title="t")
            )
            for n, kind in enumerate(kinds)
        }
    )
    return RunState(
        run_id="r",
        agent="a",
        agent_version="1",
        requested_by="b",
        start_command_id="c",
        status=status,  # type: ignore[arg-type]
        open_interrupts=interrupts,
        quarantined=quarantined,
    )


def test_the_census_counts_runs_by_what_they_wait_for() -> None:
    states = [
        _state("running"),
        _state("waiting", kinds=("tool",)),
        _state("waiting", kinds=("question", "in_doubt")),
        _state("parked"),
        _state("waiting", kinds=("tool",), quarantined=True),
        _state("completed"),
        _state("failed"),
        None,
    ]
    assert census(states) == RunCensus(
        live=5, running=1, waiting=3, in_doubt=1, parked=1, quarantined=1
    )


def test_health_is_ready_only_in_the_group_after_a_poll_with_the_log_answering() -> None:
    health = ProcessHealth(stall_s=10)
    assert health.ready().reasons == ("not in its group",)
    health.joined()
    assert health.ready().reasons == ("has not polled yet",)
    health.polled(100.0)
    assert health.ready().ok
    assert health.live(105.0).ok
    assert not health.ready("partitions not restored yet: [1]").ok
    health.log_away("broker gone")
    assert "the log does not answer: broker gone" in health.ready().reasons
    health.polled(106.0)
    assert health.ready().ok


def test_a_stalled_loop_is_not_alive_and_a_stood_down_one_is_alive_but_never_ready() -> None:
    health = ProcessHealth(stall_s=10)
    health.joined()
    health.polled(100.0)
    assert not health.live(111.0).ok
    health.log_away("broker gone", 112.0)  # retrying: alive again, not ready
    assert health.live(115.0).ok
    assert not health.ready().ok
    health.stood_down("a newer release wrote offset 7")
    assert health.live(10_000.0).ok
    verdict = health.ready()
    assert not verdict.ok
    assert verdict.reasons[0].startswith("stood down: a newer release")


def _verdict(**changes: object) -> DecisionVerdict:
    base: dict[str, object] = {"accepted": True, "reason": "", "event": None}
    base.update(changes)
    return DecisionVerdict(**base)  # type: ignore[arg-type]


def test_the_step_report_names_each_commands_outcome_and_keeps_traces_per_run() -> None:
    report = StepReport()
    report.command_ms, report.trace = 1_000, (("traceparent", PARENT.encode()),)
    report.applied()
    assert report.trace_for("run-1") == report.trace
    assert report.outcome == "applied"
    report.outcome, report.trace = None, ()
    report.decided(_verdict(accepted=True))
    assert report.outcome == "accepted"
    assert report.decided_ms == [1_000]
    report.decided(_verdict(repeat=True))
    assert report.outcome == "repeated"
    report.dead_lettered()
    report.decided(_verdict(accepted=False))
    assert report.outcome == "dead_lettered"
    assert report.dead_letters == 1
    # later records of run-1 (its continuation, driven after the command) keep its trace
    assert report.trace_for("run-1") == (("traceparent", PARENT.encode()),)
    assert report.trace_for("run-2") == ()


class _Store:
    def __init__(self) -> None:
        self.away = False

    async def positions(self, projection: str, topic: str) -> dict[int, int]:
        if self.away:
            raise StoreUnavailable("connection refused")
        return {}


async def test_a_projector_is_not_ready_while_its_database_does_not_answer() -> None:
    store = _Store()
    watch = ProjectorWatch(NO_METRICS, MemoryLog(), store, "core", "p.runs")
    watch.health.joined()
    watch.polled()
    assert (await watch.ready()).ok
    store.away = True
    verdict = await watch.ready()
    assert not verdict.ok
    assert verdict.reasons == ("the database does not answer: connection refused",)
