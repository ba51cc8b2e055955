"""The insider's toolbox, and clean histories for them to doctor.

`clean_history` runs real workers (in-process, anchoring with a worker key) over an event
log: seeded random runs of the refund example, some paused for a person and decided, some
cancelled, a worker handing its partitions to another mid-way; it returns once every event
is anchored. The `DOCTORS` each take the runs and anchors records of one partition (plain
values: what someone with write access to the log's storage can read) and return them
doctored the way an insider would — consistently: a rewritten event is re-encoded and every
later event of its run re-chained, so each run's own hash chain still holds — with the
label `verify` must name. Installing the doctored records (in memory, or with SQL on the
embedded PostgreSQL) is the caller's.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from engine.log.port import EventLog, Topics
from engine.trust.anchors import Anchor, encode_anchor, read_anchor
from engine.trust.jws import SigningKey, generate_key
from events.codec import Codec
from events.envelope import GENESIS_HASH, EventEnvelope, hash_encoded
from events.run_events import DecisionAccepted, RunCompleted, RunStarted
from examples import refund
from tests.approvals_harness import Clock, Harness
from tests.helpers import eventually

CODEC = Codec()
WORKER_KEY = generate_key("worker-test", "countersign-worker")
ROGUE_KEY = generate_key("worker-test", "countersign-worker")  # same names, another key


@dataclass(frozen=True)
class Row:
    """One record of a partition: what the storage holds (offsets are positions)."""

    key: str | None
    value: bytes


async def clean_history(
    event_log: EventLog, topics: Topics, rng: random.Random, *, runs: int = 6
) -> list[str]:
    """Seeded random runs through real workers; returns the run ids once all is anchored."""
    h = Harness(event_log, topics, timeout=20.0)
    every = rng.choice([1, 2, 3, 5, 8, 256])

    async def worker() -> None:
        await h.start_worker(
            refund.app, Clock(), anchor_key=WORKER_KEY, anchor_every_events=every,
            anchor_every_s=rng.choice([0.05, 0.1, 0.3]),
        )  # fmt: skip

    await worker()
    run_ids = []
    paused = []
    for n in range(runs):
        amount = 2400 if n == 0 else rng.choice([100, 300, 900, 2400])  # one approval at least
        run_id = await h.publisher.start_run(
            "refund", {"order_id": f"A-{rng.randrange(99)}", "amount": amount}, requested_by="bob"
        )
        run_ids.append(run_id)
        if amount > 500:
            paused.append(run_id)
    if rng.random() < 0.5:
        for run_id in paused:
            await h.open_interrupts(run_id, 1)
        await h.halt_all()  # the next worker reads the partitions back, anchors and all
        await worker()
    for run_id in paused:
        [raised] = await h.open_interrupts(run_id, 1)
        choice = 0.0 if run_id == run_ids[0] else rng.random()
        if choice < 0.6:
            await h.publisher.submit_decision(
                run_id, raised.interrupt_id, "approve", decided_by="alice"
            )
        elif choice < 0.8:
            await h.publisher.submit_decision(
                run_id, raised.interrupt_id, "reject", decided_by="alice", reason="no"
            )
        else:
            await h.publisher.cancel_run(run_id, cancelled_by="bob")
    for run_id in run_ids:
        await h.wait_for(run_id, lambda p: bool(p) and _ended(p[-1]), f"{run_id} ends")
    await eventually(lambda: _all_anchored(event_log, topics), timeout=20.0, message="anchored")
    await h.halt_all()
    return run_ids


def _ended(payload: object) -> bool:
    return type(payload).__name__ in ("RunCompleted", "RunCancelled", "RunFailed")


async def _all_anchored(event_log: EventLog, topics: Topics) -> bool:
    for partition in range(await event_log.partition_count(topics.runs)):
        events = [r async for r in event_log.read(topics.runs, partition, 0)]
        heads: dict[str, int] = {}
        async for record in event_log.read(topics.anchors, partition, 0):
            for run_id, (seq, _) in read_anchor(record.value, None).heads.items():
                heads[run_id] = max(heads.get(run_id, -1), seq)
        for record in events:
            envelope = CODEC.decode_event(record.value)
            if heads.get(envelope.run_id, -1) < envelope.seq:
                return False
    return True


# -- doctoring --------------------------------------------------------------------------------

Doctor = Callable[[random.Random, list[Row], list[Row]], tuple[list[Row], list[Row], str] | None]
"""(rng, runs rows, anchors rows) → doctored (runs, anchors, the label verify must name), or
None when the partition offers nothing to doctor that way."""


def _events(rows: list[Row]) -> dict[str, list[tuple[int, EventEnvelope]]]:
    """Each run's events (row index, envelope), by seq."""
    runs: dict[str, list[tuple[int, EventEnvelope]]] = {}
    for index, row in enumerate(rows):
        envelope = CODEC.decode_event(row.value)
        runs.setdefault(envelope.run_id, []).append((index, envelope))
    return {r: sorted(e, key=lambda x: x[1].seq) for r, e in runs.items()}


def _rechain(rows: list[Row], events: list[tuple[int, EventEnvelope]], start: int) -> None:
    """Re-encode a run's events from position `start` with prev_hash re-made (in place)."""
    prev = GENESIS_HASH if start == 0 else hash_encoded(rows[events[start - 1][0]].value)
    for index, envelope in events[start:]:
        value = CODEC.encode(replace(envelope, prev_hash=prev))
        rows[index] = Row(rows[index].key, value)
        prev = hash_encoded(value)


def rewrite_decision(rng: random.Random, runs: list[Row], anchors: list[Row]):  # type: ignore[no-untyped-def]
    by_run = _events(runs)
    decided = [
        (run_id, i) for run_id, events in by_run.items()
        for i, (_, e) in enumerate(events) if isinstance(e.payload, DecisionAccepted)
    ]  # fmt: skip
    if not decided:
        return None
    run_id, position = rng.choice(decided)
    events = by_run[run_id]
    index, envelope = events[position]
    payload = replace(envelope.payload, decided_by="mallory")  # type: ignore[type-var]
    events[position] = (index, replace(envelope, payload=payload))
    runs = list(runs)
    _rechain(runs, events, position)
    return runs, anchors, "changed"


def delete_run(rng: random.Random, runs: list[Row], anchors: list[Row]):  # type: ignore[no-untyped-def]
    by_run = _events(runs)
    if not by_run:
        return None
    victim = rng.choice(sorted(by_run))
    gone = {index for index, _ in by_run[victim]}
    return [r for i, r in enumerate(runs) if i not in gone], anchors, "deleted"


def truncate_run(rng: random.Random, runs: list[Row], anchors: list[Row]):  # type: ignore[no-untyped-def]
    by_run = _events(runs)
    candidates = [r for r, events in by_run.items() if len(events) > 1]
    if not candidates:
        return None
    events = by_run[rng.choice(sorted(candidates))]
    keep = rng.randrange(1, len(events))
    gone = {index for index, _ in events[keep:]}
    return [r for i, r in enumerate(runs) if i not in gone], anchors, "truncated"


def swap_runs(rng: random.Random, runs: list[Row], anchors: list[Row]):  # type: ignore[no-untyped-def]
    """Two runs exchange an event (each made to name its new run and re-chained)."""
    by_run = _events(runs)
    if len(by_run) < 2:
        return None
    a, b = rng.sample(sorted(by_run), 2)
    ia = rng.randrange(1, len(by_run[a])) if len(by_run[a]) > 1 else 0
    ib = rng.randrange(1, len(by_run[b])) if len(by_run[b]) > 1 else 0
    (xa, ea), (xb, eb) = by_run[a][ia], by_run[b][ib]
    if type(ea.payload) is type(eb.payload) and ea.payload == eb.payload:
        return None
    by_run[a][ia] = (xa, replace(ea, payload=eb.payload))
    by_run[b][ib] = (xb, replace(eb, payload=ea.payload))
    runs = list(runs)
    _rechain(runs, by_run[a], ia)
    _rechain(runs, by_run[b], ib)
    return runs, anchors, "changed"


def reorder_run(rng: random.Random, runs: list[Row], anchors: list[Row]):  # type: ignore[no-untyped-def]
    """Two events of one run change places (their seqs swapped, the chain re-made)."""
    by_run = _events(runs)
    candidates = [r for r, events in by_run.items() if len(events) > 2]
    if not candidates:
        return None
    events = by_run[rng.choice(sorted(candidates))]
    i, j = sorted(rng.sample(range(1, len(events)), 2))
    (xi, ei), (xj, ej) = events[i], events[j]
    if ei.payload == ej.payload:
        return None
    events[i], events[j] = (xi, replace(ej, seq=ei.seq)), (xj, replace(ei, seq=ej.seq))
    runs = list(runs)
    _rechain(runs, events, i)
    return runs, anchors, "changed"


def insert_run(rng: random.Random, runs: list[Row], anchors: list[Row]):  # type: ignore[no-untyped-def]
    """A whole forged run, well chained, slipped in among the anchored records."""
    through = max((read_anchor(a.value, None).through for a in anchors), default=0)
    if not runs or through < 1:
        return None
    run_id = f"forged-{uuid.UUID(int=rng.getrandbits(128))}"
    started = EventEnvelope(
        event_id=str(uuid.UUID(int=rng.getrandbits(128))), run_id=run_id, seq=0,
        occurred_at_us=1, agent="refund", agent_version="1", causation_id="c",
        correlation_id="c", prev_hash=GENESIS_HASH,
        payload=RunStarted(input={}, requested_by="mallory", command_id="c"),
    )  # fmt: skip
    first = CODEC.encode(started)
    done = CODEC.encode(replace(started, seq=1, prev_hash=hash_encoded(first),
                                payload=RunCompleted(output="paid")))  # fmt: skip
    at = rng.randrange(0, min(through, len(runs)))  # inside what the anchors cover
    return [*runs[:at], Row(run_id, first), Row(run_id, done), *runs[at:]], anchors, "unsigned span"


def delete_anchor(rng: random.Random, runs: list[Row], anchors: list[Row]):  # type: ignore[no-untyped-def]
    if len(anchors) < 2:
        return None
    at = rng.randrange(0, len(anchors) - 1)  # not the last: that one nobody can tell from lag
    return runs, anchors[:at] + anchors[at + 1 :], "missing: deleted"


def forge_anchor(rng: random.Random, runs: list[Row], anchors: list[Row]):  # type: ignore[no-untyped-def]
    """An anchor re-signed with a key the deployment does not trust (after a rewrite)."""
    if not anchors:
        return None
    at = rng.randrange(0, len(anchors))
    anchor: Anchor = read_anchor(anchors[at].value, None)
    forged = Row(anchors[at].key, encode_anchor(anchor, ROGUE_KEY))
    return runs, [*anchors[:at], forged, *anchors[at + 1 :]], "unsigned span"


DOCTORS: dict[str, Doctor] = {
    "rewrite a decision and re-chain": rewrite_decision,
    "delete a whole run": delete_run,
    "truncate a run": truncate_run,
    "swap two runs' events": swap_runs,
    "reorder a run's events": reorder_run,
    "insert a forged run": insert_run,
    "delete an anchor": delete_anchor,
    "re-sign an anchor with another key": forge_anchor,
}


def signing_key() -> SigningKey:
    return WORKER_KEY
