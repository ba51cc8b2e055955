"""What proof costs: command signatures, anchors, and `verify` over a million events.

    .venv/bin/python bench/trust.py [--decisions 400] [--events 1000000]

In process, on the in-memory log (so the engine's own work is the whole denominator: a real
broker only adds time per decision and makes the proof's share smaller). Prints:
- the gate's check of one signed command (EdDSA and ES256): median µs;
- decisions/s through one worker, unsigned and signed (proofs made before the clock starts:
  signing is the sender's cost), and the share the signatures take;
- anchors: bytes on the anchors topic per byte on the runs topic, anchors written, and the
  decisions/s with anchoring on;
- personal values: sealing and opening one (docs/erasure.md);
- `verify` of the log against its anchors over `--events` events (synthetic runs of 10
  events, anchored every 256): seconds and events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from consumers.publisher import CommandPublisher  # noqa: E402
from engine.log.memory import MemoryLog  # noqa: E402
from engine.log.port import Outgoing, Topics  # noqa: E402
from engine.privacy.sealing import open_sealed, seal, sealed_of  # noqa: E402
from engine.trust.access import Access  # noqa: E402
from engine.trust.anchors import Anchor, anchor_hash, encode_anchor  # noqa: E402
from engine.trust.gate import CommandGate  # noqa: E402
from engine.trust.jws import SigningKey, generate_key  # noqa: E402
from engine.trust.loading import Trust  # noqa: E402
from engine.trust.signing import proof_header  # noqa: E402
from engine.trust.store import TrustStore  # noqa: E402
from events.codec import Codec  # noqa: E402
from events.commands import SubmitDecision  # noqa: E402
from events.envelope import GENESIS_HASH, EventEnvelope, hash_encoded  # noqa: E402
from events.run_events import RunCompleted, RunStarted, ValueRecorded  # noqa: E402
from examples import refund  # noqa: E402
from projections import MemoryStore  # noqa: E402
from projections.verify import AnchorCheck, verify_report  # noqa: E402
from tests.approvals_harness import Clock, Harness  # noqa: E402
from tests.helpers import eventually  # noqa: E402
from tests.tamper import _all_anchored  # noqa: E402

CODEC = Codec()


def store_of(*keys: SigningKey) -> TrustStore:
    return TrustStore.parse({"issuers": {k.issuer: {"keys": [k.public().jwk]} for k in keys}})


def check_cost(algorithm: str, n: int = 3000) -> float:
    key = generate_key("k", f"idp-{algorithm}", algorithm)
    gate = CommandGate(store_of(key))
    command = SubmitDecision(decision_id="d", run_id="r", interrupt_id="i", kind="approve",
                             decided_by="alice", issued_at_us=1)  # fmt: skip
    value = CODEC.encode(command)
    headers = (proof_header(value, command, key, now_s=int(time.time())),)
    now = int(time.time())
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        gate.check(command, value, headers, now)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


async def decisions_per_s(
    count: int, key: SigningKey | None, anchors: SigningKey | None
) -> tuple[float, int, int]:
    """Decisions/s through one in-process worker; the runs and anchors topics' bytes."""
    log = MemoryLog(default_partitions=4)
    topics = Topics(f"b{uuid.uuid4().hex[:6]}")
    await log.ensure_topics(topics, 4)
    h = Harness(log, topics, timeout=600.0)
    h.publisher = CommandPublisher(log, topics, CODEC, key=key)  # starts signed too
    gate = CommandGate(store_of(key), require_signed=True) if key else CommandGate(
        require_signed=False)  # fmt: skip
    clock = Clock(time.time_ns() // 1000)  # proofs are checked against it
    await h.start_worker(refund.app, clock, trust=Trust(gate, Access()), anchor_key=anchors)
    runs = [await h.publisher.start_run("refund", {"order_id": "A", "amount": 2400},
                                        requested_by="bob") for _ in range(count)]  # fmt: skip
    interrupts = [(await h.open_interrupts(r, 1))[0].interrupt_id for r in runs]
    batch = []
    for run_id, interrupt_id in zip(runs, interrupts, strict=True):
        command = SubmitDecision(decision_id=str(uuid.uuid4()), run_id=run_id,
                                 interrupt_id=interrupt_id, kind="approve", decided_by="alice",
                                 issued_at_us=1)  # fmt: skip
        value = CODEC.encode(command)
        headers = (CODEC.schema_header(value),)
        if key is not None:
            headers += (proof_header(value, command, key, now_s=int(time.time())),)
        batch.append(Outgoing(topics.commands, run_id, value, headers=headers))
    started = time.perf_counter()
    await log.publish(batch)
    for run_id in runs:
        await h.wait_for(run_id, lambda p: isinstance(p[-1], RunCompleted), "done")
    elapsed = time.perf_counter() - started
    if anchors is not None:  # the tail too, as an idle worker anchors it
        await eventually(lambda: _all_anchored(log, topics), timeout=60.0, message="anchored")
    await h.halt_all()
    return count / elapsed, await _bytes(log, topics.runs), await _bytes(log, topics.anchors)


async def _bytes(log: MemoryLog, topic: str) -> int:
    total = 0
    for partition in range(await log.partition_count(topic)):
        async for record in log.read(topic, partition, 0):
            total += len(record.value)
    return total


def synthetic_log(events: int, key: SigningKey, every: int = 256) -> MemoryLog:
    """`events` events in runs of 10 on one partition, anchored every `every` events."""
    log = MemoryLog(default_partitions=1)
    topics = Topics("v")
    asyncio.run(log.ensure_topics(topics, 1))
    runs_out, anchors_out, pending = [], [], {}
    seq, prev_anchor = 0, ""
    run_id, prev, number = "", GENESIS_HASH, 10
    for n in range(events):
        if number == 10:
            run_id, prev, number = str(uuid.uuid4()), GENESIS_HASH, 0
        payload = RunStarted(input={}, requested_by="bob", command_id="c") if number == 0 else (
            ValueRecorded(call=number, kind="now", value=n))  # fmt: skip
        envelope = EventEnvelope(event_id=str(n), run_id=run_id, seq=number, occurred_at_us=n,
                                 agent="a", agent_version="1", causation_id="c",
                                 correlation_id="c", prev_hash=prev, payload=payload)  # fmt: skip
        value = CODEC.encode(envelope)
        prev = hash_encoded(value)
        runs_out.append(Outgoing(topics.runs, run_id, value, 0))
        pending[run_id] = (number, prev)
        number += 1
        if len(runs_out) % every == 0:
            anchor = Anchor(partition=0, seq=seq, prev=prev_anchor, heads=pending,
                            through=len(runs_out) - every, events=every)  # fmt: skip
            encoded = encode_anchor(anchor, key)
            anchors_out.append(Outgoing(topics.anchors, "0", encoded, 0))
            seq, prev_anchor, pending = seq + 1, anchor_hash(encoded), {}
    asyncio.run(log.publish(runs_out))
    asyncio.run(log.publish(anchors_out))
    return log


async def verify_time(log: MemoryLog, key: SigningKey) -> float:
    check = AnchorCheck(topic="v.anchors", keys={key.kid: key.public()})
    started = time.perf_counter()
    report = await verify_report(log, "v.runs", MemoryStore(schema="public"), CODEC, anchors=check)
    elapsed = time.perf_counter() - started
    assert report.ok, [b for v in report.runs for b in v.breaks][:3]
    return elapsed


def sealing_cost(n: int = 5000) -> tuple[float, float]:
    """(seal, open) of one personal value (an e-mail address), median µs (docs/erasure.md)."""
    key = os.urandom(32)
    sealed, opened = [], []
    for i in range(n):
        started = time.perf_counter()
        box = seal(key, os.urandom(12), subject="cust-7", run_id="r", path="args.email",
                   value=f"ada{i}@example.org")  # fmt: skip
        middle = time.perf_counter()
        found = sealed_of(box)
        assert found is not None
        open_sealed(found, key, "r")
        sealed.append(middle - started)
        opened.append(time.perf_counter() - middle)
    return statistics.median(sealed) * 1e6, statistics.median(opened) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=400)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    print(f"gate check, EdDSA: {check_cost('EdDSA'):.0f} µs median per command")
    print(f"gate check, ES256: {check_cost('ES256'):.0f} µs median per command")
    eddsa = check_cost("EdDSA")
    key = generate_key("k", "idp")
    worker_key = generate_key("w", "countersign-worker")
    configs = {"unsigned": (None, None), "signed": (key, None), "anchored": (key, worker_key)}
    rates: dict[str, list[float]] = {name: [] for name in configs}
    sizes = (0, 0)
    for _ in range(args.rounds):  # interleaved: the machine's load drifts
        for name, (signer, anchors) in configs.items():
            rate, runs_bytes, anchor_bytes = asyncio.run(
                decisions_per_s(args.decisions, signer, anchors)
            )
            rates[name].append(rate)
            if anchors is not None:
                sizes = (runs_bytes, anchor_bytes)
    plain, signed, anchored = (statistics.median(rates[n]) for n in configs)
    share = eddsa / (1e6 / plain)
    print(f"decisions/s, one worker in process (median of {args.rounds}): unsigned {plain:.0f}, "
          f"signed {signed:.0f}, signed and anchored {anchored:.0f}")  # fmt: skip
    print(f"one EdDSA check is {share:.1%} of the time one unsigned decision takes "
          f"({eddsa:.0f} µs of {1e6 / plain:.0f} µs)")  # fmt: skip
    runs_bytes, anchor_bytes = sizes
    print(f"anchors (every 256 events or 2 s): {anchor_bytes:,} bytes on the anchors topic for "
          f"{runs_bytes:,} bytes on the runs topic ({anchor_bytes / runs_bytes:.1%})")  # fmt: skip
    sealing, opening = sealing_cost()
    print(f"personal values (AES-256-GCM per value): seal {sealing:.1f} µs, "
          f"open {opening:.1f} µs median")  # fmt: skip
    started = time.perf_counter()
    log = synthetic_log(args.events, worker_key)
    print(f"made {args.events:,} anchored events in {time.perf_counter() - started:.0f} s")
    seconds = asyncio.run(verify_time(log, worker_key))
    print(f"verify against anchors, {args.events:,} events: {seconds:.1f} s "
          f"({args.events / seconds:,.0f} events/s; log side, projections empty)")  # fmt: skip


if __name__ == "__main__":
    main()
