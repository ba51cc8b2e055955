"""`countersign worker` and `countersign projector`: the long-running processes."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from countersign import bootstrap
from countersign.settings import Settings
from engine.log.port import EventLog
from engine.runtime.worker import Worker, WorkerSettings


def register(commands: Any) -> None:
    worker = commands.add_parser("worker", help="run agents: own partitions, resume runs by replay")
    worker.add_argument(
        "--app", required=True, help="module:attribute of an App, e.g. examples.refund:app"
    )
    worker.add_argument("--group", default=None, help="consumer group (COUNTERSIGN_WORKER_GROUP)")
    worker.set_defaults(handler=run_worker)
    projector = commands.add_parser(
        "projector", help="feed the PostgreSQL projections from the runs topic"
    )
    projector.add_argument(
        "--group", default=None, help="consumer group (COUNTERSIGN_PROJECTOR_GROUP)"
    )
    projector.set_defaults(handler=run_projector)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, so that processes stop between steps."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def run_worker(settings: Settings, args: argparse.Namespace) -> int:
    app = bootstrap.load_app(args.app)
    event_log = await bootstrap.open_log(settings, client_id="countersign-worker")
    stop = stop_on_signals()
    codec = bootstrap.codec(settings)
    registry = bootstrap.schema_registry(settings, codec)
    try:
        await _check_topics(settings, event_log)
        worker = Worker(
            app,
            event_log,
            bootstrap.topics(settings),
            codec,
            settings=WorkerSettings(group=args.group or settings.worker_group),
            schema_registry=registry,
        )
        await worker.run(stop)
    finally:
        if registry is not None:
            await registry.close()
        await event_log.close()
    return 0


async def run_projector(settings: Settings, args: argparse.Namespace) -> int:
    from projections.live import LiveStore
    from projections.runner import Projector

    event_log = await bootstrap.open_log(settings, client_id="countersign-projector")
    # Follows `countersign projections rebuild`: writes move to the new copy when it switches.
    store = await LiveStore.connect(
        await bootstrap.database_url(settings), home=settings.projection_schema
    )
    stop = stop_on_signals()
    try:
        await _check_topics(settings, event_log)
        projector = Projector(
            event_log,
            store,
            bootstrap.topics(settings).runs,
            group=args.group or settings.projector_group,
            codec=bootstrap.codec(settings),
        )
        await projector.run(stop)
    finally:
        await store.close()
        await event_log.close()
    return 0


async def _check_topics(settings: Settings, event_log: EventLog) -> None:
    """Refuse to start on Kafka topics that cannot keep the engine's promises."""
    from countersign.kafka_topics import check_topics

    await check_topics(settings, event_log)
