"""The scaling benchmarks' arithmetic (bench/tally.py): exactly-once tallies, CPU of process
trees, the ratio line."""

from __future__ import annotations

from bench.tally import (
    ProcTimes,
    Usage,
    completions,
    cpu_lines,
    scaling_line,
    tree_cpu_s,
    tree_queued_s,
)


def test_every_run_completed_once_is_exactly_once() -> None:
    tally = completions(["a", "b"], ["b", "a"])
    assert tally.exactly_once
    assert tally.summary(2) == "every one of 2 runs completed exactly once"


def test_a_run_never_completed_is_named() -> None:
    tally = completions(["a", "b", "c"], ["a", "c"])
    assert not tally.exactly_once
    assert tally.missing == ("b",)
    assert "1 never completed (e.g. b)" in tally.summary(3)


def test_a_run_completed_twice_is_named_with_its_count() -> None:
    tally = completions(["a", "b"], ["a", "b", "b", "b"])
    assert tally.repeated == (("b", 3),)
    assert not tally.missing
    assert tally.summary(2).startswith("NOT EXACTLY ONCE")
    assert "(b: 3)" in tally.summary(2)


def test_a_completion_not_asked_for_is_not_exactly_once() -> None:
    tally = completions(["a"], ["a", "z"])
    assert tally.unexpected == ("z",)
    assert not tally.exactly_once


def snapshot(**rows: tuple[int, float, float]) -> dict[int, ProcTimes]:
    return {int(pid[1:]): ProcTimes(*row) for pid, row in rows.items()}


def test_tree_cpu_counts_descendants_and_what_they_reaped_not_others() -> None:
    before = snapshot(p10=(1, 1.0, 0.0), p11=(10, 0.5, 0.0), p12=(11, 0.25, 0.0), p20=(1, 9.0, 0))
    # p12 finished (its 0.25 s + 0.5 s more moved into p11's reaped time); p13 is new.
    after = snapshot(p10=(1, 1.5, 0.0), p11=(10, 0.5, 0.75), p13=(10, 0.125, 0.0), p20=(1, 20, 0))
    assert tree_cpu_s(before, 10) == 1.75
    assert tree_cpu_s(after, 10) - tree_cpu_s(before, 10) == 1.125
    assert tree_cpu_s(after, 11) == 1.25
    assert tree_cpu_s(after, 99) == 0.0


def test_tree_queued_sums_the_live_tree_only() -> None:
    found = {10: ProcTimes(1, 0, 0, 0.5), 11: ProcTimes(10, 0, 0, 0.25), 20: ProcTimes(1, 0, 0, 4)}
    assert tree_queued_s(found, 10) == 0.75


def test_tree_cpu_survives_a_cycle_of_parents() -> None:
    assert tree_cpu_s(snapshot(p1=(2, 1.0, 0.0), p2=(1, 2.0, 0.0)), 1) == 3.0


def test_scaling_line_gives_the_ratio_and_the_verdict() -> None:
    line = scaling_line("decisions/s", 1000, 3600, 4, target=3.5)
    assert "= 3.60x" in line
    assert "meets the target 3.5x" in line
    short = scaling_line("events/s", 1000, 2000, 3, target=2.5)
    assert "= 2.00x" in short
    assert "short of the target 2.5x" in short
    assert "no ratio" in scaling_line("events/s", 0, 2000, 3, target=2.5)


def test_cpu_lines_per_unit_and_cores_then_the_sum() -> None:
    used = {"workers": Usage(2.0, 0.5), "broker": Usage(1.0, 1.5)}
    lines = cpu_lines(used, 1000, "decision", 4.0)
    assert len(lines) == 3
    assert "2000 µs/decision" in lines[0]
    assert " 0.50 cores" in lines[0]
    assert lines[1].endswith("1.50 s waiting for a core")
    assert lines[2].split()[:2] == ["all", "3.00"]
    assert "3000 µs/decision" in lines[2]
    assert lines[2].endswith("2.00 s waiting for a core")
