"""`countersign`: the command line. Each subcommand's code lives in a `cli_*.py` module.

The `cli_*` modules parse arguments, get what they need from `countersign.bootstrap` (the one
place that builds logs, stores, workers, feeds) and print through `countersign.render`.
Every command takes `--json` (a test walks the parser to hold that true).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import replace

from countersign import (
    cli_demo,
    cli_erase,
    cli_feeds,
    cli_keys,
    cli_notify,
    cli_probe,
    cli_processes,
    cli_projections,
    cli_queries,
    cli_replay,
    cli_review,
    cli_runs,
    cli_serve,
    cli_servers,
    cli_topics,
)
from countersign.local_kafka_jars import LocalKafkaError
from countersign.logging import configure_logging
from countersign.settings import Settings
from engine.errors import EngineError
from events.errors import EventsError
from projections.errors import ProjectionsError

EPILOG = """\
environment:
  COUNTERSIGN_KAFKA_BOOTSTRAP  Kafka bootstrap servers (default: the broker `kafka up` started)
  COUNTERSIGN_DATABASE_URL     PostgreSQL (default: embedded, under COUNTERSIGN_HOME)
  COUNTERSIGN_TOPIC_PREFIX     topic prefix (default: countersign)
  COUNTERSIGN_LOG              event log: kafka | postgres | memory (default: kafka when known)
  COUNTERSIGN_HOME             local state (default: ./.countersign)
  COUNTERSIGN_LOG_FORMAT       auto | json | console (default: auto = JSON off a terminal)

walk-through (README.md; docs/ has the rest):
  countersign worker --app examples.refund:app > worker.log 2>&1 &
  countersign projector > projector.log 2>&1 &
  countersign start refund --input '{"order_id": "A-17", "amount": 2400}' --by bob
  countersign approvals --run RUN_ID --wait     # the approval request, as a card
  countersign decide RUN_ID INTERRUPT_ID approve --by alice --reason checked
  countersign runs show RUN_ID
  countersign audit --run RUN_ID
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="countersign",
        description="Agent runs that pause for a human decision and resume anywhere by replay.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--prefix", help="topic prefix (COUNTERSIGN_TOPIC_PREFIX)")
    parser.add_argument("--log-format", choices=["auto", "json", "console"])
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cli_servers.register(commands)
    cli_topics.register(commands)
    cli_processes.register(commands)
    cli_probe.register(commands)
    cli_runs.register(commands)
    cli_queries.register(commands)
    cli_feeds.register(commands)
    cli_demo.register(commands)
    cli_projections.register(commands)
    cli_review.register(commands)  # extends `inbox` and `runs`: after them
    cli_replay.register(commands)
    cli_serve.register(commands)
    cli_notify.register(commands)
    cli_keys.register(commands)
    cli_erase.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        parser.error(str(exc))
    if args.prefix:
        settings = replace(settings, topic_prefix=args.prefix)
    if args.log_format:
        settings = replace(settings, log_format=args.log_format)
    if args.log_level:
        settings = replace(settings, log_level=args.log_level)
    configure_logging(settings.log_format, settings.log_level)
    try:
        code: int = asyncio.run(args.handler(settings, args))
    except KeyboardInterrupt:
        return 130
    except (
        EngineError,
        EventsError,
        ProjectionsError,
        LocalKafkaError,
        OSError,
        TimeoutError,
    ) as exc:
        print(f"countersign: error: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
