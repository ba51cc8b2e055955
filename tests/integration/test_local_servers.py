"""The project's own local servers: a real Kafka broker and an embedded PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg  # noqa: TID251  (the test talks to the server directly, no adapter in between)
import pytest

from countersign import local_kafka
from engine.log.kafka import admin as kafka_admin
from tests.helpers import eventually


@pytest.mark.kafka
async def test_ensure_topics_creates_co_partitioned_topics(
    kafka_bootstrap: str, fresh_prefix: str
) -> None:
    topics = {f"{fresh_prefix}.commands": 4, f"{fresh_prefix}.runs": 4}

    await kafka_admin.ensure_topics(kafka_bootstrap, topics)
    await kafka_admin.ensure_topics(kafka_bootstrap, topics)  # a second call is a no-op

    counts = await kafka_admin.partition_counts(
        kafka_bootstrap, [*topics, f"{fresh_prefix}.missing"]
    )
    assert counts == topics
    with pytest.raises(kafka_admin.TopicPartitionMismatchError, match="co-partitioned"):
        await kafka_admin.ensure_topics(kafka_bootstrap, {f"{fresh_prefix}.runs": 8})


@pytest.mark.kafka
async def test_broker_restart_keeps_address_and_data(tmp_path: Path, fresh_prefix: str) -> None:
    state_dir = tmp_path / "kafka"
    topic = f"{fresh_prefix}.runs"
    try:
        first = await asyncio.to_thread(local_kafka.start, state_dir)
        await kafka_admin.ensure_topics(first.bootstrap, {topic: 2})
        assert await asyncio.to_thread(local_kafka.start, state_dir) == first  # already running

        assert await asyncio.to_thread(local_kafka.stop, state_dir)
        assert local_kafka.status(state_dir) is None
        await eventually(lambda: _refuses_connections(first.bootstrap), timeout=5.0)

        second = await asyncio.to_thread(local_kafka.start, state_dir)
        assert second.bootstrap == first.bootstrap
        assert second.pid != first.pid
        assert local_kafka.status(state_dir) == second
        await local_kafka.wait_until_ready(second.bootstrap, timeout_s=10.0)
        assert await kafka_admin.partition_counts(second.bootstrap, [topic]) == {topic: 2}
    finally:
        await asyncio.to_thread(local_kafka.stop, state_dir)
    assert local_kafka.status(state_dir) is None


async def test_wait_until_ready_times_out_on_a_dead_address() -> None:
    with pytest.raises(TimeoutError, match="did not answer"):
        await local_kafka.wait_until_ready("127.0.0.1:1", timeout_s=0.5)


@pytest.mark.postgres
async def test_pg_url_accepts_connections(pg_url: str) -> None:
    connection = await asyncpg.connect(pg_url)
    try:
        assert await connection.fetchval("select 1") == 1
    finally:
        await connection.close()


async def _refuses_connections(bootstrap: str) -> bool:
    host, _, port = bootstrap.rpartition(":")
    try:
        _, writer = await asyncio.open_connection(host, int(port))
    except OSError:
        return True
    writer.close()
    await writer.wait_closed()
    return False
