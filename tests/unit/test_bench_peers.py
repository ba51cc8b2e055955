"""The peer comparison's pure pieces (bench/peers/): its statistics, ratios, table and the
Countersign agent it runs. The figures themselves are printed by `python -m bench.peers`."""

from __future__ import annotations

import pytest

from bench import agents
from bench.peers.figures import PEER, ROWS, Figures, latency_summary, number, ratio, table
from bench.peers.workload import Counts, refund_input
from bench.stats import percentile
from events.run_events import InterruptRaised, ToolCallCompleted
from tests.unit.approvals_sim import Sim


def test_percentile_takes_the_sample_at_rank_q_n_of_the_sorted_samples() -> None:
    samples = [float(x) for x in range(100, 0, -1)]  # 100 … 1, unsorted on purpose

    assert percentile(samples, 0.5) == 51.0
    assert percentile(samples, 0.99) == 100.0
    assert percentile(samples, 0.0) == 1.0
    assert percentile(samples, 1.0) == 100.0
    assert percentile([7.0], 0.99) == 7.0


@pytest.mark.parametrize(("samples", "q"), [([], 0.5), ([1.0], 1.5), ([1.0], -0.1)])
def test_percentile_refuses_no_samples_and_a_q_outside_0_1(samples: list[float], q: float) -> None:
    with pytest.raises(ValueError):  # noqa: PT011  (the message is checked by the caller's eye)
        percentile(samples, q)


def test_latency_summary_is_p50_and_p99() -> None:
    samples = [1.0] * 98 + [50.0, 90.0]

    assert latency_summary(samples) == (1.0, 90.0)


def test_ratio_is_ours_over_theirs_and_none_when_it_cannot_be_formed() -> None:
    assert ratio(30.0, 10.0) == 3.0
    assert ratio(None, 10.0) is None
    assert ratio(3.0, None) is None
    assert ratio(3.0, 0.0) is None


def test_numbers_carry_their_unit() -> None:
    assert number(None, "ms") == "—"
    assert number(7.06, "ms") == "7.1 ms"
    assert number(214.4, "ms") == "214 ms"
    assert number(1974.4, "/s") == "1,974/s"
    assert number(2428.2, "B") == "2,428 B"


def test_the_table_has_a_column_per_side_and_a_ratio_per_countersign_side() -> None:
    kafka = Figures(side="countersign-kafka", resumes_per_s=2000.0, resume_p50_ms=40.0)
    embedded = Figures(side="countersign-embedded", resumes_per_s=1000.0, resume_p50_ms=5.0)
    peer = Figures(side=PEER, resumes_per_s=250.0, resume_p50_ms=10.0, long_resume_ms=20.0)

    lines = table([kafka, embedded, peer], long_steps=1000).splitlines()

    assert lines[0] == (
        "| measure | countersign-kafka | countersign-embedded | langgraph "
        "| countersign-kafka / langgraph | countersign-embedded / langgraph |"
    )
    assert len(lines) == 2 + len(ROWS)
    resumes = next(line for line in lines if line.startswith("| resumes"))
    assert resumes.endswith("| 2,000/s | 1,000/s | 250/s | 8.00x | 4.00x |")
    p50 = next(line for line in lines if line.startswith("| resume latency p50"))
    assert p50.endswith("| 40.0 ms | 5.0 ms | 10.0 ms | 4.00x | 0.50x |")
    long = next(line for line in lines if "1,000 prior steps" in line)
    assert long.endswith("| — | — | 20.0 ms | — | — |")  # not measured: no ratio


def test_without_the_peer_the_table_has_no_ratios() -> None:
    lines = table([Figures(side="countersign-kafka", starts_per_s=100.0)]).splitlines()

    assert lines[0] == "| measure | countersign-kafka |"
    assert "| 100/s |" in lines[2]


@pytest.mark.parametrize(
    "bad", [{"runs": 0}, {"latency_runs": 0}, {"long_runs": -1}, {"warmup": -1}]
)
def test_counts_refuse_what_would_measure_nothing(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        Counts(**bad)


def test_the_countersign_agent_looks_up_steps_times_then_asks_then_refunds() -> None:
    sim = Sim(agents.app, "peer-refund", refund_input("A-1", steps=3), requested_by="bench")

    assert len(sim.of_type(ToolCallCompleted)) == 3  # the lookups, before the interrupt
    [raised] = sim.of_type(InterruptRaised)
    assert raised.request.tool == "refund"

    assert sim.decide(raised.interrupt_id, "approve", "alice").accepted
    output = sim.output
    assert isinstance(output, dict)
    assert output["status"] == "ok"
    assert output["approved_by"] == "alice"
    assert output["refund"] == {
        "refund_id": output["refund"]["refund_id"],  # type: ignore[index, call-overload]
        "order_id": "A-1",
        "amount": 2400.0,
    }
    assert len(sim.of_type(ToolCallCompleted)) == 4


def test_the_countersign_agent_caps_its_steps() -> None:
    sim = Sim(
        agents.app,
        "peer-refund",
        refund_input("A-1", steps=agents.MAX_STEPS + 5),
        requested_by="bench",
    )

    assert len(sim.of_type(ToolCallCompleted)) == agents.MAX_STEPS
