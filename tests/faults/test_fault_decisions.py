"""Scenario 5: duplicate and conflicting decisions at scale. Every interrupt gets its right
decision three times (one decision id) and conflicting ones from racing approvers, all at
once, while a worker is killed now and then. One outcome per interrupt; each decision id
applied once, and answered once per copy sent (an outcome notice for each command, no
more: commands are handled exactly once); re-running each run's code against its history,
twice, reproduces exactly its recorded ending."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.core.executor import Replayer, Services
from engine.log.kafka import KafkaLog
from engine.log.port import Topics
from events.codec import Codec
from events.envelope import EventEnvelope
from events.notices import DecisionOutcome
from events.run_events import DecisionAccepted, DecisionRejected, InterruptRaised, RunStarted
from examples.chaos import app
from tests.faults.conftest import Broker
from tests.faults.harness import (
    PARTITIONS,
    Chaos,
    Operator,
    Workers,
    chaos_kills,
    figures_of,
    read_effects,
    read_runs,
    report,
    verify,
)

pytestmark = [pytest.mark.faults, pytest.mark.kafka]

COPIES = 3


async def racing_people(op: Operator, raised: EventEnvelope, interrupt: InterruptRaised) -> None:
    """The right decision three times, and two conflicting ones, shuffled, all at once."""
    kind = interrupt.request.kind
    if kind == "in_doubt":
        await op.settle_in_doubt(raised, interrupt)
        return
    if kind == "question":
        right = ("respond", "operator", 3)
        others = [("respond", "operator-2", 4), ("respond", "operator-3", 5)]
    else:
        right = ("approve", "approver", None)
        others = [("reject", "approver-2", None), ("approve", "approver-3", None)]
    sends = [right] * COPIES + others
    op.rng.shuffle(sends)
    await asyncio.gather(
        *(
            op.decide(
                raised,
                interrupt,
                kind,
                by=by,
                response=response,
                decision_id=f"{interrupt.interrupt_id[:24]}-{by}",
            )
            for kind, by, response in sends
        )
    )


def replayed_ending(history: list[EventEnvelope]) -> list[object]:
    """What the agent code appends when re-run against the history before its last event."""
    started = history[0].payload
    assert isinstance(started, RunStarted)
    spec = app.find_agent(history[0].agent, history[0].agent_version)
    assert spec is not None
    services = Services(clock_us=lambda: 0, new_uuid=lambda: "x", random=lambda: 0.5)
    replayer = Replayer(app, spec, history[0].run_id, started, services)
    replayer.feed(event.payload for event in history[:-1])
    step = replayer.advance()
    assert step.effects == []
    return list(step.events)


async def outcome_notices(client: KafkaLog, topics: Topics) -> dict[str, list[bool]]:
    codec = Codec()
    found: dict[str, list[bool]] = {}
    for partition in range(PARTITIONS):
        async for record in client.read(topics.approvals, partition, 0):
            notice = codec.decode_notice(record.value)
            if isinstance(notice, DecisionOutcome):
                found.setdefault(notice.decision_id, []).append(notice.accepted)
    return found


async def test_duplicate_and_conflicting_decisions_have_one_outcome_each(
    fault_broker: Broker,
    workers: Workers,
    client: KafkaLog,
    fresh_prefix: str,
    effects: Path,
    chaos_report: Callable[[str], None],
) -> None:
    chaos = Chaos.from_env("decisions", short_runs=80)
    rng = chaos.rng()
    topics = Topics(fresh_prefix)
    operator = Operator(client, topics, effects, rng)
    operator.plan = racing_people
    await operator.start()
    began = time.monotonic()
    try:
        for _ in range(3):
            workers.spawn()
        starting = asyncio.create_task(operator.start_runs(chaos.runs, every_s=0.15))
        killing = asyncio.create_task(
            chaos_kills(workers, operator, rng, budget=max(2, chaos.runs // 40))
        )
        await starting
        await operator.until(operator.all_done, 120 + chaos.runs * 0.5, "every run finished")
        killed = await killing
    finally:
        await operator.close()

    runs = await read_runs(fault_broker.bootstrap, topics)
    verdict = verify(runs, operator.runs, operator.sent, read_effects(effects), app)
    verdicts: Counter[str] = Counter()
    outcomes_per_interrupt: Counter[str] = Counter()
    replays_differing = 0
    for events in runs.values():
        history = [event for _, _, event, _ in events]
        for event in history:
            if isinstance(event.payload, DecisionAccepted):
                verdicts["accepted"] += 1
                outcomes_per_interrupt[event.payload.interrupt_id] += 1
            elif isinstance(event.payload, DecisionRejected):
                verdicts["refused"] += 1
        ending = [history[-1].payload]
        if replayed_ending(history) != ending or replayed_ending(history) != ending:
            replays_differing += 1
    notices = await outcome_notices(client, topics)
    copies = Counter(
        {d: COPIES if d.endswith(("-operator", "-approver")) else 1 for d in operator.sent}
    )
    answered_wrongly = [d for d in operator.sent if len(notices.get(d, [])) != copies[d]]
    inconsistent = [d for d, seen in notices.items() if len(set(seen)) > 1]
    figures = {
        **killed,
        "decision_commands_sent": sum(copies.values()),
        "interrupts": len(outcomes_per_interrupt),
        "accepted": verdicts["accepted"],
        "refused": verdicts["refused"],
        "interrupts_with_two_outcomes": sum(1 for n in outcomes_per_interrupt.values() if n > 1),
        "decisions_not_answered_once_per_copy": len(answered_wrongly),
        "decisions_answered_inconsistently": len(inconsistent),
        "replays_differing": replays_differing,
        **figures_of(operator, workers, verdict, began),
    }
    report(chaos, figures, chaos_report)
    verdict.check()
    assert figures["interrupts_with_two_outcomes"] == 0
    assert not inconsistent, inconsistent[:5]
    assert replays_differing == 0
    assert not workers.crashes()
    # Even across kills: a command's outcome notice commits with its consumed offset.
    assert not answered_wrongly, answered_wrongly[:5]
