"""`countersign kafka up|down|status` and `countersign db up|down|status`: local servers."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from countersign import bootstrap
from countersign.settings import Settings


def register(commands: Any) -> None:
    kafka = commands.add_parser("kafka", help="a local Kafka broker (from Maven Central jars)")
    kafka_actions = kafka.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = kafka_actions.add_parser("up", help="fetch (once), format and start the broker")
    up.add_argument("--partitions", type=int, default=None, help="default partitions per topic")
    up.add_argument("--brokers", type=int, default=1, choices=(1, 3), help="1 node, or a cluster")
    up.add_argument("--secure", action="store_true", help="SASL_SSL, TLS and ACLs per role")
    _json(up).set_defaults(handler=kafka_up)
    down = kafka_actions.add_parser("down", help="stop the broker")
    _json(down).set_defaults(handler=kafka_down)
    status = kafka_actions.add_parser("status", help="is it running, and where")
    _json(status).set_defaults(handler=kafka_status)
    db = commands.add_parser("db", help="the embedded PostgreSQL (pgserver)")
    db_actions = db.add_subparsers(dest="action", metavar="ACTION", required=True)
    _json(db_actions.add_parser("up", help="start it and print its URL")).set_defaults(
        handler=db_up
    )
    _json(db_actions.add_parser("down", help="stop it")).set_defaults(handler=db_down)
    _json(db_actions.add_parser("status", help="is it running, and where")).set_defaults(
        handler=db_status
    )


def _json(parser: Any) -> Any:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _say(args: argparse.Namespace, text: str, data: dict[str, object]) -> None:
    print(json.dumps(data) if args.json else text)


async def kafka_up(settings: Settings, args: argparse.Namespace) -> int:
    from countersign import local_kafka

    partitions = args.partitions or settings.partitions
    broker = await asyncio.to_thread(
        local_kafka.start,
        settings.kafka_dir,
        partitions=partitions,
        brokers=args.brokers,
        secure=args.secure,
    )
    # No `export` needed: commands with the same COUNTERSIGN_HOME find the broker there.
    text = (
        f"kafka running at {broker.bootstrap} (pid {broker.pid}, state in {broker.state_dir})\n"
        f"countersign commands with COUNTERSIGN_HOME={settings.home} use it; other machines: "
        f"COUNTERSIGN_KAFKA_BOOTSTRAP={broker.bootstrap}"
    )
    data = {"bootstrap": broker.bootstrap, "pid": broker.pid, "state_dir": str(broker.state_dir)}
    _say(args, text, data)
    if broker.secure:
        from countersign.cli_secure import grant_roles

        await grant_roles(settings, broker, say=not args.json)
    return 0


async def kafka_down(settings: Settings, args: argparse.Namespace) -> int:
    from countersign import local_kafka

    stopped = await asyncio.to_thread(local_kafka.stop, settings.kafka_dir)
    _say(args, "kafka stopped" if stopped else "kafka was not running", {"stopped": stopped})
    return 0


async def kafka_status(settings: Settings, args: argparse.Namespace) -> int:
    from countersign import local_kafka

    broker = local_kafka.status(settings.kafka_dir)
    if broker is None:
        text = f"kafka is not running (state dir {settings.kafka_dir})"
        _say(args, text, {"running": False, "state_dir": str(settings.kafka_dir)})
        return 1
    text = f"kafka running at {broker.bootstrap} (pid {broker.pid})"
    _say(args, text, {"running": True, "bootstrap": broker.bootstrap, "pid": broker.pid})
    return 0


async def db_up(settings: Settings, args: argparse.Namespace) -> int:
    url = await bootstrap.database_url(settings)  # left running: that is what `up` is for
    _say(args, url, {"url": url})
    return 0


async def db_down(settings: Settings, args: argparse.Namespace) -> int:
    from countersign import local_pg

    stopped = await asyncio.to_thread(local_pg.stop_embedded, settings.pg_dir.resolve())
    text = "database stopped" if stopped else "database was not running"
    _say(args, text, {"stopped": stopped})
    return 0


async def db_status(settings: Settings, args: argparse.Namespace) -> int:
    from countersign import local_pg

    if settings.database_url:
        text = f"configured: {bootstrap.redacted(settings.database_url)} (not embedded)"
        _say(args, text, {"embedded": False, "url": bootstrap.redacted(settings.database_url)})
        return 0
    running = await asyncio.to_thread(local_pg.is_running, settings.pg_dir)
    where = str(settings.pg_dir)
    text = f"embedded PostgreSQL {'running' if running else 'not running'} in {where}"
    _say(args, text, {"embedded": True, "running": running, "data_dir": where})
    return 0 if running else 1
