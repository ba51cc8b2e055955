"""Countersign's side of the peer comparison, on any event log (I/O).

A worker OS process serves `bench.agents:app` (`peer-refund`); this process publishes signed
commands (`CommandPublisher`) and follows the runs and approvals topics (`bench.follower`).
A run has "started" when its `ApprovalRequested` notice is read, and has "resumed" when its
`RunCompleted` event is read, so every figure includes the log's round trip to a reader.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from bench.follower import Follower
from bench.peers.figures import Figures
from bench.peers.measure import Storage, measure
from bench.peers.workload import Counts, refund_input
from bench.worker_process import spawn_worker, stop_worker, worker_env
from consumers.publisher import CommandPublisher
from engine.log.port import EventLog, Topics
from engine.trust.jws import SigningKey
from events.codec import Codec

AGENT = "peer-refund"
APP = "bench.agents:app"
CHUNK = 500


class CountersignSide:
    def __init__(self, log: EventLog, topics: Topics, key: SigningKey) -> None:
        codec = Codec()
        self.publisher = CommandPublisher(log, topics, codec, key=key)
        self.follower = Follower(log, topics, codec)

    async def _start_all(self, run_ids: list[str], steps: int = 1) -> None:
        for at in range(0, len(run_ids), CHUNK):
            await asyncio.gather(
                *(
                    self.publisher.start_run(
                        AGENT, refund_input(r, steps), requested_by="bench", run_id=r
                    )
                    for r in run_ids[at : at + CHUNK]
                )
            )

    async def _decide_all(self, run_ids: list[str]) -> None:
        for at in range(0, len(run_ids), CHUNK):
            await asyncio.gather(
                *(
                    self.publisher.submit_decision(
                        r, self.follower.interrupts[r], "approve", decided_by="alice"
                    )
                    for r in run_ids[at : at + CHUNK]
                )
            )

    async def _paused(self, run_ids: list[str], limit_s: float = 600) -> None:
        """Until each run's approval notice is read, and the runs topic read up to its
        interrupt (so that no timing after this includes the follower catching up)."""
        seen = self.follower
        await seen.wait(
            lambda: all(r in seen.interrupts and r in seen.raised for r in run_ids), limit_s
        )

    async def _completed(self, run_ids: list[str], limit_s: float = 600) -> None:
        await self.follower.wait(
            lambda: all(r in self.follower.completed for r in run_ids), limit_s
        )

    async def one_resume_ms(self, steps: int = 1) -> float:
        """Start one run, wait for its interrupt, decide: ms from decision to completed."""
        run_id = f"one-{uuid.uuid4()}"
        await self._start_all([run_id], steps)
        await self._paused([run_id])
        sent = time.perf_counter()
        await self._decide_all([run_id])
        await self._completed([run_id])
        return (self.follower.completed[run_id] - sent) * 1000

    async def throughput(self, runs: int) -> tuple[float, float]:
        """(runs started to their interrupt /s, resumes /s), `runs` at once each."""
        run_ids = [f"tp-{uuid.uuid4()}" for _ in range(runs)]
        began = time.perf_counter()
        await self._start_all(run_ids)
        await self._paused(run_ids)
        started_s = time.perf_counter() - began
        began = time.perf_counter()
        await self._decide_all(run_ids)
        await self._completed(run_ids)
        return runs / started_s, runs / (time.perf_counter() - began)

    async def stop(self) -> None:
        await self.follower.stop()


async def run_side(
    side: str,
    log: EventLog,
    topics: Topics,
    key: SigningKey,
    home: Path,
    settings: dict[str, str],
    counts: Counts,
    storage: Storage,
    partitions: int,
) -> Figures:
    """One worker process on `log` (its `settings` as COUNTERSIGN_* names), measured."""
    worker = spawn_worker([APP], worker_env(home, settings), str(home / f"{side}-worker.log"))
    measured = CountersignSide(log, topics, key)
    try:
        await measured.follower.start(partitions)
        return await measure(side, measured, counts, storage)
    finally:
        stop_worker(worker)
        await measured.stop()
