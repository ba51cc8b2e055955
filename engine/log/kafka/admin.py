"""Kafka cluster administration: readiness, topic creation, partition counts.

aiokafka's admin objects are untyped; they stay inside this module and callers get plain
Python values back.

Errors:
- ``TimeoutError`` — the cluster did not answer (or topics got no leaders) in time: retry
  later or check the broker;
- :class:`TopicPartitionMismatchError` — a topic exists with another partition count than
  required (the commands and runs topics must be co-partitioned): terminal, fix the topics;
- :class:`TopicCreationError` — the broker refused to create a topic: terminal, read the
  broker's reason.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

__all__ = [
    "TopicCreationError",
    "TopicPartitionMismatchError",
    "ensure_topics",
    "partition_counts",
    "topic_configs",
    "wait_until_ready",
]

_CLIENT_ID = "countersign-admin"
_ERROR_NONE = 0
_ERROR_UNKNOWN_TOPIC = 3
_ERROR_TOPIC_ALREADY_EXISTS = 36
_RETRY_S = 0.25


class TopicPartitionMismatchError(RuntimeError):
    """A topic exists with a different partition count than required."""


class TopicCreationError(RuntimeError):
    """The broker refused to create a topic."""


async def wait_until_ready(bootstrap: str, timeout_s: float = 60.0) -> None:
    """Return once the cluster at ``bootstrap`` answers a metadata request listing a broker.

    Retries until ``timeout_s`` has passed, then raises ``TimeoutError``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last_error: BaseException | None = None
    while (remaining := deadline - loop.time()) > 0:
        attempt = asyncio.timeout(remaining)
        try:
            async with attempt:
                # A bare TCP probe first: aiokafka logs an ERROR for every refused bootstrap.
                await _any_accepts_tcp(bootstrap)
                async with _admin(bootstrap, timeout_s=remaining) as admin:
                    cluster = await admin.describe_cluster()
            if cluster.get("brokers"):
                return
            last_error = RuntimeError("metadata lists no brokers yet")
        except (KafkaError, OSError) as error:  # TimeoutError is an OSError
            if attempt.expired():
                break
            last_error = error
        await asyncio.sleep(min(_RETRY_S, max(0.0, deadline - loop.time())))
    raise TimeoutError(
        f"Kafka at {bootstrap} did not answer a metadata request within {timeout_s:.1f}s "
        f"(last error: {last_error!r}); is the broker running and reachable?"
    )


async def partition_counts(bootstrap: str, topics: Sequence[str]) -> dict[str, int]:
    """The partition count of each of ``topics`` that exists (missing ones are left out)."""
    async with _admin(bootstrap) as admin:
        described = await _describe(admin, topics)
    return {name: len(partitions) for name, partitions in described.items()}


async def topic_configs(bootstrap: str, topic: str) -> dict[str, str]:
    """The effective configuration of ``topic`` (name -> value, as the broker reports it)."""
    async with _admin(bootstrap) as admin:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    configs: dict[str, str] = {}
    for response in responses:
        for _code, _message, _type, _name, entries in response.resources:
            for name, value, *_ in entries:
                configs[name] = value
    return configs


async def ensure_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    *,
    config: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> None:
    """Create the missing ``topics`` (name -> partition count; replication factor 1).

    Returns once metadata shows every topic with a leader for every partition. A topic
    that exists with another partition count raises :class:`TopicPartitionMismatchError`.
    """
    async with asyncio.timeout(timeout_s), _admin(bootstrap, timeout_s=timeout_s) as admin:
        existing = await _describe(admin, list(topics))
        _check_counts(topics, existing)
        missing = [name for name in topics if name not in existing]
        if missing:
            await _create(admin, {name: topics[name] for name in missing}, config or {})
        while True:
            described = await _describe(admin, list(topics))
            _check_counts(topics, described)  # someone else may have won the creation race
            if _all_led(topics, described):
                return
            await asyncio.sleep(_RETRY_S)


@contextlib.asynccontextmanager
async def _admin(bootstrap: str, *, timeout_s: float = 30.0) -> AsyncIterator[Any]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id=_CLIENT_ID,
        request_timeout_ms=max(1000, int(timeout_s * 1000)),
    )
    try:
        await admin.start()
        yield admin
    finally:
        await admin.close()


async def _any_accepts_tcp(bootstrap: str) -> None:
    errors: list[OSError] = []
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            _, writer = await asyncio.open_connection(host, int(port))
        except OSError as error:
            errors.append(error)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    raise OSError(f"no bootstrap server accepts connections: {errors}")


async def _describe(admin: Any, topics: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Partition metadata of the existing ``topics``.

    Asks for all topics: aiokafka's per-topic metadata request lets the broker auto-create
    the topics it names, which must never happen here.
    """
    wanted = set(topics)
    described: dict[str, list[dict[str, Any]]] = {}
    for entry in await admin.describe_topics(None):
        name = entry["topic"]
        if name in wanted and entry["error_code"] != _ERROR_UNKNOWN_TOPIC:
            described[name] = list(entry["partitions"])
    return described


async def _create(admin: Any, counts: Mapping[str, int], config: Mapping[str, str]) -> None:
    new_topics = [
        NewTopic(name, num_partitions=count, replication_factor=1, topic_configs=dict(config))
        for name, count in counts.items()
    ]
    response = await admin.create_topics(new_topics)
    for name, code, *rest in response.topic_errors:
        if code not in (_ERROR_NONE, _ERROR_TOPIC_ALREADY_EXISTS):
            reason = rest[0] if rest and rest[0] else f"error code {code}"
            raise TopicCreationError(f"Kafka refused to create topic {name!r}: {reason}")


def _check_counts(required: Mapping[str, int], described: Mapping[str, list[Any]]) -> None:
    for name, partitions in described.items():
        if len(partitions) != required[name]:
            raise TopicPartitionMismatchError(
                f"topic {name!r} has {len(partitions)} partitions, {required[name]} required "
                "(the commands and runs topics must be co-partitioned); use the existing count "
                "or delete and recreate the topic"
            )


def _all_led(required: Mapping[str, int], described: Mapping[str, list[dict[str, Any]]]) -> bool:
    return all(
        name in described
        and all(p["error_code"] == _ERROR_NONE and p["leader"] >= 0 for p in described[name])
        for name in required
    )
