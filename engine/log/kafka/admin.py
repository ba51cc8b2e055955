"""Kafka cluster administration: readiness, topics (create, grow, describe), ACLs (I/O).

aiokafka's admin objects are untyped; they stay inside this module and callers get plain
Python values back (`engine.log.kafka.plan`'s `Observed`, counts, names). Every function
takes a bootstrap address or a `Connection` (bootstrap plus TLS/SASL).

Errors:
- ``TimeoutError`` — the cluster did not answer (or topics got no leaders) in time: retry
  later or check the broker;
- :class:`TopicPartitionMismatchError` — a topic exists with another partition count than
  required (the commands and runs topics must be co-partitioned): terminal, fix the topics;
- :class:`TopicCreationError` — the broker refused to create or grow a topic, or an ACL:
  terminal, read the broker's reason.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import CreateAclsRequest

from engine.log.kafka.acls import Acl
from engine.log.kafka.connection import Connection
from engine.log.kafka.plan import DEVELOPMENT_RACK, Observed, ObservedTopic, TopicSpec
from engine.log.kafka.security import client_security

__all__ = [
    "TopicCreationError",
    "TopicPartitionMismatchError",
    "add_partitions",
    "apply",
    "broker_count",
    "create_acls",
    "describe",
    "ensure_topics",
    "partition_counts",
    "replicas",
    "topic_configs",
    "wait_until_ready",
]

Target = str | Connection

_CLIENT_ID = "countersign-admin"
_ERROR_NONE = 0
_ERROR_UNKNOWN_TOPIC = 3
_ERROR_TOPIC_ALREADY_EXISTS = 36
_RETRY_S = 0.25
_RESOURCE_TYPES = {"topic": 2, "group": 3, "cluster": 4, "transactional_id": 5}
_PATTERNS = {"literal": 3, "prefixed": 4}
_OPERATIONS = {
    "all": 2, "read": 3, "write": 4, "create": 5, "delete": 6, "alter": 7, "describe": 8,
    "cluster_action": 9, "describe_configs": 10, "alter_configs": 11, "idempotent_write": 12,
}  # fmt: skip
_ALLOW = 3


class TopicPartitionMismatchError(RuntimeError):
    """A topic exists with a different partition count than required."""


class TopicCreationError(RuntimeError):
    """The broker refused to create or grow a topic (or an ACL)."""


async def wait_until_ready(target: Target, timeout_s: float = 60.0, *, brokers: int = 1) -> None:
    """Return once the cluster answers a metadata request listing at least `brokers` brokers.

    Retries until ``timeout_s`` has passed, then raises ``TimeoutError``.
    """
    connection = Connection.of(target)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last_error: BaseException | None = None
    while (remaining := deadline - loop.time()) > 0:
        attempt = asyncio.timeout(remaining)
        try:
            async with attempt:
                # A bare TCP probe first: aiokafka logs an ERROR for every refused bootstrap.
                reachable = Connection(await _accepting(connection.bootstrap), connection.security)
                async with _admin(reachable, timeout_s=remaining) as admin:
                    cluster = await admin.describe_cluster()
            if len(cluster.get("brokers") or ()) >= brokers:
                return
            last_error = RuntimeError(f"metadata lists {len(cluster.get('brokers') or ())} "
                                      f"of {brokers} brokers yet")  # fmt: skip
        except (KafkaError, OSError) as error:  # TimeoutError is an OSError
            if attempt.expired():
                break
            last_error = error
        await asyncio.sleep(min(_RETRY_S, max(0.0, deadline - loop.time())))
    raise TimeoutError(
        f"Kafka at {connection.bootstrap} did not answer a metadata request within "
        f"{timeout_s:.1f}s (last error: {last_error!r}); is the broker running and reachable?"
    )


async def broker_count(target: Target) -> int:
    async with _admin(Connection.of(target)) as admin:
        cluster = await admin.describe_cluster()
    return len(cluster.get("brokers") or ())


async def partition_counts(target: Target, topics: Sequence[str]) -> dict[str, int]:
    """The partition count of each of ``topics`` that exists (missing ones are left out)."""
    async with _admin(Connection.of(target)) as admin:
        described = await _describe(admin, topics)
    return {name: len(partitions) for name, partitions in described.items()}


async def replicas(
    target: Target, topics: Sequence[str]
) -> dict[tuple[str, int], tuple[int, tuple[int, ...]]]:
    """(leader, in-sync replicas) of every partition of the existing ``topics``; leader -1:
    none (the partition is offline)."""
    async with _admin(Connection.of(target)) as admin:
        described = await _describe(admin, topics)
    return {
        (name, p["partition"]): (p["leader"], tuple(sorted(p["isr"])))
        for name, partitions in described.items()
        for p in partitions
    }


async def topic_configs(target: Target, topic: str) -> dict[str, str]:
    """The effective configuration of ``topic`` (name -> value, as the broker reports it)."""
    async with _admin(Connection.of(target)) as admin:
        return (await _configs(admin, [topic])).get(topic, {})


async def describe(target: Target, topics: Sequence[str]) -> Observed:
    """The brokers, and each of ``topics`` that exists: partitions, replicas, settings."""
    async with _admin(Connection.of(target)) as admin:
        cluster = await admin.describe_cluster()
        described = await _describe(admin, topics)
        configs = await _configs(admin, list(described))
    brokers = cluster.get("brokers") or ()
    return Observed(
        brokers=len(brokers),
        development=bool(brokers) and all(b.get("rack") == DEVELOPMENT_RACK for b in brokers),
        topics={
            name: ObservedTopic(
                name=name,
                partitions=len(partitions),
                replicas=min((len(p["replicas"]) for p in partitions), default=0),
                configs=configs.get(name, {}),
            )
            for name, partitions in described.items()
        },
    )


async def ensure_topics(
    target: Target,
    topics: Mapping[str, int],
    *,
    config: Mapping[str, str] | None = None,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the missing ``topics`` (name -> partition count); return the names created.

    Returns once metadata shows every topic with a leader for every partition. A topic
    that exists with another partition count raises :class:`TopicPartitionMismatchError`.
    """
    connection = Connection.of(target)
    async with asyncio.timeout(timeout_s), _admin(connection, timeout_s=timeout_s) as admin:
        existing = await _describe(admin, list(topics))
        _check_counts(topics, existing)
        missing = [name for name in topics if name not in existing]
        if missing:
            specs = [
                TopicSpec(name, topics[name], replication_factor, dict(config or {}), purpose="")
                for name in missing
            ]
            await _create(admin, specs)
        await _until_led(admin, topics)
    return missing


async def apply(
    target: Target, specs: Sequence[TopicSpec], *, timeout_s: float = 60.0
) -> list[str]:
    """Create the topics of ``specs`` that do not exist yet; return the names created.
    Existing topics are left as they are (`plan.check` says what differs)."""
    connection = Connection.of(target)
    async with asyncio.timeout(timeout_s), _admin(connection, timeout_s=timeout_s) as admin:
        existing = await _describe(admin, [spec.name for spec in specs])
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            await _create(admin, missing)
        await _until_led(admin, {spec.name: spec.partitions for spec in specs})
    return [spec.name for spec in missing]


async def add_partitions(
    target: Target, totals: Mapping[str, int], *, timeout_s: float = 60.0
) -> dict[str, int]:
    """Grow each topic to its total partition count (topics already there are left alone);
    return the counts before."""
    connection = Connection.of(target)
    async with asyncio.timeout(timeout_s), _admin(connection, timeout_s=timeout_s) as admin:
        before = {name: len(p) for name, p in (await _describe(admin, list(totals))).items()}
        grow = {
            name: NewPartitions(total_count=total)
            for name, total in totals.items()
            if before.get(name, total) < total
        }
        missing = sorted(set(totals) - set(before))
        if missing:
            raise TopicCreationError(f"cannot add partitions to missing topics {missing}")
        if grow:
            try:
                await admin.create_partitions(grow)
            except KafkaError as error:
                raise TopicCreationError(f"Kafka refused to add partitions: {error}") from error
        await _until_led(admin, totals, growing=True)
    return before


async def create_acls(target: Target, acls: Iterable[Acl]) -> int:
    """Allow each of ``acls`` (existing ones are kept; creating one twice is harmless)."""
    count = 0
    async with _admin(Connection.of(target)) as admin:
        for acl in acls:
            principal, kind, name, pattern, operation = acl.as_tuple()
            request = CreateAclsRequest(
                _RESOURCE_TYPES[kind], name, _PATTERNS[pattern], principal, "*",
                _OPERATIONS[operation], _ALLOW,
            )  # fmt: skip
            # aiokafka's admin has no ACL call: its request is sent as create_topics sends its own.
            response = await admin._send_request(request)
            for code, message in response.creation_responses:
                if code != _ERROR_NONE:
                    raise TopicCreationError(
                        f"Kafka refused ACL {operation} on {kind} {name} for {principal}: "
                        f"{message or f'error code {code}'}"
                    )
            count += 1
    return count


@contextlib.asynccontextmanager
async def _admin(connection: Connection, *, timeout_s: float = 30.0) -> AsyncIterator[Any]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=connection.bootstrap,
        client_id=_CLIENT_ID,
        request_timeout_ms=max(1000, int(timeout_s * 1000)),
        **client_security(connection.security),
    )
    try:
        await admin.start()
        yield admin
    finally:
        await admin.close()


async def _accepting(bootstrap: str) -> str:
    """The first of the bootstrap addresses that accepts a TCP connection."""
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
        return address.strip()
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


async def _configs(admin: Any, topics: Sequence[str]) -> dict[str, dict[str, str]]:
    if not topics:
        return {}
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in topics]
    configs: dict[str, dict[str, str]] = {}
    for response in await admin.describe_configs(resources):
        for _code, _message, _type, name, entries in response.resources:
            configs[name] = {entry[0]: entry[1] for entry in entries}
    return configs


async def _create(admin: Any, specs: Sequence[TopicSpec]) -> None:
    new_topics = [
        NewTopic(
            spec.name,
            num_partitions=spec.partitions,
            replication_factor=spec.replication_factor,
            topic_configs=dict(spec.configs),
        )
        for spec in specs
    ]
    response = await admin.create_topics(new_topics)
    for name, code, *rest in response.topic_errors:
        if code not in (_ERROR_NONE, _ERROR_TOPIC_ALREADY_EXISTS):
            reason = rest[0] if rest and rest[0] else f"error code {code}"
            raise TopicCreationError(f"Kafka refused to create topic {name!r}: {reason}")


async def _until_led(admin: Any, required: Mapping[str, int], *, growing: bool = False) -> None:
    """Until metadata shows every topic with its count and a leader for every partition;
    a different count is an error, unless partitions are being added (metadata lags)."""
    while True:
        described = await _describe(admin, list(required))
        if not growing:
            _check_counts(required, described)  # someone else may have won the creation race
        counts_match = all(len(described.get(n, ())) == c for n, c in required.items())
        if counts_match and _all_led(required, described):
            return
        await asyncio.sleep(_RETRY_S)


def _check_counts(required: Mapping[str, int], described: Mapping[str, list[Any]]) -> None:
    for name, partitions in described.items():
        if len(partitions) != required[name]:
            raise TopicPartitionMismatchError(
                f"topic {name!r} has {len(partitions)} partitions, {required[name]} required "
                "(the commands and runs topics must be co-partitioned); use the existing count "
                "or `countersign topics repartition --partitions N`"
            )


def _all_led(required: Mapping[str, int], described: Mapping[str, list[dict[str, Any]]]) -> bool:
    return all(
        name in described
        and all(p["error_code"] == _ERROR_NONE and p["leader"] >= 0 for p in described[name])
        for name in required
    )
