"""`countersign worker` and `countersign projector`: the long-running processes.

Each logs, first, what it serves (`worker_serving`, `projector_serving`: the log, the topic
prefix, the database), then runs until SIGINT or SIGTERM. The embedded PostgreSQL they may
have started keeps running when they stop: other processes share it (`countersign db down`).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import structlog

from countersign import bootstrap
from countersign.batch_gc import tune_for_batches
from countersign.cli_options import json_logs
from countersign.logging import configure_logging
from countersign.observed import observed
from countersign.settings import Settings
from engine.log.port import EventLog

log = structlog.get_logger(__name__)


def register(commands: Any) -> None:
    worker = commands.add_parser("worker", help="run agents: own partitions, resume runs by replay")
    worker.add_argument(
        "--app",
        required=True,
        action="append",
        help="module:attribute of an App, e.g. examples.refund:app (repeat to serve several)",
    )
    worker.add_argument(
        "--check-determinism",
        action="store_true",
        help="replay each run from its history at every resume (development: a "
        "non-deterministic agent is parked at its first decision, not after a restart)",
    )
    worker.add_argument("--group", default=None, help="consumer group (COUNTERSIGN_WORKER_GROUP)")
    worker.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="DEVELOPMENT ONLY: accept unsigned commands (logged loudly; docs/signing.md)",
    )
    json_logs(worker)
    probe_options(worker)
    worker.set_defaults(handler=run_worker)
    projector = commands.add_parser(
        "projector", help="feed the PostgreSQL projections from the runs topic"
    )
    projector.add_argument(
        "--group", default=None, help="consumer group (COUNTERSIGN_PROJECTOR_GROUP)"
    )
    json_logs(projector)
    probe_options(projector)
    projector.set_defaults(handler=run_projector)


def probe_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--health-port",
        type=_port,
        default=None,
        help="serve /livez, /readyz and /metrics (Prometheus) on this port "
        "(docs/observability.md); 0 picks a free one",
    )
    parser.add_argument(
        "--health-host",
        default="127.0.0.1",
        help="the address of the probe port (0.0.0.0 in a container; default 127.0.0.1)",
    )


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text}")
    return port


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, so that processes stop between steps."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


def _logging(settings: Settings, args: argparse.Namespace) -> None:
    if args.json:
        configure_logging("json", settings.log_level)


async def run_worker(settings: Settings, args: argparse.Namespace) -> int:
    _logging(settings, args)
    app = bootstrap.load_apps(args.app)
    log.info("worker_serving", app=", ".join(args.app), group=args.group or settings.worker_group,
             **bootstrap.serving(settings))  # fmt: skip
    stop = stop_on_signals()
    async with (
        observed(args.health_host, args.health_port, "worker") as seen,
        bootstrap.connected(
            settings, client_id="countersign-worker", keep_database=True, keys=True
        ) as runtime,
    ):
        await _check_topics(settings, runtime.log)
        trust = await bootstrap.trust(settings, allow_unsigned=args.allow_unsigned)
        worker = runtime.worker(
            app,
            group=args.group,
            check_determinism=args.check_determinism,
            trust=trust,
            telemetry=seen.telemetry,
        )
        seen.probes.watched = worker.watch
        await worker.run(stop)
        if worker.stood_down is not None and seen.port is not None:
            await stop.wait()  # stay up, not ready, saying why, until the newer one replaces it
    return 0


async def run_projector(settings: Settings, args: argparse.Namespace) -> int:
    _logging(settings, args)
    log.info("projector_serving", group=args.group or settings.projector_group,
             schema=settings.projection_schema, **bootstrap.serving(settings))  # fmt: skip
    stop = stop_on_signals()
    async with (
        observed(args.health_host, args.health_port, "projector") as seen,
        bootstrap.connected(
            settings, client_id="countersign-projector", keep_database=True
        ) as runtime,
        bootstrap.database(settings, keep_running=True) as url,
        bootstrap.projection_writer(settings, url) as store,  # follows `projections rebuild`
    ):
        await _check_topics(settings, runtime.log)
        projector = runtime.projector(store, group=args.group, metrics=seen.metrics)
        seen.probes.watched = projector.watch
        tune_for_batches()  # a process of its own that works in batches: countersign.batch_gc
        await projector.run(stop)
        if projector.stood_down is not None and seen.port is not None:
            await stop.wait()  # stay up, not ready, saying why, until the newer one replaces it
    return 0


async def _check_topics(settings: Settings, event_log: EventLog) -> None:
    """Refuse to start on Kafka topics that cannot keep the engine's promises."""
    from countersign.kafka_topics import check_topics

    await check_topics(settings, event_log)
