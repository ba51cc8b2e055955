"""Order statistics the benchmarks print. Pure."""

from __future__ import annotations

from collections.abc import Sequence


def percentile(samples: Sequence[float], q: float) -> float:
    """The sample at rank ⌊q·n⌋ of the sorted samples (the largest for q near 1)."""
    if not samples:
        raise ValueError("no samples")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q={q}: a fraction between 0 and 1")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
