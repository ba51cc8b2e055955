"""`countersign runs show|list` and `countersign audit`: read the PostgreSQL projections."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from countersign import render
from countersign.settings import Settings
from engine.errors import ConfigurationError
from projections.queries import Queries


def register(commands: Any) -> None:
    runs = commands.add_parser("runs", help="runs as the projections see them")
    actions = runs.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="a run's status, open interrupts and timeline")
    show.add_argument("run_id")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=runs_show)
    listing = actions.add_parser("list", help="recent runs")
    listing.add_argument(
        "--status", choices=["running", "waiting", "parked", "completed", "failed", "cancelled"]
    )
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=runs_list)

    audit = commands.add_parser("audit", help="who decided what, when and why")
    audit.add_argument("--run", dest="run_id", default=None, help="one run only")
    audit.add_argument("--approver", default=None, help="one principal's actions")
    audit.add_argument("--tool", default=None)
    audit.add_argument("--since", default=None, help="ISO time, e.g. 2026-11-21T00:00:00+00:00")
    audit.add_argument(
        "--action", default=None, help="one kind of entry, e.g. decision_accepted, gate_evaluated"
    )
    audit.add_argument("--limit", type=int, default=100)
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(handler=show_audit)


@asynccontextmanager
async def queries(settings: Settings) -> AsyncIterator[Queries]:
    """Queries over the live copy of the projections (the one the pointer names)."""
    from countersign.cli_projections import live_store

    async with live_store(settings) as store:
        yield Queries(store)


async def runs_show(settings: Settings, args: argparse.Namespace) -> int:
    async with queries(settings) as q:
        run = await q.get_run(args.run_id)
        if run is None:
            raise ConfigurationError(
                f"run {args.run_id} is not in the projections (unknown, or the projector "
                "has not caught up: is `countersign projector` running?)"
            )
        timeline = await q.run_timeline(args.run_id)
        interrupts = await q.interrupts(args.run_id)
    open_ones = [i for i in interrupts if i.status == "open"]
    if args.json:
        print(
            json.dumps(
                {
                    "run": run.to_json(),
                    "open_interrupts": [i.to_json() for i in open_ones],
                    "interrupts": [i.to_json() for i in interrupts],
                    "timeline": [e.to_json() for e in timeline],
                }
            )
        )
        return 0
    print(render.run_header(run))
    if open_ones:
        print("open interrupts:")
        print(render.interrupts(open_ones))
    print("timeline:")
    print(render.timeline(timeline))
    return 0


async def runs_list(settings: Settings, args: argparse.Namespace) -> int:
    async with queries(settings) as q:
        runs = await q.list_runs(args.status, args.limit)
    if args.json:
        print(json.dumps([r.to_json() for r in runs]))
        return 0
    for run in runs:
        print(f"{run.run_id}  {run.agent:<12} {run.status:<10} {run.requested_by}")
    return 0


async def show_audit(settings: Settings, args: argparse.Namespace) -> int:
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError as exc:
            raise ConfigurationError(f"--since {args.since!r}: {exc}") from exc
    async with queries(settings) as q:
        rows = await q.audit(
            run_id=args.run_id,
            approver=args.approver,
            tool=args.tool,
            since=since,
            limit=args.limit,
            action=args.action,
        )
    if args.json:
        print(json.dumps([r.to_json() for r in rows]))
        return 0
    print(render.audit(rows))
    return 0
