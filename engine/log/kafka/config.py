"""The settings each kind of Kafka client is created with. Pure: plain values in, dicts out.

Every safety setting is explicit because aiokafka's defaults are the weak ones (acks=1, no
idempotence, auto-commit, latest, read_uncommitted); docs/kafka-internals.md has the why of each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

__all__ = ["ROLES", "ClientTimings", "client_configs"]

ROLES = ("publisher", "transactional_producer", "group_consumer", "reader")
TRANSACTION_BATCH_BYTES = 524_288


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientTimings:
    """The knobs a deployment (or a test) may turn; the safety settings are not among them."""

    client_id: str = "countersign"
    linger_ms: int = 0
    """The shared publisher's: a decision someone just made goes at once (lingering 2 ms
    cost a lone decision 2.2 ms, bench/stages.py). Batching is not lost under load: aiokafka
    sends one request at a time per broker, so records wait in batches meanwhile."""
    max_batch_bytes: int = 16_384
    fetch_max_wait_ms: int = 20
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    max_poll_interval_ms: int = 60_000
    request_timeout_ms: int = 30_000
    transaction_timeout_ms: int = 60_000
    metadata_max_age_ms: int = 300_000


def client_configs(
    bootstrap: str, timings: ClientTimings, security: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Keyword arguments for aiokafka, by role (see ROLES). `security` holds the connection's
    TLS/SASL arguments (`security_protocol` and friends); PLAINTEXT when None."""
    common: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "request_timeout_ms": timings.request_timeout_ms,
        "retry_backoff_ms": 100,
        "metadata_max_age_ms": timings.metadata_max_age_ms,
        "connections_max_idle_ms": 540_000,
        **(security or {"security_protocol": "PLAINTEXT"}),
    }
    publisher = {
        **common,
        "client_id": f"{timings.client_id}-publisher",
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": timings.linger_ms,
        "max_batch_size": timings.max_batch_bytes,
        "max_request_size": 1_048_576,
        "compression_type": "lz4",  # a run's events repeat ids, agent and hashes
    }
    transactional = {
        **publisher,
        "client_id": f"{timings.client_id}-txn",
        "transaction_timeout_ms": timings.transaction_timeout_ms,
        # A commit is one explicit batch; CONCURRENT_TRANSACTIONS is retried soon, not in 100 ms.
        "linger_ms": 0,
        # aiokafka holds one open batch per partition and a send waits while it is full: a
        # step of 500 decisions (~1 MB of events) took 60 sequential produce round trips in
        # 16 kB batches. Half the broker's default 1 MB record-batch limit, even uncompressed.
        "max_batch_size": max(timings.max_batch_bytes, TRANSACTION_BATCH_BYTES),
        "retry_backoff_ms": 10,
    }
    consumer = {
        **common,
        "isolation_level": "read_committed",
        "enable_auto_commit": False,
        "fetch_max_wait_ms": timings.fetch_max_wait_ms,
        "fetch_min_bytes": 1,
        "fetch_max_bytes": 52_428_800,
        "max_partition_fetch_bytes": 1_048_576,
        "consumer_timeout_ms": 100,
        "check_crcs": True,
        "exclude_internal_topics": True,
    }
    group_consumer = {
        **consumer,
        "client_id": f"{timings.client_id}-member",
        "auto_offset_reset": "earliest",
        "session_timeout_ms": timings.session_timeout_ms,
        "heartbeat_interval_ms": timings.heartbeat_interval_ms,
        "max_poll_interval_ms": timings.max_poll_interval_ms,
        "rebalance_timeout_ms": timings.max_poll_interval_ms,
        "partition_assignment_strategy": (RoundRobinPartitionAssignor,),
    }
    # Readers start where they are told: a start outside the log is an error, not a jump.
    reader = {**consumer, "client_id": f"{timings.client_id}-reader", "auto_offset_reset": "none"}
    return {
        "publisher": publisher,
        "transactional_producer": transactional,
        "group_consumer": group_consumer,
        "reader": reader,
    }
