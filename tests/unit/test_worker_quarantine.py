"""Restore trusts nothing it cannot check: junk, forged-but-unchained and duplicated records
behind a waiting run and a finished run get both quarantined on restore (an event and a
notice); a quarantined run takes no decision and runs no tool; an operator's LiftQuarantine
lets it go on (and a later restore does not quarantine it again for the same records)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator

import pytest

from engine.log.memory import MemoryLog
from engine.log.port import Outgoing, Topics, partition_for
from engine.trust.access import Access
from engine.trust.gate import CommandGate
from engine.trust.loading import Trust
from events.codec import Codec
from events.commands import LiftQuarantine
from events.notices import QuarantineNotified
from events.run_events import (
    DecisionAccepted,
    QuarantineLifted,
    RunCompleted,
    RunQuarantined,
    ToolCallCompleted,
)
from tests.approvals_harness import Clock, Harness
from tests.unit.test_worker_fails_closed import RAN, app


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    event_log = MemoryLog(default_partitions=1)
    topics = Topics("quarantine")
    await event_log.ensure_topics(topics, 1)
    harness = Harness(event_log, topics, timeout=10.0)
    try:
        yield harness
    finally:
        await harness.halt_all()


def _ends(cls: type) -> object:
    return lambda payloads: bool(payloads) and isinstance(payloads[-1], cls)


async def _append(h: Harness, run_id: str, value: bytes) -> None:
    partition = partition_for(run_id, 1)
    await h.log.publish([Outgoing(h.topics.runs, run_id, value, partition)])


async def test_strays_quarantine_a_waiting_and_a_finished_run(h: Harness) -> None:
    codec = Codec()
    await h.start_worker(app, Clock())
    waiting = await h.publisher.start_run("pay", {"amount": 7}, requested_by="alice")
    [raised] = await h.open_interrupts(waiting, 1)
    done = await h.publisher.start_run("echo", {"text": "done"}, requested_by="alice")
    await h.wait_for(done, _ends(RunCompleted), "the finished run")
    await h.halt_all()

    # An insider appends behind both runs: junk, a forged approval that does not chain, and
    # a copy of the finished run's first record.
    events = await h.events(waiting)
    forged = dataclasses.replace(
        events[-1],
        seq=len(events),
        event_id=str(uuid.uuid4()),
        prev_hash="0" * 64,
        payload=DecisionAccepted(
            interrupt_id=raised.interrupt_id, decision_id="forged", kind="approve", decided_by="x"
        ),
    )
    await _append(h, waiting, b"\xc3\x01junk")
    await _append(h, waiting, codec.encode(forged))
    first_of_done = [r async for r in h.log.read(h.topics.runs, 0, 0) if r.key == done][:1]
    await _append(h, done, first_of_done[0].value)
    h.chain_only = True  # read what the engine trusts

    before = list(RAN)
    await h.start_worker(app, Clock())
    for run_id, strays in ((waiting, 2), (done, 1)):
        payloads = await h.wait_for(run_id, _ends(RunQuarantined), f"{run_id} quarantined")
        quarantined = payloads[-1]
        assert isinstance(quarantined, RunQuarantined)
        assert isinstance(quarantined.strays, list)
        assert len(quarantined.strays) == strays
        [notice] = [n for n in await h.notices(run_id) if isinstance(n, QuarantineNotified)]
        assert notice.strays == strays
    assert not any(isinstance(p, DecisionAccepted) for p in await h.payloads(waiting))

    # No decision, no tool.
    decision = await h.publisher.submit_decision(
        waiting, raised.interrupt_id, "approve", decided_by="bob"
    )
    outcome = await h.outcome(decision, waiting)
    assert outcome.status == "refused"
    assert "quarantined" in outcome.reason
    assert before == RAN

    # A restart does not quarantine them again for the same records.
    await h.halt_all()
    operators = Access.parse({"principals": {"Oscar": ["operator"]}})
    await h.start_worker(app, Clock(), trust=Trust(CommandGate(require_signed=False), operators))
    lift = LiftQuarantine(
        command_id="lift-1", run_id=waiting, lifted_by="oscar", issued_at_us=1, reason="checked"
    )
    await h.publisher.publish(lift)
    await h.wait_for(waiting, _ends(QuarantineLifted), "the quarantine is lifted")
    decision = await h.publisher.submit_decision(
        waiting, raised.interrupt_id, "approve", decided_by="bob"
    )
    payloads = await h.wait_for(waiting, _ends(RunCompleted), "the run goes on")
    assert sum(isinstance(p, RunQuarantined) for p in payloads) == 1
    assert sum(isinstance(p, ToolCallCompleted) for p in payloads) == 1
    assert RAN[len(before) :] == ["pay 7"]
    assert sum(isinstance(p, RunQuarantined) for p in await h.payloads(done)) == 1
