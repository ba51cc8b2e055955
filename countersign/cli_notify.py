"""`countersign notify`: approval requests to webhooks (Slack, Mattermost) and e-mail.

    countersign notify --routing notify.json

It follows the approvals topic as a member of its group (`--group`, default
`countersign.notifier`: run several, they share the partitions), keeps what it read and sent
in a ledger in the projections' database (schema `countersign_notify`), and links every
message to the card in the web inbox (`COUNTERSIGN_WEB_URL`). SMTP:
`COUNTERSIGN_SMTP_HOST` (127.0.0.1), `_PORT` (25), `_FROM`, `_USER`, `_PASSWORD`,
`_STARTTLS` (1 to use it). docs/notifications.md has the routing file.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import structlog

from countersign import bootstrap
from countersign.cli_options import json_logs
from countersign.cli_processes import stop_on_signals
from countersign.logging import configure_logging
from countersign.settings import Settings
from engine.errors import ConfigurationError

log = structlog.get_logger(__name__)


def register(commands: Any) -> None:
    notify = commands.add_parser(
        "notify", help="send approval requests to webhooks and e-mail, with reminders"
    )
    notify.add_argument("--routing", default=os.environ.get("COUNTERSIGN_NOTIFY_ROUTING"),
                        help="the routing file (COUNTERSIGN_NOTIFY_ROUTING)")  # fmt: skip
    notify.add_argument("--group", default="countersign.notifier", help="consumer group")
    notify.add_argument("--web-url", default=None, help="the web inbox's address for links")
    json_logs(notify)
    notify.set_defaults(handler=run_notify)


def smtp_from_env(env: Any = os.environ) -> Any:
    from consumers.notify_channels import SmtpSettings

    return SmtpSettings(
        host=env.get("COUNTERSIGN_SMTP_HOST", "127.0.0.1"),
        port=int(env.get("COUNTERSIGN_SMTP_PORT", "25")),
        sender=env.get("COUNTERSIGN_SMTP_FROM", "countersign@localhost"),
        username=env.get("COUNTERSIGN_SMTP_USER") or None,
        password=env.get("COUNTERSIGN_SMTP_PASSWORD") or None,
        starttls=env.get("COUNTERSIGN_SMTP_STARTTLS", "") in ("1", "true", "yes"),
    )


def read_routing(path: str | None) -> Any:
    from consumers.notify_plan import Routing, RoutingError
    from engine.trust.loading import read_json

    if not path:
        raise ConfigurationError("give --routing FILE (or COUNTERSIGN_NOTIFY_ROUTING)")
    data = read_json(Path(path), "routing file")  # size-capped; names the file when refused
    try:
        return Routing.parse(data)
    except (ValueError, RoutingError) as exc:
        raise ConfigurationError(f"routing file {path}: {exc}") from exc


async def run_notify(settings: Settings, args: argparse.Namespace) -> int:
    from consumers.notifier import Notifier, NotifierSettings
    from consumers.notify_channels import Senders
    from consumers.notify_store import PostgresLedger
    from countersign.web.config import WebSettings
    from projections.queries import Queries

    if args.json:
        configure_logging("json", settings.log_level)
    routing = read_routing(args.routing)
    base_url = args.web_url or WebSettings.from_env(settings.home).base_url
    stop = stop_on_signals()
    async with (
        bootstrap.connected(settings, client_id="countersign-notify", keep_database=True) as rt,
        bootstrap.database(settings, keep_running=True) as url,
        bootstrap.read_side(settings) as store,
    ):
        queries = Queries(store, rt.codec)

        async def is_open(run_id: str, interrupt_id: str) -> bool:
            rows = await queries.interrupts(run_id)
            return any(r.interrupt_id == interrupt_id and r.status == "open" for r in rows)

        schema = os.environ.get("COUNTERSIGN_NOTIFY_SCHEMA", "countersign_notify")
        ledger = await PostgresLedger.connect(url, schema=schema)
        senders = Senders(smtp_from_env())
        try:
            notifier = Notifier(
                rt.log, rt.topics, rt.codec, ledger, routing, senders,
                NotifierSettings(base_url=base_url, group=args.group), is_open=is_open,
            )  # fmt: skip
            print(f"notifier running ({', '.join(sorted(routing.channels))}); Ctrl-C stops it",
                  flush=True)  # fmt: skip
            await notifier.run(stop)
        finally:
            await senders.close()
            await ledger.close()
    return 0
