"""Restore time of a runs partition on Kafka: live runs behind a million finished ones.

    .venv/bin/python bench/restore.py [--finished 1000000] [--live 1000 10000] [--from-zero]

Starts a broker of its own in a temporary directory (or uses COUNTERSIGN_KAFKA_BOOTSTRAP).
For each live count it fills one partition of a fresh runs topic with `--finished` finished
runs (RunStarted + RunCompleted each, pre-encoded and published in large batches), then the
live runs (RunStarted, ToolCallScheduled, ToolCallCompleted, InterruptRaised: each waits
for a person), and the checkpoint the owning worker would have written (computed by the
same `Horizon`, keeping the default number of finished runs). Then it times
`engine.runtime.restore.restore_partition`, what a worker does on assignment, and checks that it
brought back every live run. The same is measured with no finished runs before the live
ones, to show the restore does not depend on them. `--from-zero` also times a restore with
no checkpoint (the whole partition; slow by design) for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from countersign import local_kafka  # noqa: E402
from engine.core.checkpoint import Checkpoint, Horizon  # noqa: E402
from engine.log.kafka import KafkaLog  # noqa: E402
from engine.log.port import Outgoing, Topics  # noqa: E402
from engine.runtime.restore import restore_partition  # noqa: E402
from engine.runtime.worker import WorkerSettings  # noqa: E402
from events.approval import ApprovalRequest  # noqa: E402
from events.codec import Codec  # noqa: E402
from events.envelope import GENESIS_HASH, EventEnvelope, hash_encoded  # noqa: E402
from events.run_events import (  # noqa: E402
    InterruptRaised,
    RunCompleted,
    RunEventPayload,
    RunStarted,
    ToolCallCompleted,
    ToolCallScheduled,
)

KEEP = WorkerSettings().keep_finished_runs
CHUNK = 20_000
T0 = 1_700_000_000_000_000
TEMPLATE_ID = "f" * 36  # same length as a uuid, so a byte replace keeps the Avro valid


def history(codec: Codec, run_id: str, payloads: list[RunEventPayload]) -> list[bytes]:
    out: list[bytes] = []
    prev = GENESIS_HASH
    for seq, payload in enumerate(payloads):
        encoded = codec.encode(
            EventEnvelope(
                event_id=str(uuid.uuid4()),
                run_id=run_id,
                seq=seq,
                occurred_at_us=T0 + seq,
                agent="bench",
                agent_version="1",
                causation_id="c" * 36,
                correlation_id="c" * 36,
                prev_hash=prev,
                payload=payload,
            )
        )
        prev = hash_encoded(encoded)
        out.append(encoded)
    return out


def finished_runs(codec: Codec, count: int) -> Iterator[tuple[str, list[bytes]]]:
    """Finished runs from one encoded template, the run id swapped in bytes (fast)."""
    started = RunStarted(input={"n": 1}, requested_by="bench", command_id="c" * 36)
    template = history(codec, TEMPLATE_ID, [started, RunCompleted(output={"ok": True})])
    needle = TEMPLATE_ID.encode()
    for i in range(count):
        run_id = f"done-{i:031d}"
        yield run_id, [value.replace(needle, run_id.encode()) for value in template]


def live_history(codec: Codec, run_id: str) -> list[bytes]:
    request = ApprovalRequest(kind="question", title="go on?", allowed=("respond",))
    return history(
        codec,
        run_id,
        [
            RunStarted(input={"n": 2}, requested_by="bench", command_id=str(uuid.uuid4())),
            ToolCallScheduled(
                call=0,
                tool="lookup",
                args={"n": 2},
                args_digest="d" * 64,
                idempotency_key=f"{run_id}:0",
                idempotent=True,
            ),
            ToolCallCompleted(call=0, result={"found": True}),
            InterruptRaised(call=1, interrupt_id=str(uuid.uuid4()), request=request),
        ],
    )


async def fill(event_log: KafkaLog, topics: Topics, finished: int, live: int) -> int:
    """Write the partition as a worker would have; returns the checkpoint's restore_from."""
    codec = Codec()
    horizon = Horizon(KEEP)
    batch: list[Outgoing] = []
    offset = 0

    async def flush() -> None:
        await event_log.publish(batch)
        batch.clear()

    def add(run_id: str, values: list[bytes], ends: bool) -> None:
        nonlocal offset
        horizon.found(run_id, offset)
        batch.extend(Outgoing(topics.runs, run_id, value, 0) for value in values)
        offset += len(values)
        if ends:
            horizon.finished(run_id)

    for run_id, values in finished_runs(codec, finished):
        add(run_id, values, ends=True)
        if len(batch) >= CHUNK:
            await flush()
    for i in range(live):
        add(f"live-{i:031d}", live_history(codec, f"live-{i:031d}"), ends=False)
        if len(batch) >= CHUNK:
            await flush()
    await flush()
    horizon.committed({}, offset)
    checkpoint = Checkpoint(restore_from=horizon.restore_from, consumed=None)
    await event_log.publish([Outgoing(topics.checkpoints, "0", Codec().encode(checkpoint), 0)])
    return checkpoint.restore_from


async def measure(
    event_log: KafkaLog, finished: int, live: int, from_zero: bool
) -> dict[str, float]:
    topics = Topics(f"bench{uuid.uuid4().hex[:6]}")
    await event_log.ensure_topics(topics, 1)
    began = time.perf_counter()
    restore_from = await fill(event_log, topics, finished, live)
    filled = time.perf_counter() - began
    codec = Codec()
    restored = await restore_partition(event_log, topics, codec, 0, keep_finished=KEEP)
    assert len(restored.live) == live, (len(restored.live), live)
    figures = {
        "fill_s": filled,
        "restore_from": restore_from,
        "read": restored.read,
        "live": len(restored.live),
        "kept_finished": len(restored.finished),
        "restore_s": restored.seconds,
    }
    if from_zero:
        await event_log.publish(
            [Outgoing(topics.checkpoints, "0", b'{"v":0}', 0)]  # unreadable: from offset 0
        )
        zero = await restore_partition(event_log, topics, codec, 0, keep_finished=KEEP)
        figures["from_zero_s"] = zero.seconds
        figures["from_zero_read"] = zero.read
    return figures


async def bench(bootstrap: str, finished: int, lives: list[int], from_zero: bool) -> None:
    event_log = KafkaLog(
        bootstrap, client_id="bench-restore", linger_ms=5, max_batch_bytes=1_000_000
    )
    await event_log.start()
    try:
        print(f"keep_finished_runs={KEEP} (the worker default)")
        for live in lives:
            for behind in (finished, 0):
                f = await measure(event_log, behind, live, from_zero and behind > 0)
                line = (
                    f"{live:>6} live behind {behind:>8} finished: restore {f['restore_s']:.2f} s "
                    f"(read {f['read']:.0f} records from offset {f['restore_from']:.0f}; "
                    f"{f['live']:.0f} live, {f['kept_finished']:.0f} finished kept); "
                    f"fill {f['fill_s']:.0f} s"
                )
                if "from_zero_s" in f:
                    line += (
                        f"; without checkpoint {f['from_zero_s']:.2f} s "
                        f"({f['from_zero_read']:.0f} records)"
                    )
                print(line, flush=True)
    finally:
        await event_log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--finished", type=int, default=1_000_000)
    parser.add_argument("--live", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--from-zero", action="store_true")
    args = parser.parse_args()
    bootstrap = os.environ.get("COUNTERSIGN_KAFKA_BOOTSTRAP")
    state_dir = None
    if not bootstrap:
        state_dir = Path(tempfile.mkdtemp(prefix="cs-bench-restore-"))
        bootstrap = local_kafka.start(state_dir, partitions=1).bootstrap
    try:
        asyncio.run(bench(bootstrap, args.finished, args.live, args.from_zero))
    finally:
        if state_dir is not None:
            local_kafka.stop(state_dir)
            shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
