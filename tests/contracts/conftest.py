"""Fixtures of the event-log contract suite: every test runs once per adapter.

`connect` returns a factory of *unstarted* connections to one log (a second connection is a
second process on the same log); `log` is a started connection with fresh `topics` ensured.
To add an adapter, write a factory like `_postgres` below and add one line to `ADAPTERS`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import pytest

from engine.log.kafka import KafkaLog
from engine.log.memory import MemoryLog
from engine.log.port import EventLog, Topics
from engine.log.postgres import PostgresLog

PARTITIONS = 4

Connect = Callable[[], EventLog]
Log = TypeVar("Log", bound=EventLog)


def _memory(request: pytest.FixtureRequest) -> Connect:
    shared = MemoryLog(default_partitions=PARTITIONS)  # in memory, every "process" shares one log
    return lambda: shared


def _kafka(request: pytest.FixtureRequest) -> Connect:
    bootstrap: str = request.getfixturevalue("kafka_bootstrap")
    # A short heartbeat lets members notice a rebalance fast; the rest are the defaults.
    return lambda: KafkaLog(bootstrap, heartbeat_interval_ms=250)


def _postgres(request: pytest.FixtureRequest) -> Connect:
    url: str = request.getfixturevalue("pg_url")
    schema: str = request.getfixturevalue("fresh_prefix")  # tables of its own per test
    # A short heartbeat lets members notice a rebalance fast, as for Kafka above.
    return lambda: PostgresLog(url, schema=schema, heartbeat_interval_s=0.25)


ADAPTERS = [
    pytest.param(_memory, id="memory"),
    pytest.param(_kafka, id="kafka", marks=pytest.mark.kafka),
    pytest.param(_postgres, id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=ADAPTERS)
def connect(request: pytest.FixtureRequest) -> Connect:
    factory: Callable[[pytest.FixtureRequest], Connect] = request.param
    return factory(request)


@pytest.fixture
def topics(fresh_prefix: str) -> Topics:
    return Topics(fresh_prefix)


@contextlib.asynccontextmanager
async def started(log: Log, topics: Topics) -> AsyncIterator[Log]:
    """`log` started, with `topics` ensured, closed on the way out."""
    await log.start()
    try:
        await log.ensure_topics(topics, PARTITIONS)
        yield log
    finally:
        await log.close()


@pytest.fixture
async def log(connect: Connect, topics: Topics) -> AsyncIterator[EventLog]:
    async with started(connect(), topics) as log:
        yield log
