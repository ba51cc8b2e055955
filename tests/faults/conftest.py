"""Fixtures of the fault-injection suite.

`fault_broker` is a Kafka broker of the suite's own (`countersign.local_kafka` in a state dir
of its own), not the session broker: the scenarios load it, stall clients on it and one of
them restarts it. It is started once for the suite and stopped at the end.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.log.kafka import KafkaLog
from engine.log.port import Topics
from tests.conftest import _or_fail
from tests.faults.figures import chaos_report, pytest_terminal_summary
from tests.faults.harness import PARTITIONS, Workers, worker_env

__all__ = ["chaos_report", "pytest_terminal_summary"]  # the figures' fixture and hook


@dataclass
class Broker:
    bootstrap: str
    state_dir: Path

    async def crash_and_restart(self, down_s: float) -> None:
        """SIGKILL the broker (no clean shutdown), wait `down_s`, start it again on the same
        data and ports."""
        from countersign import local_kafka

        pid = int((self.state_dir / "kafka.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        gone = asyncio.to_thread(local_kafka.stop, self.state_dir)  # reaps it, clears the pid
        await gone
        await asyncio.sleep(down_s)
        await asyncio.to_thread(local_kafka.start, self.state_dir, partitions=PARTITIONS)


@pytest.fixture(scope="session")
async def fault_broker(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Broker]:
    from countersign import local_kafka

    state_dir = tmp_path_factory.mktemp("fault-kafka")
    started = asyncio.to_thread(local_kafka.start, state_dir, partitions=PARTITIONS)
    broker = await _or_fail("could not start the fault suite's Kafka broker", started)
    try:
        yield Broker(broker.bootstrap, state_dir)
    finally:
        await asyncio.to_thread(local_kafka.stop, state_dir)


@pytest.fixture
def effects(tmp_path: Path) -> Path:
    return tmp_path / "effects.jsonl"


@pytest.fixture
def workers(
    fault_broker: Broker, fresh_prefix: str, effects: Path, tmp_path: Path
) -> Iterator[Workers]:
    pool = Workers(worker_env(fault_broker.bootstrap, fresh_prefix, effects), tmp_path)
    try:
        yield pool
    finally:
        pool.end_all()


@pytest.fixture
async def client(fault_broker: Broker, fresh_prefix: str) -> AsyncIterator[KafkaLog]:
    """The test's own connection (publishing commands, following topics)."""
    event_log = KafkaLog(fault_broker.bootstrap, client_id="chaos-operator")
    await event_log.start()
    try:
        await event_log.ensure_topics(Topics(fresh_prefix), PARTITIONS)
        yield event_log
    finally:
        await event_log.close()
