"""Shared fixtures: real servers for the integration tier, started only when asked for.

- ``kafka_bootstrap``: ``$COUNTERSIGN_TEST_KAFKA_BOOTSTRAP`` if set, else a local broker
  (``countersign.local_kafka``) in a temporary state dir, stopped at the end of the session.
- ``pg_url``: ``$COUNTERSIGN_TEST_DATABASE_URL`` if set, else an embedded PostgreSQL
  (``countersign.local_pg``) in a temporary dir, stopped at the end of the session.
- ``kafka_cluster``: a three-node local Kafka cluster (``countersign.local_kafka``,
  ``brokers=3``) for the failover tests, started only by the tests that ask for it and
  stopped at the end of the session.
- ``registry_url``: a local Apicurio Registry (``countersign.local_registry``), its
  Confluent-compatible API, stopped at the end of the session.

A server that cannot be provided fails the tests that need it (with the reason); it never
skips them, so a CI without Java or Maven shows red.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import hypothesis  # noqa: F401  # see below
import pytest

# Imported here, at collection, not first by hypothesis's plugin in pytest's closing summary:
# a run of tests that never import it (`-k kafka` on one file) otherwise had pytest rewrite
# and parse hypothesis at the summary's stack depth, where CPython 3.11.7's parser sometimes
# fails with "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905),
# and the run exits 1 after every test passed.

if TYPE_CHECKING:
    from tests.cluster import Cluster

KAFKA_ENV = "COUNTERSIGN_TEST_KAFKA_BOOTSTRAP"
DATABASE_ENV = "COUNTERSIGN_TEST_DATABASE_URL"
T = TypeVar("T")


@pytest.fixture(scope="session")
async def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """Bootstrap address of a ready Kafka broker for the whole session."""
    from countersign import local_kafka  # imported here: unit-only runs never load aiokafka

    configured = os.environ.get(KAFKA_ENV)
    if configured:
        ready = local_kafka.wait_until_ready(configured, timeout_s=30.0)
        await _or_fail(f"{KAFKA_ENV}={configured} is not usable", ready)
        yield configured
        return
    state_dir = tmp_path_factory.mktemp("kafka")
    started = asyncio.to_thread(local_kafka.start, state_dir)
    broker = await _or_fail("could not start the local Kafka broker", started)
    try:
        yield broker.bootstrap
    finally:
        await asyncio.to_thread(local_kafka.stop, state_dir)


@pytest.fixture(scope="session")
async def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    """A three-node cluster (combined KRaft nodes) for the whole session."""
    from countersign import local_kafka
    from tests.cluster import Cluster

    state_dir = tmp_path_factory.mktemp("kafka-cluster")
    started = asyncio.to_thread(local_kafka.start, state_dir, brokers=3, partitions=6)
    cluster = await _or_fail("could not start the local three-node Kafka cluster", started)
    try:
        yield Cluster(cluster.bootstrap, state_dir)
    finally:
        await asyncio.to_thread(local_kafka.stop, state_dir)


@pytest.fixture(scope="session")
async def pg_url() -> AsyncIterator[str]:
    """URL of a PostgreSQL database for the whole session."""
    from countersign import local_pg

    configured = os.environ.get(DATABASE_ENV)
    if configured:
        yield configured
        return
    # Not under pytest's tmp dir: as root, pgserver opens every ancestor of its data dir to
    # other users (o+rx), and pytest keeps its own tmp root private.
    root = Path(tempfile.mkdtemp(prefix="countersign-pg-"))
    data_dir = root / "data"
    try:
        started = asyncio.to_thread(local_pg.start_embedded, data_dir, stop_at_exit=True)
        yield await _or_fail("could not start the embedded PostgreSQL", started)
    finally:
        await asyncio.to_thread(local_pg.stop_embedded, data_dir)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
async def registry_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """Base URL of the Confluent API of a local Apicurio Registry (in-memory) for the session:
    fetched once into the cache (countersign.local_registry), stopped by its PID at the end."""
    import socket

    from countersign import local_registry

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    workdir = tmp_path_factory.mktemp("registry")
    started = asyncio.to_thread(local_registry.start_registry, port, workdir)
    registry = await _or_fail("could not start the local schema registry", started)
    try:
        yield registry.url
    finally:
        await asyncio.to_thread(registry.stop)


async def _or_fail(what: str, attempt: Awaitable[T]) -> T:
    """Await ``attempt``; on any error fail (never skip) the requesting tests with the reason."""
    try:
        return await attempt
    except Exception as error:
        reason = f"{what}: {error}"
    pytest.fail(reason, pytrace=False)  # outside `except`: no chained traceback noise


@pytest.fixture
def fresh_prefix() -> str:
    """A unique topic/name prefix (``t`` + 8 hex digits) so tests never collide."""
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture(autouse=True)
def _own_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the checkout's own `.countersign` (the default home, relative to the
    working directory): keys a developer made there once made `verify` expect anchors. A
    test that names a home of its own still gets it."""
    if "COUNTERSIGN_HOME" not in os.environ:
        monkeypatch.setenv("COUNTERSIGN_HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """A test that runs the CLI in-process configures structlog (level, renderer); the next
    test must not inherit that, or its `capture_logs` would miss filtered-out events."""
    import structlog

    saved = structlog.get_config()
    try:
        yield
    finally:
        structlog.configure(**saved)
