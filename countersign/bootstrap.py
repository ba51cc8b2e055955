"""The one place that builds the runtime from settings: the log, the database, the app."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from countersign.settings import Settings
from engine.agent.app import App
from engine.errors import ConfigurationError
from engine.log.port import EventLog, Topics
from events.codec import Codec

if TYPE_CHECKING:
    from engine.log.schema_registry import SchemaRegistry


def topics(settings: Settings) -> Topics:
    return Topics(settings.topic_prefix)


def codec(settings: Settings) -> Codec:
    return Codec(
        max_message_bytes=settings.max_message_bytes,
        registry_format=settings.schema_registry_url is not None,
    )


def schema_registry(settings: Settings, codec: Codec) -> SchemaRegistry | None:
    """The registry adapter when COUNTERSIGN_SCHEMA_REGISTRY_URL is set (the codec must be
    this settings' `codec`)."""
    if settings.schema_registry_url is None:
        return None
    from engine.log.schema_registry import RegistrySettings, SchemaRegistry

    return SchemaRegistry(codec, RegistrySettings(settings.schema_registry_url))


def kafka_bootstrap(settings: Settings) -> str | None:
    """The configured address, else the one `countersign kafka up` left in the home dir."""
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    from countersign import local_kafka

    running = local_kafka.status(settings.kafka_dir)
    return running.bootstrap if running else None


def backend(settings: Settings) -> str:
    if settings.log_backend:
        return settings.log_backend
    return "kafka" if kafka_bootstrap(settings) else "postgres"


async def open_log(settings: Settings, *, client_id: str = "countersign") -> EventLog:
    """A started event log, with its topics ensured."""
    chosen = backend(settings)
    event_log: EventLog
    if chosen == "kafka":
        bootstrap = kafka_bootstrap(settings)
        if not bootstrap:
            raise ConfigurationError(
                "no Kafka broker: run `countersign kafka up` or set COUNTERSIGN_KAFKA_BOOTSTRAP"
            )
        from countersign.kafka_topics import kafka_log

        event_log = kafka_log(settings, bootstrap, client_id=client_id)
    elif chosen == "memory":
        from engine.log.memory import MemoryLog

        event_log = MemoryLog(default_partitions=settings.partitions)
    else:
        event_log = await _postgres_log(settings, client_id)
    await event_log.start()
    await event_log.ensure_topics(topics(settings), settings.partitions)
    return event_log


async def _postgres_log(settings: Settings, client_id: str) -> EventLog:
    from engine.log.postgres import PostgresLog

    return PostgresLog(await database_url(settings), client_id=client_id)


async def database_url(settings: Settings) -> str:
    """The configured database, else the embedded one under the home dir (started if needed)."""
    if settings.database_url:
        return settings.database_url
    from countersign import local_pg

    return await asyncio.to_thread(local_pg.start_embedded, settings.pg_dir.resolve())


def load_app(spec: str) -> App:
    """`package.module:attribute` → the App object it names."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"--app {spec!r}: use module:attribute, e.g. examples.refund:app")
    import sys

    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"--app {spec!r}: cannot import {module_name}: {exc}") from exc
    app = getattr(module, attribute, None)
    if not isinstance(app, App):
        raise ConfigurationError(f"--app {spec!r}: {attribute} is not a countersign App")
    return app
