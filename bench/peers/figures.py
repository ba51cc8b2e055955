"""What each side of the peer comparison measured, and the table of figures and ratios. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.stats import percentile

PEER = "langgraph"


@dataclass(frozen=True, kw_only=True, slots=True)
class Figures:
    """One side's figures; None where that side did not measure it."""

    side: str
    starts_per_s: float | None = None
    resumes_per_s: float | None = None
    resume_p50_ms: float | None = None
    resume_p99_ms: float | None = None
    stored_per_run: float | None = None
    state_per_run: float | None = None
    long_resume_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    field: str
    unit: str
    higher_is_better: bool


ROWS = (
    Row("runs started to their interrupt", "starts_per_s", "/s", True),
    Row("resumes (decision to run completed)", "resumes_per_s", "/s", True),
    Row("resume latency p50", "resume_p50_ms", "ms", False),
    Row("resume latency p99", "resume_p99_ms", "ms", False),
    Row("bytes stored per run (everything)", "stored_per_run", "B", False),
    Row("bytes per run (run state only)", "state_per_run", "B", False),
    Row("resume, {steps:,} prior steps (p50)", "long_resume_ms", "ms", False),
)


def latency_summary(samples_ms: Sequence[float]) -> tuple[float, float]:
    """(p50, p99) of latency samples."""
    return percentile(samples_ms, 0.5), percentile(samples_ms, 0.99)


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """ours / theirs, or None when either is missing or theirs is not positive."""
    if ours is None or theirs is None or theirs <= 0:
        return None
    return ours / theirs


def number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ms":
        return f"{value:,.1f} ms" if value < 100 else f"{value:,.0f} ms"
    if unit == "/s":
        return f"{value:,.0f}/s"
    return f"{value:,.0f} {unit}"


def times(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def table(sides: Sequence[Figures], long_steps: int = 1000) -> str:
    """A Markdown table: a column per side, then Countersign/LangGraph ratios per
    Countersign side (when LangGraph ran)."""
    peer = next((s for s in sides if s.side == PEER), None)
    ours = [s for s in sides if s.side != PEER]
    header = ["measure", *(s.side for s in sides)]
    if peer is not None:
        header += [f"{s.side} / {PEER}" for s in ours]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for row in ROWS:
        cells = [row.label.format(steps=long_steps) + (" ↑" if row.higher_is_better else " ↓")]
        cells += [number(getattr(s, row.field), row.unit) for s in sides]
        if peer is not None:
            theirs = getattr(peer, row.field)
            cells += [times(ratio(getattr(s, row.field), theirs)) for s in ours]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
