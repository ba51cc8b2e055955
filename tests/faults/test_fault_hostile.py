"""Scenario 8: hostile but well-formed commands, from a non-Java client, to two workers.

Every class of issue 9 is published by librdkafka (confluent-kafka on its default
partitioner: CRC32 of the key, a random partition for a key-less record) between the
operator's ordinary runs: JSON nested thousands of levels, a number that overflows a double,
an escaped lone surrogate, 600 kB decision kinds and names, an over-long varint, a negative
time, a value a policy cannot read (a string where the tool takes a number), and a flood of
refused decisions on a waiting run's question. Both workers stay up; each hostile command is
dead-lettered with its reason, or refused with an outcome, or refused as a failed tool call
the agent sees; the hostile run runs no tool; every ordinary run completes and nothing runs
twice.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Producer

from engine.core.executor import interrupt_id_for
from engine.core.gating import question_purpose
from engine.log.kafka import KafkaLog
from engine.log.port import Topics
from events.codec import Codec
from events.commands import StartRun, SubmitDecision
from examples.chaos import REQUESTER, app
from tests.faults.conftest import Broker
from tests.faults.harness import (
    Chaos,
    DeadLetter,
    Operator,
    Workers,
    dead_letters,
    figures_of,
    read_effects,
    read_runs,
    report,
    verify,
)
from tests.forge import forge
from tests.helpers import eventually
from tests.strategies import zigzag

pytestmark = [pytest.mark.faults, pytest.mark.kafka]

CODEC = Codec()
MARK = "PLACEHOLDER-JSON"


def _start(run_id: str, input_json: str) -> bytes:
    """A StartRun of the chaos agent whose input is exactly `input_json` (any text)."""
    message = StartRun(
        command_id=str(uuid.uuid4()),
        run_id=run_id,
        agent="chaos",
        input={"item": MARK},
        requested_by=REQUESTER,
        issued_at_us=1,
    )
    data = CODEC.encode(message)
    old = f'{{"item":"{MARK}"}}'.encode()
    new = input_json.encode("utf-8", "surrogatepass")
    assert data.count(zigzag(len(old)) + old) == 1
    return data.replace(zigzag(len(old)) + old, zigzag(len(new)) + new)


def _decision(run_id: str, interrupt_id: str = "i-hostile", **swaps: str) -> bytes:
    message = SubmitDecision(
        decision_id=str(uuid.uuid4()),
        run_id=run_id,
        interrupt_id=interrupt_id,
        kind="kind-placeholder",
        decided_by="who-placeholder",
        issued_at_us=123_456,
    )
    return forge(CODEC, message, **swaps)


def _stretched_varint(run_id: str) -> bytes:
    """issued_at_us spelled in 11 bytes (a varint wraps past 10)."""
    data = _decision(run_id, kind="approve", decided_by="bob")
    good = zigzag(123_456)
    assert data.count(good) == 1
    stretched = bytes(b | 0x80 for b in good) + b"\x80" * (10 - len(good)) + b"\x01"
    return data.replace(good, stretched)


def _negative_time(run_id: str) -> bytes:
    data = _decision(run_id, kind="approve", decided_by="bob")
    return data.replace(zigzag(123_456), zigzag(-5))


# Each hostile command, and what its dead letter's reason says (None: not dead-lettered).
HOSTILE: dict[str, tuple[Callable[[str], bytes], str | None]] = {
    "deep_json": (lambda r: _start(r, "[" * 5_000 + "]" * 5_000), "deeper than"),
    "overflowing_number": (lambda r: _start(r, '{"item": 1e400}'), "out of range"),
    "lone_surrogate": (lambda r: _start(r, '{"item": "\\ud800"}'), "surrogate"),
    "huge_kind": (lambda r: _decision(r, kind="k" * 600_000, decided_by="bob"), "kind"),
    "huge_name": (lambda r: _decision(r, kind="approve", decided_by="d" * 600_000), "decided_by"),
    "stretched_varint": (_stretched_varint, "varint"),
    "negative_time": (_negative_time, "negative"),
    "unreadable_amount": (lambda r: _start(r, '{"item": "25000"}'), None),
}


class Librdkafka:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self._producer = Producer({"bootstrap.servers": bootstrap})
        self._topic = topic

    def send(self, value: bytes, key: str | None) -> None:
        self._producer.produce(self._topic, value=value, key=key.encode() if key else None)
        assert self._producer.flush(30) == 0


async def test_hostile_commands_from_librdkafka_stop_no_worker(
    fault_broker: Broker,
    workers: Workers,
    client: KafkaLog,
    fresh_prefix: str,
    effects: Path,
    chaos_report: Callable[[str], None],
) -> None:
    chaos = Chaos.from_env("hostile", short_runs=24)
    topics = Topics(fresh_prefix)
    operator = Operator(client, topics, effects, chaos.rng())
    await operator.start()
    began = time.monotonic()
    hostile = Librdkafka(fault_broker.bootstrap, topics.commands)
    sent: dict[str, str] = {}
    try:
        for _ in range(2):
            workers.spawn()
        await operator.start_runs(chaos.runs // 2, every_s=0.05)
        for number, (kind, (build, _)) in enumerate(sorted(HOSTILE.items())):
            run_id = f"hostile-{kind}-{uuid.uuid4().hex[:6]}"
            sent[kind] = run_id
            hostile.send(build(run_id), key=run_id if number % 2 else None)
        flood_target = operator.runs[0]
        question = interrupt_id_for(flood_target, 3, question_purpose(0))  # the chaos agent's
        for _ in range(50):  # refused: the question takes only "respond"
            decision = _decision(flood_target, question, kind="approve", decided_by="mallory")
            hostile.send(decision, key=flood_target)
        await operator.start_runs(chaos.runs - chaos.runs // 2, every_s=0.05)
        await operator.until(operator.all_done, 120 + chaos.runs, "every ordinary run finished")
        wanted = sum(1 for _, reason in HOSTILE.values() if reason is not None)
        letters: list[DeadLetter] = await eventually(
            lambda: _letters(client, topics, wanted), timeout=60, message="the dead letters"
        )
    finally:
        await operator.close()

    reasons = {letter.value: letter.reason for letter in letters}
    wrong = []
    for kind, (_, expected) in HOSTILE.items():
        if expected is None:
            continue
        matching = [r for v, r in reasons.items() if sent[kind].encode() in v]
        if len(matching) != 1 or expected not in matching[0]:
            wrong.append(f"{kind}: {matching}")
    runs = await read_runs(fault_broker.bootstrap, topics)
    unreadable = runs.get(sent["unreadable_amount"], [])
    ran = [e for e in read_effects(effects) if e["key"].startswith(sent["unreadable_amount"])]
    verdict = verify(runs, operator.runs, operator.sent, read_effects(effects), app)
    figures = {
        "hostile_kinds": len(HOSTILE),
        "dead_lettered": len(letters),
        "dead_letters_wrong": len(wrong),
        "refused_flood": 50,
        "unreadable_run_events": len(unreadable),
        "unreadable_run_effects": len(ran),
        **figures_of(operator, workers, verdict, began),
    }
    report(chaos, figures, chaos_report)
    assert not wrong, wrong
    assert len(letters) == wanted
    assert unreadable, "the run with an unreadable value started (and was refused tool by tool)"
    assert ran == []
    assert len(workers.alive) == 2
    assert not workers.crashes()
    verdict.check()


async def _letters(client: KafkaLog, topics: Topics, count: int) -> list[DeadLetter] | None:
    await asyncio.sleep(0)
    found = await dead_letters(client, topics)
    return found if len(found) >= count else None
