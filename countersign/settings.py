"""Settings: one frozen dataclass, read from `COUNTERSIGN_*` variables; CLI flags override."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, TypeAlias

from countersign.kafka_settings import KafkaSettings

LogBackend: TypeAlias = Literal["kafka", "postgres", "memory"]


@dataclass(frozen=True, kw_only=True)
class Settings:
    home: Path = Path(".countersign")
    """Where local state lives: the local broker, the embedded database."""
    log_backend: LogBackend | None = None
    """None: Kafka when a bootstrap address is known, else embedded PostgreSQL."""
    kafka_bootstrap: str | None = None
    database_url: str | None = None
    """None: the embedded PostgreSQL under `home`."""
    topic_prefix: str = "countersign"
    partitions: int = 4
    worker_group: str = "countersign.workers"
    projector_group: str = "countersign.projector"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "info"
    max_message_bytes: int = 1_048_576
    schema_registry_url: str | None = None
    """A Confluent-compatible schema registry: commands in its wire format are accepted."""
    projection_schema: str = "public"
    """The PostgreSQL schema holding the projections' pointer and stable `cs_v_*` views."""
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    """Replication, TLS and SASL (`countersign.kafka_settings`)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        base = cls()
        backend = env.get("COUNTERSIGN_LOG") or None
        if backend not in (None, "kafka", "postgres", "memory"):
            raise ValueError(f"COUNTERSIGN_LOG={backend!r}: use kafka, postgres or memory")
        log_format = env.get("COUNTERSIGN_LOG_FORMAT", base.log_format)
        if log_format not in ("auto", "json", "console"):
            raise ValueError(f"COUNTERSIGN_LOG_FORMAT={log_format!r}: use auto, json or console")
        return replace(
            base,
            home=Path(env.get("COUNTERSIGN_HOME", str(base.home))),
            log_backend=backend,  # type: ignore[arg-type]
            kafka_bootstrap=env.get("COUNTERSIGN_KAFKA_BOOTSTRAP") or None,
            database_url=env.get("COUNTERSIGN_DATABASE_URL") or None,
            topic_prefix=env.get("COUNTERSIGN_TOPIC_PREFIX", base.topic_prefix),
            partitions=int(env.get("COUNTERSIGN_PARTITIONS", base.partitions)),
            worker_group=env.get("COUNTERSIGN_WORKER_GROUP", base.worker_group),
            projector_group=env.get("COUNTERSIGN_PROJECTOR_GROUP", base.projector_group),
            log_format=log_format,  # type: ignore[arg-type]
            log_level=env.get("COUNTERSIGN_LOG_LEVEL", base.log_level),
            max_message_bytes=int(env.get("COUNTERSIGN_MAX_MESSAGE_BYTES", base.max_message_bytes)),
            schema_registry_url=env.get("COUNTERSIGN_SCHEMA_REGISTRY_URL") or None,
            projection_schema=env.get("COUNTERSIGN_PROJECTION_SCHEMA", base.projection_schema),
            kafka=KafkaSettings.from_env(env),
        )

    @property
    def kafka_dir(self) -> Path:
        return self.home / "kafka"

    @property
    def pg_dir(self) -> Path:
        return self.home / "pg"
