"""`countersign kafka up|down|status` and `countersign db up|down|status`: local servers."""

from __future__ import annotations

import argparse
import asyncio
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
    up.set_defaults(handler=kafka_up)
    kafka_actions.add_parser("down", help="stop the broker").set_defaults(handler=kafka_down)
    kafka_actions.add_parser("status", help="is it running, and where").set_defaults(
        handler=kafka_status
    )
    db = commands.add_parser("db", help="the embedded PostgreSQL (pgserver)")
    db_actions = db.add_subparsers(dest="action", metavar="ACTION", required=True)
    db_actions.add_parser("up", help="start it and print its URL").set_defaults(handler=db_up)
    db_actions.add_parser("down", help="stop it").set_defaults(handler=db_down)


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
    print(f"kafka running at {broker.bootstrap} (pid {broker.pid}, state in {broker.state_dir})")
    if broker.secure:
        from countersign.cli_secure import grant_roles

        await grant_roles(settings, broker)
    print(f"export COUNTERSIGN_KAFKA_BOOTSTRAP={broker.bootstrap}")
    return 0


async def kafka_down(settings: Settings, args: argparse.Namespace) -> int:
    from countersign import local_kafka

    stopped = await asyncio.to_thread(local_kafka.stop, settings.kafka_dir)
    print("kafka stopped" if stopped else "kafka was not running")
    return 0


async def kafka_status(settings: Settings, args: argparse.Namespace) -> int:
    from countersign import local_kafka

    broker = local_kafka.status(settings.kafka_dir)
    if broker is None:
        print(f"kafka is not running (state dir {settings.kafka_dir})")
        return 1
    print(f"kafka running at {broker.bootstrap} (pid {broker.pid})")
    return 0


async def db_up(settings: Settings, args: argparse.Namespace) -> int:
    url = await bootstrap.database_url(settings)
    print(url)
    return 0


async def db_down(settings: Settings, args: argparse.Namespace) -> int:
    from countersign import local_pg

    stopped = await asyncio.to_thread(local_pg.stop_embedded, settings.pg_dir.resolve())
    print("database stopped" if stopped else "database was not running")
    return 0
