"""Throughput of one worker process on the embedded PostgreSQL log, and the demo's wall time.

One `countersign worker --app examples.refund:app` process runs on a fresh embedded database
(or on $COUNTERSIGN_DATABASE_URL). This script starts RUNS refund runs that all pause for
approval (many runs in flight), then publishes one decision per run in one burst and
measures until every decision's outcome is out and until every run has completed (each
decision: DecisionAccepted, the refund scheduled, run and completed, RunCompleted — two
commits per partition batch, as the refund tool is not idempotent). Then it times
`countersign demo --auto approve`, cold (a new home: initdb included) and warm.

    .venv/bin/python bench/embedded.py [--runs 2000] [--log-level info]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from countersign import local_pg
from countersign.logging import configure_logging
from engine.log.port import Outgoing, Topics
from engine.log.postgres import PostgresLog
from events.codec import Codec
from events.commands import StartRun, SubmitDecision
from events.notices import ApprovalRequested, DecisionOutcome

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 4
BATCH = 250


async def _follow(log: PostgresLog, topic: str, start: dict[int, int], seen: list[bytes]) -> None:
    async def one(partition: int) -> None:
        async for record in log.read(topic, partition, start[partition], follow=True):
            seen.append(record.value)

    await asyncio.gather(*(one(p) for p in range(PARTITIONS)))


async def _until(predicate: Callable[[], bool], timeout_s: float, what: str) -> float:
    began = time.perf_counter()
    while not predicate():
        if time.perf_counter() - began > timeout_s:
            raise TimeoutError(f"{what} not done within {timeout_s:.0f}s")
        await asyncio.sleep(0.005)
    return time.perf_counter() - began


async def _ends(log: PostgresLog, topic: str) -> dict[int, int]:
    return {p: await log.end_offset(topic, p) for p in range(PARTITIONS)}


async def _publish(log: PostgresLog, records: list[Outgoing]) -> None:
    for at in range(0, len(records), BATCH):
        await log.publish(records[at : at + BATCH])


async def measure(url: str, runs: int, log_level: str, workdir: Path) -> None:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    topics, codec = Topics(prefix), Codec()
    log = PostgresLog(url, client_id="bench")
    await log.start()
    await log.ensure_topics(topics, PARTITIONS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}
    env |= {
        "COUNTERSIGN_LOG": "postgres",
        "COUNTERSIGN_DATABASE_URL": url,
        "COUNTERSIGN_TOPIC_PREFIX": prefix,
        "COUNTERSIGN_PARTITIONS": str(PARTITIONS),
        "COUNTERSIGN_LOG_FORMAT": "json",
        "COUNTERSIGN_LOG_LEVEL": log_level,
    }
    out = (workdir / "worker.log").open("wb")
    worker = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "countersign.cli", "worker", "--app", "examples.refund:app"),
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    notices: list[bytes] = []
    follower = asyncio.create_task(
        _follow(log, topics.approvals, await _ends(log, topics.approvals), notices)
    )
    try:
        now_us = time.time_ns() // 1000
        run_ids = [str(uuid.uuid4()) for _ in range(runs)]
        starts = [
            StartRun(
                command_id=str(uuid.uuid4()),
                run_id=run_id,
                agent="refund",
                input={"order_id": f"o-{i}", "amount": 2400},
                requested_by="bob",
                issued_at_us=now_us,
            )
            for i, run_id in enumerate(run_ids)
        ]
        began = time.perf_counter()
        await _publish(log, [Outgoing(topics.commands, s.run_id, codec.encode(s)) for s in starts])
        requests: dict[str, ApprovalRequested] = {}

        def all_paused() -> bool:
            while notices:
                notice = codec.decode_notice(notices.pop())
                if isinstance(notice, ApprovalRequested):
                    requests[notice.run_id] = notice
            return len(requests) == runs

        await _until(all_paused, 300, "pausing every run")
        paused_s = time.perf_counter() - began
        print(f"runs in flight: {runs} started and paused for approval in {paused_s:.2f} s "
              f"({runs / paused_s:,.0f} runs/s, incl. lookup tool and interrupt)")  # fmt: skip

        runs_ends = await _ends(log, topics.runs)
        completed: list[bytes] = []
        finisher = asyncio.create_task(_follow(log, topics.runs, runs_ends, completed))
        decisions = [
            SubmitDecision(
                decision_id=str(uuid.uuid4()),
                run_id=run_id,
                interrupt_id=requests[run_id].interrupt_id,
                kind="approve",
                decided_by="alice",
                issued_at_us=time.time_ns() // 1000,
                digest=requests[run_id].request.digest,
            )
            for run_id in run_ids
        ]
        outcomes = 0
        done = 0

        def all_decided() -> bool:
            nonlocal outcomes
            while notices:
                notice = codec.decode_notice(notices.pop())
                outcomes += isinstance(notice, DecisionOutcome) and notice.accepted
            return outcomes >= runs

        def all_completed() -> bool:
            nonlocal done
            while completed:
                done += codec.decode_event(completed.pop()).type == "RunCompleted"
            return done >= runs

        began = time.perf_counter()
        await _publish(
            log, [Outgoing(topics.commands, d.run_id, codec.encode(d)) for d in decisions]
        )
        published_s = time.perf_counter() - began
        decided_s = published_s + await _until(all_decided, 300, "deciding")
        await _until(all_completed, 300, "completing")
        completed_s = time.perf_counter() - began
        finisher.cancel()
        print(f"decisions:      {runs} published in {published_s:.2f} s; all accepted "
              f"after {decided_s:.2f} s; all runs completed after {completed_s:.2f} s")  # fmt: skip
        print(f"throughput:     {runs / completed_s:,.0f} decisions/s to completed runs "
              f"({runs / decided_s:,.0f}/s to accepted outcomes), one worker process, "
              f"{PARTITIONS} partitions, worker log level {log_level}")  # fmt: skip
    finally:
        follower.cancel()
        worker.terminate()  # by its PID: the one process this script started
        await asyncio.wait_for(worker.wait(), 30)
        await log.close()


def time_demo(home: Path, url: str | None) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERSIGN_")}
    env["COUNTERSIGN_HOME"] = str(home)
    if url:
        env["COUNTERSIGN_DATABASE_URL"] = url
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "countersign.cli", "demo", "--auto", "approve"],
        cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    args = parser.parse_args()
    configure_logging("console", "warning")
    root = Path(tempfile.mkdtemp(prefix="countersign-bench-"))
    try:
        url = os.environ.get("COUNTERSIGN_DATABASE_URL")
        if url is None:
            began = time.perf_counter()
            url = local_pg.start_embedded(root / "pg", stop_at_exit=True)
            print(f"embedded PostgreSQL: initdb + start in {time.perf_counter() - began:.2f} s")
        asyncio.run(measure(url, args.runs, args.log_level, root))
        cold = time_demo(root / "demo-home", None)
        warm = time_demo(root / "demo-home", None)
        print(f"demo wall time: {cold:.1f} s cold (new home: initdb, start, demo, stop), "
              f"{warm:.1f} s warm (start, demo, stop), incl. Python start-up")  # fmt: skip
    finally:
        if not os.environ.get("COUNTERSIGN_DATABASE_URL"):
            local_pg.stop_embedded(root / "pg")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
