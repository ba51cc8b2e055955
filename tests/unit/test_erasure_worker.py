"""Crypto-shredding through real workers on the in-memory log: personal values reach the log
only sealed; after `erase` the audit still verifies, a waiting run of the erased subject
restores and resumes (its tool refuses the erased values cleanly), and the worker goes on."""

from __future__ import annotations

from engine.log.memory import MemoryLog
from engine.log.port import Topics
from engine.privacy.keys import MemorySubjectKeys
from engine.privacy.sealing import ERASED, SEALED
from events.run_events import (
    RunCompleted,
    RunEventPayload,
    RunFailed,
    ToolCallCompleted,
    ToolCallFailed,
)
from examples import crm
from projections.verify import verify_report
from tests.approvals_harness import Clock, Harness
from tests.unit.test_tamper import project

TOPICS = Topics("erasure")


def ended(payloads: list[RunEventPayload]) -> bool:
    return bool(payloads) and isinstance(payloads[-1], RunCompleted | RunFailed)


async def started(h: Harness, customer: str) -> str:
    return await h.publisher.start_run("voucher", {"customer_id": customer}, requested_by="bob")


async def approve(h: Harness, run_id: str) -> list[RunEventPayload]:
    [raised] = await h.open_interrupts(run_id, 1)
    await h.publisher.submit_decision(run_id, raised.interrupt_id, "approve", decided_by="alice")
    return await h.wait_for(run_id, ended, f"{run_id} ends")


async def records(log: MemoryLog) -> list[list[bytes]]:
    """Each runs partition's record values."""
    count = await log.partition_count(TOPICS.runs)
    return [[r.value async for r in log.read(TOPICS.runs, p, 0)] for p in range(count)]


async def log_bytes(log: MemoryLog) -> bytes:
    return b"".join(value for partition in await records(log) for value in partition)


async def test_personal_values_are_sealed_and_an_erased_subject_still_replays() -> None:
    log = MemoryLog(default_partitions=2)
    await log.ensure_topics(TOPICS, 2)
    keys = MemorySubjectKeys()
    h = Harness(log, TOPICS)
    await h.start_worker(crm.app, Clock(), subject_keys=keys)
    done = await started(h, "cust-7")
    waiting = await started(h, "cust-8")
    payloads = await approve(h, done)
    await h.open_interrupts(waiting, 1)

    assert isinstance(payloads[-1], RunCompleted)
    assert payloads[-1].output == {"voucher": "ok", "reason": ""}
    raw = await log_bytes(log)
    assert b"Ada Lovelace" not in raw
    assert b"example.org" not in raw
    [lookup] = [p for p in payloads if isinstance(p, ToolCallCompleted) and p.call == 0]
    assert isinstance(lookup.result, dict)
    assert SEALED in lookup.result["name"]  # type: ignore[operator]
    assert lookup.result["tier"] == "gold"

    await h.halt_all()
    before = await records(log)
    await keys.erase("cust-8")
    await h.start_worker(crm.app, Clock(), subject_keys=keys)  # restores the waiting run
    after = await approve(h, waiting)

    [refused] = [p for p in after if isinstance(p, ToolCallFailed)]
    assert refused.error_type == "PersonalDataErased"
    assert "cust-8" in refused.error
    assert isinstance(after[-1], RunCompleted)
    reason = f"PersonalDataErased: {refused.error}"
    assert after[-1].output == {"voucher": "failed", "reason": reason}

    again = await started(h, "cust-8")  # a new run for the erased subject: never processed
    failed = await h.wait_for(again, ended, "the erased subject's new run ends")
    assert isinstance(failed[-1], RunFailed)
    [lookup_refused] = [p for p in failed if isinstance(p, ToolCallFailed)]
    assert lookup_refused.error_type == "PersonalDataErased"
    other = await started(h, "cust-9")  # and the worker goes on for everyone else
    assert isinstance((await approve(h, other))[-1], RunCompleted)
    await h.halt_all()

    store = await project(log, TOPICS.runs)
    report = await verify_report(log, TOPICS.runs, store, h.codec)
    assert report.ok, [b.what for v in report.runs for b in v.breaks]
    for was, now in zip(before, await records(log), strict=True):
        assert now[: len(was)] == was  # erasure never touches what the log holds
    assert not any(ERASED.encode() in value for partition in before for value in partition)
