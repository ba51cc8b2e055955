"""Kafka settings of a deployment, read from `COUNTERSIGN_KAFKA_*` variables.

COUNTERSIGN_KAFKA_REPLICATION_FACTOR     replicas per partition (default: min(3, brokers))
COUNTERSIGN_KAFKA_MIN_INSYNC_REPLICAS    copies a write needs (default: RF - 1 when RF > 1)
COUNTERSIGN_KAFKA_ALLOW_SINGLE_REPLICA   1: development only, one replica allowed (logged)
COUNTERSIGN_KAFKA_SECURITY_PROTOCOL ...  TLS and SASL: see engine.log.kafka.connection
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from engine.log.kafka.connection import KafkaSecurity

__all__ = ["KafkaSettings"]

_PREFIX = "COUNTERSIGN_KAFKA_"
_MAX_REPLICAS = 32


@dataclass(frozen=True, kw_only=True)
class KafkaSettings:
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    replication_factor: int | None = None
    min_insync_replicas: int | None = None
    allow_single_replica: bool = False
    """Development only: topics with one replica pass `topics check` (with a warning)."""
    route_key: bytes | None = field(default=None, repr=False)
    """The workers' key for `engine.log.routing.route` (None: route headers unauthenticated)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KafkaSettings:
        return cls(
            security=KafkaSecurity.from_env(env),
            replication_factor=_count(env, "REPLICATION_FACTOR"),
            min_insync_replicas=_count(env, "MIN_INSYNC_REPLICAS"),
            allow_single_replica=_flag(env, "ALLOW_SINGLE_REPLICA"),
            route_key=_key(env, "ROUTE_KEY"),
        )


def _count(env: Mapping[str, str], name: str) -> int | None:
    text = env.get(_PREFIX + name) or None
    if text is None:
        return None
    if not (text.isdigit() and 1 <= int(text) <= _MAX_REPLICAS):
        raise ValueError(f"{_PREFIX}{name}={text!r}: use a whole number from 1 to {_MAX_REPLICAS}")
    return int(text)


def _flag(env: Mapping[str, str], name: str) -> bool:
    text = (env.get(_PREFIX + name) or "0").lower()
    if text not in ("0", "1", "true", "false", "yes", "no"):
        raise ValueError(f"{_PREFIX}{name}={text!r}: use 1 or 0")
    return text in ("1", "true", "yes")


def _key(env: Mapping[str, str], name: str) -> bytes | None:
    text = env.get(_PREFIX + name) or None
    if text is None:
        return None
    if not 16 <= len(text) <= 1024:
        raise ValueError(f"{_PREFIX}{name}: use a secret of 16 to 1024 characters")
    return text.encode()
