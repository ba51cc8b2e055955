"""A worker OS process for the fault suite: `countersign worker` with two test hooks.

    python -m tests.faults.worker        (settings from COUNTERSIGN_* as for the CLI)

It runs the same `engine.runtime.worker.Worker` on the same `KafkaLog`; it differs from the CLI in
two ways only:
- group timings come from COUNTERSIGN_FAULT_SESSION_MS / _HEARTBEAT_MS / _COMMIT_TIMEOUT_S,
  so that a killed or stalled worker is noticed in seconds, not the production 10 s;
- every event id begins with the writing process's pid (8 hex digits, still a UUID), so
  the checks can tell which process wrote an event (a zombie's must never be visible).
The app is COUNTERSIGN_FAULT_APP (module:attribute). The exit code is 0 after SIGTERM and
1 if the worker loop raised: the suite counts those as crashes.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
import uuid

import structlog

from countersign import bootstrap
from countersign.logging import configure_logging
from countersign.settings import Settings
from engine.core.executor import Services
from engine.log.kafka import KafkaLog
from engine.log.kafka.connection import Connection
from engine.runtime.worker import Worker, WorkerSettings


def tagged_uuid() -> str:
    """A UUID whose first 8 hex digits are this process's pid."""
    return f"{os.getpid():08x}{str(uuid.uuid4())[8:]}"


def writer_of(event_id: str) -> int:
    return int(event_id[:8], 16)


async def run(settings: Settings) -> None:
    env = os.environ
    assert settings.kafka_bootstrap, "COUNTERSIGN_KAFKA_BOOTSTRAP is required"
    event_log = KafkaLog(
        Connection(settings.kafka_bootstrap, settings.kafka.security),
        client_id=f"fault-worker-{os.getpid()}",
        session_timeout_ms=int(env.get("COUNTERSIGN_FAULT_SESSION_MS", "3000")),
        heartbeat_interval_ms=int(env.get("COUNTERSIGN_FAULT_HEARTBEAT_MS", "500")),
        commit_timeout_s=float(env.get("COUNTERSIGN_FAULT_COMMIT_TIMEOUT_S", "10")),
        request_timeout_ms=int(env.get("COUNTERSIGN_FAULT_REQUEST_TIMEOUT_MS", "10000")),
        max_poll_interval_ms=30_000,
    )
    await event_log.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, dump_state, event_log)
    try:
        await event_log.ensure_topics(bootstrap.topics(settings), settings.partitions)
        worker = Worker(
            bootstrap.load_app(env["COUNTERSIGN_FAULT_APP"]),
            event_log,
            bootstrap.topics(settings),
            bootstrap.codec(settings),
            services=Services(
                clock_us=lambda: time.time_ns() // 1000,
                new_uuid=tagged_uuid,
                random=random.random,
            ),
            settings=WorkerSettings(group=settings.worker_group, poll_timeout_s=0.05),
        )
        await worker.run(stop)
    finally:
        await event_log.close()


def dump_state(event_log: KafkaLog) -> None:
    """On SIGUSR1 (the harness sends it before it reports a stall), to stderr (the worker's
    log): every asyncio task's stack, then each group member's partitions as its consumer
    holds them and its producers' transaction states (last: the harness quotes the tail)."""
    out = sys.stderr
    print(f"=== state of {os.getpid()} at {time.time():.3f}: tasks ===", file=out)
    for task in asyncio.all_tasks():
        task.print_stack(file=out)
    for member in list(event_log._members):
        print(
            f"member {member._topic}: assigned={sorted(member._assigned)} "
            f"pending={sorted(member._pending)} fenced={sorted(member._fenced)} "
            f"rejoining={member._rejoining} rebalancing={member._rebalancing.locked()} "
            f"locked={sorted(p for p, lock in member._locks.items() if lock.locked())}",
            file=out,
        )
        subscription = member._consumer._subscription.subscription if member._consumer else None
        assignment = subscription.assignment if subscription else None
        for tp in sorted(assignment.tps if assignment else ()):
            state = assignment.state_value(tp)
            position = state.position if state.has_valid_position else None
            print(
                f"  {tp.topic}[{tp.partition}] position={position} paused={state.paused} "
                f"awaiting_reset={state.awaiting_reset} highwater={state.highwater} "
                f"lso={state.lso}",
                file=out,
            )
        for _, pair in sorted(member._producers.items()):
            for producer in pair.producers:
                txn = producer._txn_manager
                print(
                    f"  producer {txn.transactional_id}: {txn.state.name} "
                    f"epoch={txn.producer_epoch} adding={len(txn._pending_txn_partitions)} "
                    f"added={len(txn._txn_partitions)} group={txn._txn_consumer_group} "
                    f"sender_done={producer._sender.sender_task.done()}",
                    file=out,
                )
    print("=== end of state ===", file=out, flush=True)


def main() -> int:
    settings = Settings.from_env()
    configure_logging("json", settings.log_level)
    try:
        asyncio.run(run(settings))
    except Exception as exc:
        structlog.get_logger("tests.faults.worker").exception("worker_crashed", error=repr(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
