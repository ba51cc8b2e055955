"""Record the golden histories: the examples' runs, through the real worker on the in-memory
log, exported as history files beside this script (with `index.json`: file → app).

    .venv/bin/python -m tests.histories.record

The files are committed; `tests/unit/test_golden_histories.py` replays every one against
today's code. Record them again only when a change is meant to break replay (and say so).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from engine.agent.app import App
from engine.log.memory import MemoryLog
from engine.log.port import Topics, partition_for
from events.history_file import write_history
from events.json import JsonObject
from examples import (
    approve_before_commit,
    collaborative,
    email_review,
    exception_based,
    payments,
    refund,
)
from tests.approvals_harness import Clock, Harness

HERE = Path(__file__).resolve().parent

Scenario = Callable[[Harness, str], Awaitable[None]]
"""Drives one run (already started, id given) to where it is recorded."""


async def _decide_open(h: Harness, run_id: str, kind: str, by: str, **fields: object) -> None:
    [raised] = await h.open_interrupts(run_id, 1)
    decision = await h.publisher.submit_decision(
        run_id,
        raised.interrupt_id,
        kind,
        decided_by=by,
        **fields,  # type: ignore[arg-type]
    )
    await h.outcome(decision, run_id)


def _then(*steps: Callable[[Harness, str], Awaitable[None]]) -> Scenario:
    async def run(h: Harness, run_id: str) -> None:
        for step in steps:
            await step(h, run_id)

    return run


def _decision(kind: str, by: str, **fields: object) -> Callable[[Harness, str], Awaitable[None]]:
    async def step(h: Harness, run_id: str) -> None:
        await _decide_open(h, run_id, kind, by, **fields)

    return step


async def _waits(h: Harness, run_id: str) -> None:
    await h.open_interrupts(run_id, 1)


async def _finishes(h: Harness, run_id: str) -> None:
    await h.wait_for(
        run_id, lambda ps: bool(ps) and type(ps[-1]).__name__ == "RunCompleted", "the end"
    )


SCENARIOS: list[tuple[str, str, App, str, JsonObject, Scenario]] = [
    (
        "refund-approved",
        "examples.refund:app",
        refund.app,
        "refund",
        {"order_id": "A-17", "amount": 2400},
        _then(_decision("approve", "alice", reason="checked the order"), _finishes),
    ),
    (
        "refund-waiting",
        "examples.refund:app",
        refund.app,
        "refund",
        {"order_id": "A-18", "amount": 900},
        _waits,
    ),
    (
        "refund-small",
        "examples.refund:app",
        refund.app,
        "refund",
        {"order_id": "A-19", "amount": 120},
        _finishes,
    ),
    (
        "refund-rejected",
        "examples.refund:app",
        refund.app,
        "refund",
        {"order_id": "A-20", "amount": 5000},
        _then(_decision("reject", "alice", reason="already refunded"), _finishes),
    ),
    (
        "email-edited",
        "examples.email_review:app",
        email_review.app,
        "email",
        {"customer": "Ann", "to": "ann@example.com"},
        _then(
            _decision(
                "edit",
                "bob",
                edited_args={
                    "to": "ann@example.com",
                    "subject": "Your refund",
                    "body": "Dear Ann, your refund is on its way.",
                },
            ),
            _finishes,
        ),
    ),
    (
        "offsite-own-answer",
        "examples.collaborative:app",
        collaborative.app,
        "offsite",
        {"team": "support", "budget": 3000},
        _then(
            _decision("respond", "alice", response={"choice": "own", "text": "Picnic"}),
            _finishes,
        ),
    ),
    (
        "price-update-approved",
        "examples.approve_before_commit:app",
        approve_before_commit.app,
        "price-update",
        {"sku_prefix": "TEA-", "percent": 10},
        _then(_decision("approve", "bob"), _finishes),
    ),
    (
        "invoice-sync-budget",
        "examples.exception_based:app",
        exception_based.app,
        "invoice-sync",
        {"batches": ["b1", "b2", "b3"], "budget": 2.5},
        _then(_decision("respond", "ops-lead", response="budget raised"), _finishes),
    ),
    (
        "payout-notify-and-approve",
        "examples.payments:app",
        payments.app,
        "payout",
        {
            "payments": [
                {"payee": "a", "amount": 10, "confidence": 0.99},
                {"payee": "b", "amount": 20, "confidence": 0.85},
                {"payee": "c", "amount": 30, "confidence": 0.6},
            ]
        },
        _then(_decision("approve", "bob"), _finishes),
    ),
]


async def record_all(directory: Path) -> dict[str, str]:
    index: dict[str, str] = {}
    for name, spec, app, agent, run_input, scenario in SCENARIOS:
        event_log = MemoryLog(default_partitions=2)
        topics = Topics("golden")
        await event_log.ensure_topics(topics, 2)
        harness = Harness(event_log, topics, timeout=30.0)
        try:
            await harness.start_worker(app, Clock())
            run_id = await harness.publisher.start_run(
                agent, run_input, requested_by="requester", run_id=f"golden-{name}"
            )
            await scenario(harness, run_id)
            partition = partition_for(run_id, 2)
            raws = [
                r.value async for r in event_log.read(topics.runs, partition, 0) if r.key == run_id
            ]
        finally:
            await harness.halt_all()
        (directory / f"{name}.cshist").write_bytes(write_history(harness.codec, raws))
        index[f"{name}.cshist"] = spec
    return index


def main() -> None:
    index = asyncio.run(record_all(HERE))
    (HERE / "index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    for name in sorted(index):
        print(f"recorded {name} ({index[name]})")


if __name__ == "__main__":
    main()
