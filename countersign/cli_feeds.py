"""`countersign approvals`, `countersign agents` and `countersign dlq list|show|requeue`: the
topics beside the runs.

`approvals` reads the approvals topic as the workers wrote it (requests, outcomes,
notifications), through the approvals feed; with `--run RUN --wait` it waits for the run's
approval request and prints it as a card (`--ids`: only the interrupt ids, for scripts).
`dlq` reads the dead-letter topic and sends an entry's original bytes back to the commands
topic (`consumers.dead_letters` says how that is recorded and why a second requeue needs
`--force`).
"""

from __future__ import annotations

import argparse
import getpass
import json
import time
from dataclasses import asdict
from typing import Any

from consumers import FeedItem
from countersign import bootstrap, demo_view, render
from countersign.cli_options import wait_option
from countersign.settings import Settings
from engine.errors import ConfigurationError
from events.notices import ApprovalRequested


def register(commands: Any) -> None:
    approvals = commands.add_parser(
        "approvals", help="the approvals topic: requests, decision outcomes, notifications"
    )
    approvals.add_argument("--run", dest="run_id", default=None, help="one run's notices")
    wait_option(approvals, "with --run: for the run's approval request, and show it")
    approvals.add_argument(
        "--ids", action="store_true", help="print only the requests' interrupt ids, one a line"
    )
    approvals.add_argument("--json", action="store_true", help="machine-readable output")
    approvals.set_defaults(handler=show_approvals)

    agents = commands.add_parser(
        "agents", help="the agents the workers serve (what `start` checks a run against)"
    )
    agents.add_argument("--json", action="store_true", help="machine-readable output")
    agents.set_defaults(handler=show_agents)

    dlq = commands.add_parser("dlq", help="dead letters: commands the workers could not take")
    actions = dlq.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every entry: where from, why, requeued or not")
    listing.add_argument("--partition", type=int, default=None)
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=dlq_list)
    show = actions.add_parser("show", help="one entry, with its first bytes")
    show.add_argument("entry", type=_entry, metavar="PARTITION:OFFSET")
    show.add_argument("--json", action="store_true", help="machine-readable output (all bytes)")
    show.set_defaults(handler=dlq_show)
    requeue = actions.add_parser(
        "requeue", help="send an entry's original bytes back to the commands topic"
    )
    requeue.add_argument("entry", type=_entry, metavar="PARTITION:OFFSET")
    requeue.add_argument("--by", default=None, help="who requeues (default: $USER)")
    requeue.add_argument("--force", action="store_true", help="even if it was requeued before")
    requeue.add_argument("--json", action="store_true", help="machine-readable output")
    requeue.set_defaults(handler=dlq_requeue)


def _entry(text: str) -> tuple[int, int]:
    partition, _, offset = text.partition(":")
    if not (partition.isdigit() and offset.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r}: use PARTITION:OFFSET, e.g. 2:17")
    return int(partition), int(offset)


# -- approvals ----------------------------------------------------------------------------------


async def show_approvals(settings: Settings, args: argparse.Namespace) -> int:
    if args.wait is not None and not args.run_id:
        raise ConfigurationError("--wait needs --run RUN_ID")
    async with bootstrap.connected(settings, client_id="countersign-cli") as runtime:
        feed = runtime.approvals()
        if args.wait is not None:
            await feed.first_request(args.run_id, timeout_s=args.wait)
        if args.run_id:
            found = [item async for item in feed.of_run(args.run_id)]
        else:
            found = []
            for partition in range(await runtime.log.partition_count(runtime.topics.approvals)):
                found += [item async for item in feed.notices(partition)]
    requests = [i.notice for i in found if isinstance(i.notice, ApprovalRequested)]
    if args.json:
        print(json.dumps([_notice_json(item) for item in found]))
    elif args.ids:
        print("\n".join(dict.fromkeys(r.interrupt_id for r in requests)))
    elif args.wait is not None:
        now_us = time.time_ns() // 1000
        print("\n".join(demo_view.card(r, now_us, ids=True) for r in requests))
    else:
        print(render.notices(found))
    return 0


def _notice_json(item: FeedItem) -> dict[str, object]:
    return {
        "type": type(item.notice).__name__,
        "partition": item.partition,
        "offset": item.offset,
        **asdict(item.notice),
    }


# -- dlq ------------------------------------------------------------------------------------------


async def dlq_list(settings: Settings, args: argparse.Namespace) -> int:
    async with bootstrap.connected(settings, client_id="countersign-cli") as runtime:
        letters = await runtime.dead_letters().entries(args.partition)
    if args.json:
        print(json.dumps([letter.to_json() for letter in letters]))
    else:
        print(render.dead_letters(letters))
    return 0


async def dlq_show(settings: Settings, args: argparse.Namespace) -> int:
    partition, offset = args.entry
    async with bootstrap.connected(settings, client_id="countersign-cli") as runtime:
        letter = await runtime.dead_letters().get(partition, offset)
    print(json.dumps(letter.to_json()) if args.json else render.dead_letter(letter))
    return 0


async def dlq_requeue(settings: Settings, args: argparse.Namespace) -> int:
    partition, offset = args.entry
    by = args.by or getpass.getuser()
    async with bootstrap.connected(settings, client_id="countersign-cli") as runtime:
        done = await runtime.dead_letters().requeue(partition, offset, by=by, force=args.force)
        commands = runtime.topics.commands
    if args.json:
        print(json.dumps({"entry": f"{partition}:{offset}", **done.to_json()}))
    else:
        print(
            f"requeued {partition}:{offset} to {commands}[{done.partition}]@{done.offset} "
            f"(by {render.clean(done.by)})"
        )
    return 0


async def show_agents(settings: Settings, args: argparse.Namespace) -> int:
    async with bootstrap.connected(settings, client_id="countersign-cli") as runtime:
        registered = await runtime.agents().all()
    if args.json:
        print(json.dumps([asdict(r) for r in registered]))
        return 0
    if not registered:
        print("(no worker has registered an agent yet: is `countersign worker` running?)")
        return 0
    rows = [
        (r.agent, r.version, r.app, "yes" if r.input_schema else "no", r.worker, r.description)
        for r in registered
    ]
    print(render.table(("AGENT", "VERSION", "APP", "INPUT SCHEMA", "WORKER", "ABOUT"), rows))
    return 0
