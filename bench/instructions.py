"""Instructions per operation on the hot paths, counted by valgrind's callgrind.

On a shared, loaded machine wall-clock figures move twofold between runs; instruction counts
move by well under 1 %. Each workload runs twice under callgrind (N operations and none):
the difference over N is the count for one operation (interpreter start-up and set-up
cancel out). Needs `valgrind` (Debian: apt-get install valgrind).

    .venv/bin/python bench/instructions.py [workload ...] [--root DIR]

`--root` runs the same workloads against another checkout (e.g. `git archive` of an older
commit), so a before/after compares like with like.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The projector's pure path over one batch of `bench/projections.py`'s runs (200 runs of ~11
# events, interleaved as they are published): what `Projector._item` and the store's `apply`
# compute between their round trips to the log and PostgreSQL.
_PROJECTOR_BATCH = """
import random
from bench.projections import CODEC, DAY, encode_run
from events.envelope import hash_encoded
from projections import applying
from projections.batch import LoggedEvent
from projections.fold import event_row, fold
from projections.store_tables import AUDIT, EVENTS, INTERRUPTS, RUNS
try:
    from projections.event_record import event_record
except ImportError:  # a checkout from before event_record: what the store did then
    def event_record(event):
        return EVENTS.record(event_row(event))
rng = random.Random(42)
runs = [encode_run(n, rng, 90 * DAY) for n in range(200)]
raw = [r[i][1] for i in range(max(map(len, runs))) for r in runs if i < len(r)][:2000]
def item(offset, value):
    envelope = CODEC.decode_event(value)
    return LoggedEvent(
        envelope=envelope, partition=0, offset=offset, hash=hash_encoded(value), raw=value
    )
"""

# A refund decision through one worker in process on the in-memory log, so the engine's own
# work is the whole count (a broker only adds to it). The same runs wait in both counts: an
# operation decides the next one and waits for its two commits (the schedule, the result).
DECISIONS = """
import asyncio, atexit, gc, itertools, time, uuid
import structlog
from consumers.publisher import CommandPublisher
from engine.core.executor import Services
from engine.log.memory import MemoryLog
from engine.log.port import Outgoing, Topics
from engine.runtime.worker import Worker, WorkerSettings
from engine.telemetry import NoMetrics, Telemetry
from engine.trust.access import Access
from engine.trust.gate import CommandGate
from engine.trust.jws import generate_key
from engine.trust.loading import Trust
from engine.trust.signing import proof_header
from engine.trust.store import TrustStore
from events.codec import Codec
from events.commands import SubmitDecision
from examples import refund
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # as bench/trust.py
class Commits(NoMetrics):
    count, target, reached = 0, -1, None
    def committed(self, seconds):
        self.count += 1
        if self.count == self.target:
            self.reached.set()
SIGNED, POOL = {signed}, {pool}
loop = asyncio.new_event_loop()
codec, log, topics, commits = Codec(), MemoryLog(default_partitions=1), Topics("i"), Commits()
key = generate_key("k", "idp")
store = TrustStore.parse({{"issuers": {{key.issuer: {{"keys": [key.public().jwk]}}}}}})
ids, now_us = itertools.count(), time.time_ns() // 1000
services = Services(clock_us=lambda: now_us, random=lambda: 0.5,
                    new_uuid=lambda: str(uuid.UUID(int=next(ids))))
worker = Worker(refund.app, log, topics, codec, services=services,
                settings=WorkerSettings(group="i.w", poll_timeout_s=5.0),
                trust=Trust(CommandGate(store, require_signed=SIGNED), Access()),
                telemetry=Telemetry(metrics=commits))
stop = asyncio.Event()
def waiting(run_id):
    state = worker._table.state_of(0, run_id)
    return state is not None and state.status == "waiting"
async def start():
    await log.ensure_topics(topics, 1)
    task = asyncio.create_task(worker.run(stop))
    publisher = CommandPublisher(log, topics, codec, key=key if SIGNED else None)
    runs = [await publisher.start_run("refund", {{"order_id": "A", "amount": 2400}},
                                      requested_by="bob") for _ in range(POOL)]
    while not all(waiting(r) for r in runs):
        await log.wait_for_change(1.0)
    for _ in range(100):  # the last step's commit
        await asyncio.sleep(0)
    return task, runs
task, runs = loop.run_until_complete(start())
gc.collect()  # the set-up's objects frozen: a full collection over them, landing in one count
gc.freeze()   # and not the other, moved the figure by ~5 %
atexit.register(lambda: (stop.set(), loop.run_until_complete(task)))
pending = []
for number, run_id in enumerate(runs):
    (interrupt_id,) = worker._table.state_of(0, run_id).open_interrupts
    command = SubmitDecision(decision_id=str(uuid.UUID(int=number + 2**64)), run_id=run_id,
                             interrupt_id=interrupt_id, kind="approve", decided_by="alice",
                             issued_at_us=1)
    value = codec.encode(command)
    headers = (codec.schema_header(value),)
    if SIGNED:
        headers += (proof_header(value, command, key, now_s=now_us // 10**6),)
    pending.append(Outgoing(topics.commands, run_id, value, headers=headers))
async def decide():
    commits.target, commits.reached = commits.count + 2, asyncio.Event()
    live = worker.live_run_count()
    await log.publish([pending.pop()])
    await commits.reached.wait()
    assert worker.live_run_count() == live - 1, "the run did not complete"
op = lambda: loop.run_until_complete(decide())
"""

# name → (operations, Python that sets up `op` in the checkout at sys.path[0])
WORKLOADS: dict[str, tuple[int, str]] = {
    "encode interrupt_raised": (
        200,
        """
from events.codec import Codec
from tests.unit.golden import PAYLOADS
c = Codec(); m = c.decode((PAYLOADS / "interrupt_raised.bin").read_bytes())
op = lambda: c.encode(m)
""",
    ),
    "encode tool_call_completed": (
        200,
        """
from events.codec import Codec
from tests.unit.golden import PAYLOADS
c = Codec(); m = c.decode((PAYLOADS / "tool_call_completed.bin").read_bytes())
op = lambda: c.encode(m)
""",
    ),
    "decode interrupt_raised": (
        200,
        """
from events.codec import Codec
from tests.unit.golden import PAYLOADS
c = Codec(); d = (PAYLOADS / "interrupt_raised.bin").read_bytes()
op = lambda: c.decode(d)
""",
    ),
    "decode tool_call_completed": (
        200,
        """
from events.codec import Codec
from tests.unit.golden import PAYLOADS
c = Codec(); d = (PAYLOADS / "tool_call_completed.bin").read_bytes()
op = lambda: c.decode(d)
""",
    ),
    "decode replay event (1,000-event run, per event)": (
        2,
        """
import bench.replay as r
started, history = r.build_history(1000)
blobs = r.envelopes(history); c = r.Codec()
op = lambda: [c.decode(b) for b in blobs]
""",
    ),
    "rebuild 1,000-event run, decoded": (
        3,
        """
import bench.replay as r
started, history = r.build_history(1000)
op = lambda: r.rebuild(started, history)
""",
    ),
    "fold 1,000 events into RunState": (
        3,
        """
import bench.replay as r
from engine.core.state import evolve
started, history = r.build_history(1000)
envs = [r.Codec().decode(b) for b in r.envelopes(history)]
def op():
    s = None
    for e in envs:
        s = evolve(s, e)
""",
    ),
    "decode a refund's 5 events": (
        100,
        """
from bench.refund_events import Codec, refund_events
c = Codec(); run, encoded = refund_events(c)
op = lambda: [c.decode_event(e) for e in encoded]
""",
    ),
    "pack a refund's 5 events (release_waiting)": (
        100,
        """
from bench.refund_events import Codec, refund_events
from engine.core.packed import PackedHistory
c = Codec(); run, encoded = refund_events(c)
op = lambda: PackedHistory(encoded, c.decode_event)
""",
    ),
    "unpack a refund's 5 events (release_waiting)": (
        100,
        """
from bench.refund_events import Codec, refund_events
from engine.core.packed import PackedHistory
c = Codec(); run, encoded = refund_events(c); packed = PackedHistory(encoded, c.decode_event)
op = lambda: packed.unpack()
""",
    ),
    "projector: decode a batch of 2,000 records": (
        2,
        _PROJECTOR_BATCH + "op = lambda: [item(o, v) for o, v in enumerate(raw)]\n",
    ),
    "projector: fold and rows of a batch of 2,000 events": (
        3,
        _PROJECTOR_BATCH
        + """
events = [item(o, v) for o, v in enumerate(raw)]
def op():
    chained, _ = applying.chained(events, {})
    [event_record(e) for e in chained]
    folded = fold({}, chained)
    RUNS.params(folded.runs), INTERRUPTS.params(folded.interrupts), AUDIT.records(folded.audit)
""",
    ),
    "a signed refund decision, one worker in process": (
        100,
        DECISIONS.format(signed=True, pool=101),
    ),
    "an unsigned refund decision, one worker in process": (
        100,
        DECISIONS.format(signed=False, pool=101),
    ),
}
PER_EVENT = {
    "decode replay event (1,000-event run, per event)": 1001,
    "fold 1,000 events into RunState": 1001,
    "projector: decode a batch of 2,000 records": 2000,
    "projector: fold and rows of a batch of 2,000 events": 2000,
}

RUNNER = """
import sys
sys.path.insert(0, {root!r})
{setup}
op()  # warm, in both runs: one-off costs (a schema's reader compiled on first use) cancel out
for _ in range({count}):
    op()
"""


def count(root: Path, setup: str, operations: int) -> int:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
        script.write(RUNNER.format(root=str(root), setup=setup, count=operations))
    try:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
             script.name],
            capture_output=True, text=True, cwd=root, check=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )  # fmt: skip
    finally:
        os.unlink(script.name)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(done.stderr[-2000:])
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workloads", nargs="*", help="names (substrings) to run; all if none")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to measure")
    args = parser.parse_args()
    chosen = [w for w in WORKLOADS if not args.workloads or any(s in w for s in args.workloads)]
    print(f"instructions per operation (callgrind), checkout {args.root}")
    for name in chosen:
        operations, setup = WORKLOADS[name]
        spent = count(args.root, setup, operations) - count(args.root, setup, 0)
        per_op = spent / operations
        per_event = PER_EVENT.get(name)
        extra = f"  ({per_op / per_event:,.0f} per event)" if per_event else ""
        print(f"  {name:<52}{per_op:>14,.0f}{extra}", flush=True)


if __name__ == "__main__":
    main()
