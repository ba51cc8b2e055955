"""Bad input on real Kafka: every kind of undecodable or invalid command goes to the
dead-letter topic with its source topic, partition, offset and the reason, while one worker
process keeps serving the good runs around it, within bounded memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.log.kafka import KafkaLog
from engine.log.port import Topics
from events.codec import Codec
from examples.chaos import app
from tests.faults.harness import (
    PARTITIONS,
    POISON_LIMIT,
    POISON_REASONS,
    Chaos,
    Operator,
    Workers,
    command_at,
    dead_letters,
    peak_rss_mb,
    poison,
    read_effects,
    read_runs,
    verify,
    worker_env,
)
from tests.helpers import eventually

pytestmark = pytest.mark.kafka


async def test_bad_commands_are_dead_lettered_with_their_source_and_reason(
    kafka_bootstrap: str, fresh_prefix: str, tmp_path: Path
) -> None:
    topics = Topics(fresh_prefix)
    effects = tmp_path / "effects.jsonl"
    env = worker_env(kafka_bootstrap, fresh_prefix, effects)
    env["COUNTERSIGN_MAX_MESSAGE_BYTES"] = str(POISON_LIMIT)
    workers = Workers(env, tmp_path)
    client = KafkaLog(kafka_bootstrap, client_id="bad-input-test")
    await client.start()
    await client.ensure_topics(topics, PARTITIONS)
    operator = Operator(client, topics, effects, Chaos("bad-input", 1, 0).rng())
    await operator.start()
    worker = workers.spawn()
    codec = Codec()
    sources: dict[tuple[int, int], str] = {}
    try:
        for kind in sorted(POISON_REASONS):
            await operator.start_runs(1)
            bad = poison(kind, codec, f"bad-{kind}", topics.commands)
            at = await operator.publish_raw(bad)
            sources[(at.partition, at.offset)] = kind
        await operator.start_runs(2)
        await operator.until(operator.all_done, 90, "the good runs finished")
        letters = await eventually(lambda: _all_letters(client, topics, len(sources)), timeout=30)

        assert {(d.source_partition, d.source_offset) for d in letters} == set(sources)
        for letter in letters:
            kind = sources[(letter.source_partition, letter.source_offset)]
            assert letter.source_topic == topics.commands
            assert POISON_REASONS[kind] in letter.reason, (kind, letter.reason)
            source = await command_at(client, topics, letter.source_partition, letter.source_offset)
            assert letter.value == source  # the bytes as they came, for a person to look at
        runs = await read_runs(kafka_bootstrap, topics)
        verify(runs, operator.runs, operator.sent, read_effects(effects), app).check()
        assert worker.alive
        assert peak_rss_mb(worker.pid) < 400  # 2**40 declared items were never allocated
    finally:
        await operator.close()
        workers.end_all()
        await client.close()
    assert not workers.crashes()


async def _all_letters(client: KafkaLog, topics: Topics, count: int) -> list[object] | None:
    letters = await dead_letters(client, topics)
    return letters if len(letters) >= count else None
