"""The measuring sequence every side goes through, the same for each (I/O: it times them).

1. `warmup` runs taken start → resume, untimed; 2. a storage reading; 3. `runs` started at
once (runs/s to their interrupt), then all decided at once (resumes/s to completed); 4.
`latency_runs` started and decided one at a time (p50/p99 of decision → completed); 5. a
storage reading (bytes per run: the growth over the runs of 3 and 4); 6. `long_runs` with
`long_steps` lookups before the interrupt, decided one at a time (p50 of their resumes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from bench.peers.figures import Figures, latency_summary
from bench.peers.workload import Counts

Storage = Callable[[], Awaitable[tuple[int, int]]]
"""(bytes of everything the side stores, bytes of its run state) right now."""


class Driver(Protocol):
    async def one_resume_ms(self, steps: int = 1) -> float:
        """Start a run of `steps` lookups, wait for its interrupt, approve: ms from the
        decision to the run seen completed."""
        ...

    async def throughput(self, runs: int) -> tuple[float, float]:
        """(runs started to their interrupt /s, resumes /s), `runs` at once each."""
        ...


async def measure(side: str, driver: Driver, counts: Counts, storage: Storage) -> Figures:
    for _ in range(counts.warmup):
        await driver.one_resume_ms()
    stored_before, state_before = await storage()
    starts, resumes = await driver.throughput(counts.runs)
    samples = [await driver.one_resume_ms() for _ in range(counts.latency_runs)]
    stored_after, state_after = await storage()
    longs = [await driver.one_resume_ms(counts.long_steps) for _ in range(counts.long_runs)]
    p50, p99 = latency_summary(samples)
    return Figures(
        side=side,
        starts_per_s=starts,
        resumes_per_s=resumes,
        resume_p50_ms=p50,
        resume_p99_ms=p99,
        stored_per_run=(stored_after - stored_before) / counts.measured_runs,
        state_per_run=(state_after - state_before) / counts.measured_runs,
        long_resume_ms=latency_summary(longs)[0] if longs else None,
    )
