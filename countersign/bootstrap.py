"""The composition root: every runtime object is built here, from settings (I/O).

The CLI modules (`countersign/cli_*`) parse arguments, ask this module for what they need
and render the answer; the demo does the same. Nothing else constructs a log, a store, a
worker, a projector, a publisher or a feed.

    async with bootstrap.connected(settings, client_id="countersign-cli") as runtime:
        run_id = await runtime.publisher().start_run("refund", {...}, requested_by="bob")
    async with bootstrap.read_side(settings) as store:
        run = await Queries(store).get_run(run_id)

Which log: `COUNTERSIGN_LOG` if set, else Kafka when a bootstrap address is known (set, or
left in the home dir by `countersign kafka up`), else the embedded PostgreSQL (pgserver),
which also holds the projections. A command that starts the embedded PostgreSQL stops it
again when it is done, unless something else is connected; the long-running processes
(worker, projector, dev) leave it running for the others (`countersign db down` stops it).
Adapters are imported when chosen: aiokafka only when Kafka is the log, the worker only
where a worker runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import structlog

from consumers import Agents, ApprovalsFeed, CommandPublisher, DeadLetters
from countersign.settings import Settings
from engine.agent.app import App
from engine.errors import ConfigurationError
from engine.log.port import EventLog, Topics
from engine.privacy.keys import MemorySubjectKeys, SubjectKeys
from engine.telemetry import NO_METRICS, Metrics, Telemetry
from events.codec import Codec

if TYPE_CHECKING:
    from engine.log.schema_registry import SchemaRegistry
    from engine.runtime.worker import Worker
    from engine.trust.loading import Trust
    from projections.live import LiveStore
    from projections.runner import Projector
    from projections.store import ProjectionStore

log = structlog.get_logger(__name__)


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


# -- which log, which database ----------------------------------------------------------------


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


def serving(settings: Settings) -> dict[str, str]:
    """What a process serves, for its first log line: the log, the prefix, the database."""
    chosen = backend(settings)
    embedded = f"embedded, {settings.pg_dir}"
    where = {
        "kafka": f"Kafka at {kafka_bootstrap(settings)}",
        "memory": "in memory (this process only)",
        "postgres": "PostgreSQL (a configured database)"
        if settings.database_url
        else f"PostgreSQL ({embedded})",
    }[chosen]
    database = redacted(settings.database_url) if settings.database_url else embedded
    out = {"log": where, "prefix": settings.topic_prefix, "database": database}
    if chosen == "postgres" and not settings.log_backend:
        out["why"] = (
            "no Kafka configured (COUNTERSIGN_KAFKA_BOOTSTRAP, or `countersign kafka up`): "
            "the embedded default"
        )
    return out


def redacted(url: str) -> str:
    """`url` without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def database_url(settings: Settings) -> str:
    """The configured database, else the embedded one under the home dir (started if needed
    and left running, with a share held until this process exits; `database()` is the
    variant that stops what it started)."""
    if settings.database_url:
        return settings.database_url
    from countersign import local_pg

    data_dir = settings.pg_dir.resolve()
    if data_dir not in _LIFETIME_SHARES:
        _LIFETIME_SHARES[data_dir] = await asyncio.to_thread(local_pg.share, data_dir)
    return await asyncio.to_thread(local_pg.start_embedded, data_dir)


_LIFETIME_SHARES: dict[Path, int] = {}  # closed by the process's exit


@contextlib.asynccontextmanager
async def database(settings: Settings, *, keep_running: bool = False) -> AsyncIterator[str]:
    """The database URL for the time of the block. The embedded server, if this block had to
    start it, is stopped at the end unless `keep_running` or another process uses it (holds a
    share, or is connected)."""
    if settings.database_url:
        yield settings.database_url
        return
    from countersign import local_pg

    data_dir = settings.pg_dir.resolve()
    held = await asyncio.to_thread(local_pg.share, data_dir)
    was_running = True  # until known: a failure before then stops nothing
    try:
        was_running = await asyncio.to_thread(local_pg.is_running, data_dir)
        url = await asyncio.to_thread(local_pg.start_embedded, data_dir)
        yield url
    finally:
        os.close(held)
        if not (was_running or keep_running):
            await asyncio.to_thread(local_pg.stop_if_unused, data_dir)


# -- the event log ----------------------------------------------------------------------------


async def open_log(
    settings: Settings, *, client_id: str = "countersign", url: str | None = None
) -> EventLog:
    """A started event log, with its topics ensured. `url`: the database of the embedded
    log, if the caller holds it already (see `database`)."""
    chosen = backend(settings)
    event_log: EventLog
    if chosen == "kafka":
        address = kafka_bootstrap(settings)
        if not address:
            raise ConfigurationError(
                "no Kafka broker: run `countersign kafka up` or set COUNTERSIGN_KAFKA_BOOTSTRAP"
            )
        from countersign.kafka_topics import kafka_log  # security and replication settings

        event_log = kafka_log(settings, address, client_id=client_id)
    elif chosen == "memory":
        from engine.log.memory import MemoryLog

        event_log = MemoryLog(default_partitions=settings.partitions)
    else:
        from engine.log.postgres import PostgresLog

        event_log = PostgresLog(url or await database_url(settings), client_id=client_id)
    await event_log.start()
    try:
        await event_log.ensure_topics(topics(settings), settings.partitions)
    except BaseException:
        await event_log.close()
        raise
    return event_log


@dataclass(frozen=True)
class Runtime:
    """An open log and what is built on it; `connected()` makes one."""

    settings: Settings
    log: EventLog
    topics: Topics
    codec: Codec
    registry: SchemaRegistry | None = None
    """The schema registry client, when COUNTERSIGN_SCHEMA_REGISTRY_URL is set."""
    subject_keys: SubjectKeys | None = None
    """The per-subject keys of personal data (docs/erasure.md), when asked for."""

    def publisher(self, *, signer: str | None = None) -> CommandPublisher:
        """A publisher that signs every command (docs/signing.md), with the key for `signer`
        (the principal it sends for): `COUNTERSIGN_SIGNING_KEY`, the home's key for that
        subject or its default key, else the local development issuer, made on first use."""
        from countersign.trusting import command_key

        key, made = command_key(self.settings, signer)
        if made:
            log.warning(
                "development_signing_key_made",
                kid=key.kid,
                issuer=key.issuer,
                where=str(self.settings.home / "keys"),
                note="workers using this home trust it",
            )
        return CommandPublisher(self.log, self.topics, self.codec, key=key)

    def approvals(self) -> ApprovalsFeed:
        return ApprovalsFeed(self.log, self.topics, self.codec)

    def dead_letters(self) -> DeadLetters:
        return DeadLetters(self.log, self.topics)

    def agents(self) -> Agents:
        return Agents(self.log, self.topics, self.codec)

    def worker(
        self,
        app: App,
        *,
        group: str | None = None,
        check_determinism: bool = False,
        trust: Trust | None = None,
        telemetry: Telemetry | None = None,
    ) -> Worker:
        """A worker; `trust` (from `bootstrap.trust`) is what it accepts commands on: without
        it, unsigned commands pass (as for a library user; the CLI always gives one)."""
        # The one place the worker is imported (and only where a worker is built).
        from engine.runtime.worker import Worker, WorkerSettings

        settings = WorkerSettings(
            group=group or self.settings.worker_group,
            check_determinism=check_determinism,
            route_key=self.settings.kafka.route_key,
        )
        return Worker(
            app,
            self.log,
            self.topics,
            self.codec,
            settings=settings,
            schema_registry=self.registry,
            trust=trust,
            subject_keys=self.subject_keys,
            telemetry=telemetry,
        )

    def projector(
        self,
        store: LiveStore | ProjectionStore,
        *,
        group: str | None = None,
        metrics: Metrics = NO_METRICS,
    ) -> Projector:
        from projections.runner import Projector

        return Projector(
            self.log,
            store,
            self.topics.runs,
            group=group or self.settings.projector_group,
            codec=self.codec,
            metrics=metrics,
        )


@contextlib.asynccontextmanager
async def connected(
    settings: Settings, *, client_id: str, keep_database: bool = False, keys: bool = False
) -> AsyncIterator[Runtime]:
    """An open log (and the embedded database under it, when it is the log) for the block;
    with `keys`, the subject-key store too (`cs_subject_keys` in the database: the
    configured one, else the embedded one; in memory for the in-memory log)."""
    async with contextlib.AsyncExitStack() as stack:
        url = None
        chosen = backend(settings)
        if chosen == "postgres" or (keys and chosen != "memory"):
            url = await stack.enter_async_context(database(settings, keep_running=keep_database))
        event_log = await open_log(
            settings, client_id=client_id, url=url if chosen == "postgres" else None
        )
        stack.push_async_callback(event_log.close)
        encoding = codec(settings)
        registry = schema_registry(settings, encoding)
        if registry is not None:
            stack.push_async_callback(registry.close)
        store = await _subject_keys(stack, url) if keys else None
        yield Runtime(settings, event_log, topics(settings), encoding, registry, store)


@contextlib.asynccontextmanager
async def subject_keys(settings: Settings) -> AsyncIterator[SubjectKeys | None]:
    """The subject-key store alone (for `erase` and for reading personal values back);
    None with the in-memory log, whose keys die with its process."""
    if backend(settings) == "memory":
        yield None
        return
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(database(settings))
        yield await _subject_keys(stack, url)


async def _subject_keys(stack: contextlib.AsyncExitStack, url: str | None) -> SubjectKeys:
    if url is None:
        return MemorySubjectKeys()
    from engine.log.postgres_subject_keys import PostgresSubjectKeys

    store = PostgresSubjectKeys(url)
    await store.start()
    stack.push_async_callback(store.close)
    return store


# -- the projections --------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def read_side(
    settings: Settings, *, schema: str | None = None
) -> AsyncIterator[ProjectionStore]:
    """The live copy of the projections (the one the home schema's pointer names), or the
    copy in `schema` when given, migrated, for the block."""
    from projections.errors import ProjectionsError
    from projections.live import connect_live
    from projections.store import ProjectionStore

    async with database(settings) as url:
        try:
            if schema is None:
                store = await connect_live(url, home=settings.projection_schema)
            else:
                store = await ProjectionStore.connect(url, schema=schema)
                await store.migrate()
        except ProjectionsError as exc:  # the CLI's error line, not a traceback
            raise ConfigurationError(f"projections: {exc}") from exc
        try:
            yield store
        finally:
            await store.close()


@contextlib.asynccontextmanager
async def projection_writer(settings: Settings, url: str) -> AsyncIterator[LiveStore]:
    """The store a projector writes to: it follows the live pointer (`projections.live`)."""
    from projections.live import LiveStore

    store = await LiveStore.connect(url, home=settings.projection_schema)
    try:
        yield store
    finally:
        await store.close()


# -- agent code -------------------------------------------------------------------------------


# -- trust (docs/signing.md, docs/anchors.md) --------------------------------------------------


async def trust(
    settings: Settings, *, allow_unsigned: bool = False, development: bool = False
) -> Trust:
    """What a worker trusts (`countersign.trusting`): the trust file's issuers, the
    deployment's access rules, whether unsigned commands pass (never on Kafka unless
    `allow_unsigned`, the development flag), and the key it signs anchors with."""
    from countersign.trusting import worker_trust

    return await worker_trust(
        settings, backend(settings), allow_unsigned=allow_unsigned, development=development
    )


def load_object(spec: str) -> object:
    """`package.module:attribute` → the object it names (the current directory is importable)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"{spec!r}: use module:attribute, e.g. examples.refund:app")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"{spec!r}: cannot import {module_name}: {exc}") from exc
    if not hasattr(module, attribute):
        raise ConfigurationError(f"{spec!r}: {module_name} has no {attribute}")
    found: object = getattr(module, attribute)
    return found


def load_app(spec: str) -> App:
    """`package.module:attribute` → the App object it names."""
    app = load_object(spec)
    if not isinstance(app, App):
        raise ConfigurationError(
            f"--app {spec!r}: {spec.partition(':')[2]} is not a countersign App"
        )
    return app


def load_apps(specs: Sequence[str]) -> App:
    """One `--app` → that App; several → one App that includes them all (their agents and
    tools must not clash: refused here, before the worker starts)."""
    apps = [load_app(spec) for spec in specs]
    if len(apps) == 1:
        return apps[0]
    return App("+".join(app.name for app in apps), include=apps)
