"""Pure: what the scaling benchmarks compute from what they saw: each run completed exactly
once, CPU seconds of a process tree, and a one-line comparison of N processes with one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "Completions",
    "ProcTimes",
    "Usage",
    "completions",
    "cpu_lines",
    "scaling_line",
    "tree_cpu_s",
    "tree_queued_s",
]


@dataclass(frozen=True)
class Completions:
    """Runs expected to complete that did not, and runs that completed more than once (with
    how many times); `unexpected` completed without being asked for."""

    missing: tuple[str, ...]
    repeated: tuple[tuple[str, int], ...]
    unexpected: tuple[str, ...]

    @property
    def exactly_once(self) -> bool:
        return not (self.missing or self.repeated or self.unexpected)

    def summary(self, expected: int) -> str:
        if self.exactly_once:
            return f"every one of {expected} runs completed exactly once"
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} never completed (e.g. {self.missing[0]})")
        if self.repeated:
            run_id, times = self.repeated[0]
            parts.append(f"{len(self.repeated)} completed twice or more ({run_id}: {times})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} not asked for (e.g. {self.unexpected[0]})")
        return f"NOT EXACTLY ONCE over {expected} runs: " + "; ".join(parts)


def completions(expected: Iterable[str], completed: Iterable[str]) -> Completions:
    """`completed`: the run id of every RunCompleted read from the log, repeats included."""
    counts: dict[str, int] = {}
    for run_id in completed:
        counts[run_id] = counts.get(run_id, 0) + 1
    wanted = set(expected)
    return Completions(
        missing=tuple(sorted(r for r in wanted if r not in counts)),
        repeated=tuple(sorted((r, n) for r, n in counts.items() if n > 1 and r in wanted)),
        unexpected=tuple(sorted(r for r in counts if r not in wanted)),
    )


@dataclass(frozen=True)
class ProcTimes:
    """One process's CPU times in seconds (/proc/<pid>/stat): its own, and that of its
    children it has waited for (a finished child's time moves there); and how long its live
    threads have waited, runnable, for a core (/proc/<pid>/task/*/schedstat)."""

    ppid: int
    own_s: float
    reaped_s: float
    queued_s: float = 0.0


def tree_cpu_s(snapshot: Mapping[int, ProcTimes], root: int) -> float:
    """CPU seconds of `root` and every live descendant, with what they reaped: the
    difference of two snapshots is what the tree used in between, children that came and
    went included (as long as their parent was in the tree)."""
    return sum(snapshot[pid].own_s + snapshot[pid].reaped_s for pid in _tree(snapshot, root))


def tree_queued_s(snapshot: Mapping[int, ProcTimes], root: int) -> float:
    """Seconds the tree's live threads have waited for a core (threads gone are not in it)."""
    return sum(snapshot[pid].queued_s for pid in _tree(snapshot, root))


def _tree(snapshot: Mapping[int, ProcTimes], root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, times in snapshot.items():
        children.setdefault(times.ppid, []).append(pid)
    found, todo, seen = [], [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in snapshot:
            continue
        seen.add(pid)
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def scaling_line(what: str, one: float, many: float, processes: int, target: float) -> str:
    """`many` (N processes) against `one` (one process), as a ratio and against the target."""
    if one <= 0:
        return f"{what}: no figure for one process, no ratio"
    ratio = many / one
    verdict = "meets" if ratio >= target else "short of"
    return (
        f"{what}: {processes} processes {many:,.0f}/s vs one {one:,.0f}/s = {ratio:.2f}x "
        f"({verdict} the target {target:g}x; linear would be {processes}x)"
    )


@dataclass(frozen=True)
class Usage:
    """What a process tree used over a measured window."""

    cpu_s: float
    queued_s: float


def cpu_lines(used: Mapping[str, Usage], units: int, unit: str, seconds: float) -> list[str]:
    """Per process tree: CPU seconds, µs per `unit`, the cores it kept busy over `seconds`
    of wall clock, and the seconds its threads waited for a core; then their sum."""
    total = Usage(sum(u.cpu_s for u in used.values()), sum(u.queued_s for u in used.values()))
    return [
        f"    {name:<10} {u.cpu_s:7.2f} CPU s {u.cpu_s / max(units, 1) * 1e6:8.0f} µs/{unit} "
        f"{u.cpu_s / seconds if seconds > 0 else 0.0:5.2f} cores "
        f"{u.queued_s:7.2f} s waiting for a core"
        for name, u in [*used.items(), ("all", total)]
    ]
