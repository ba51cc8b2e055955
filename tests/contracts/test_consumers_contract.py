"""The consumers (approvals feed, dead letters) against a real worker, on every log adapter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from consumers import (
    ApprovalsFeed,
    CommandPublisher,
    DeadLetters,
    FeedTimeout,
    RequeueRefused,
)
from consumers.dead_letters import MARKER, REQUEUED_BY, REQUEUED_FROM
from engine.log.port import EventLog, Outgoing, Topics, partition_for
from engine.runtime.worker import Worker, WorkerSettings
from events.codec import Codec
from events.commands import CancelRun
from events.notices import ApprovalRequested, DecisionOutcome
from examples.refund import app
from tests.helpers import eventually

CODEC = Codec()
ORDER = {"order_id": "A-17", "amount": 2400}


@pytest.fixture
async def worker(log: EventLog, topics: Topics) -> AsyncIterator[None]:
    stop = asyncio.Event()
    settings = WorkerSettings(group=f"{topics.prefix}.workers", poll_timeout_s=0.05)
    task = asyncio.create_task(Worker(app, log, topics, CODEC, settings=settings).run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@pytest.mark.usefixtures("worker")
async def test_the_feed_reads_a_runs_request_and_the_outcome_of_its_decision(
    log: EventLog, topics: Topics
) -> None:
    feed = ApprovalsFeed(log, topics, CODEC)
    publisher = CommandPublisher(log, topics, CODEC)
    run_id = await publisher.start_run("refund", ORDER, requested_by="bob")
    # Someone else's bytes on the shared topic, before the request: skipped, not fatal.
    await log.publish([Outgoing(topics.approvals, run_id, b"not a notice")])

    request = await feed.first_request(run_id, timeout_s=60)
    position = await feed.position(run_id)
    decision_id = await publisher.submit_decision(
        run_id, request.interrupt_id, "approve", decided_by="alice"
    )
    outcome = await feed.outcome(decision_id, position, timeout_s=60)

    assert (request.run_id, request.request.tool, request.request.amount) == (
        run_id,
        "refund",
        2400.0,
    )
    assert (outcome.accepted, outcome.decided_by) == (True, "alice")
    kinds = [type(item.notice) async for item in feed.of_run(run_id)]
    assert kinds == [ApprovalRequested, DecisionOutcome]
    assert feed.skipped >= 1


async def test_the_feed_says_when_nothing_came(log: EventLog, topics: Topics) -> None:
    feed = ApprovalsFeed(log, topics, CODEC)

    with pytest.raises(FeedTimeout, match=r"no ApprovalRequested within 0\.5s"):
        await feed.first_request("no-such-run", timeout_s=0.5)


def _cancel(run_id: str) -> bytes:
    return CODEC.encode(
        CancelRun(command_id="c-1", run_id=run_id, cancelled_by="bob", issued_at_us=1, reason="")
    )


@pytest.mark.usefixtures("worker")
async def test_a_cancel_that_overtook_its_run_is_requeued_once_and_then_cancels_it(
    log: EventLog, topics: Topics
) -> None:
    letters = DeadLetters(log, topics)
    publisher = CommandPublisher(log, topics, CODEC)
    run_id = "r-" + topics.prefix
    sent = _cancel(run_id)
    await log.publish([Outgoing(topics.commands, run_id, sent)])

    [letter] = await eventually(letters.entries, timeout=60, message="no dead letter")
    commands = await log.partition_count(topics.commands)
    assert letter.reason == f"unknown run {run_id}"
    assert (letter.source_topic, letter.source_partition) == (
        topics.commands,
        partition_for(run_id, commands),
    )
    assert (await letters.get(letter.partition, letter.offset)).value == sent

    await publisher.start_run("refund", ORDER, requested_by="bob", run_id=run_id)
    await ApprovalsFeed(log, topics, CODEC).first_request(run_id, timeout_s=60)
    requeued = await letters.requeue(letter.partition, letter.offset, by="alice")

    async def cancelled() -> bool:
        partition = partition_for(run_id, await log.partition_count(topics.runs))
        records = log.read(topics.runs, partition, 0)
        return "RunCancelled" in [CODEC.decode_event(r.value).type async for r in records]

    await eventually(cancelled, timeout=60, message="the requeued cancel was not applied")
    [back] = [
        r
        async for r in log.read(topics.commands, requeued.partition, requeued.offset)
        if r.offset == requeued.offset
    ]
    assert back.value == sent
    assert back.header(REQUEUED_BY) == b"alice"
    assert back.header(REQUEUED_FROM) == (
        f"{topics.dlq}:{letter.partition}:{letter.offset}".encode()
    )
    [listed] = await letters.entries()  # the marker is not listed as an entry
    assert [(r.by, r.offset) for r in listed.requeues] == [("alice", requeued.offset)]

    with pytest.raises(RequeueRefused, match="already requeued by alice"):
        await letters.requeue(letter.partition, letter.offset, by="carol")
    await letters.requeue(letter.partition, letter.offset, by="carol", force=True)
    [again] = await letters.entries()
    assert [r.by for r in again.requeues] == ["alice", "carol"]


async def test_a_forged_marker_is_listed_as_an_entry_and_unknown_offsets_are_refused(
    log: EventLog, topics: Topics
) -> None:
    letters = DeadLetters(log, topics)
    await log.publish(
        [Outgoing(topics.dlq, "k", b"{not json", partition=0, headers=((MARKER, b"0"),))]
    )

    [entry] = await letters.entries()
    assert (entry.offset, entry.reason, entry.requeues) == (0, "(no reason given)", ())
    with pytest.raises(RequeueRefused, match="came from ''"):
        await letters.requeue(0, entry.offset, by="alice")
    with pytest.raises(RequeueRefused, match="no dead letter"):
        await letters.get(0, 99)
    with pytest.raises(RequeueRefused, match="has partitions"):
        await letters.entries(partition=42)
