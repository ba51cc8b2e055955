"""`countersign runs show|list|quarantined|lift` and `countersign audit`: the projections.

The projections follow the log a moment behind. `runs show RUN --wait` waits until the
projector has read everything on the run's partition *and* the run is at rest (waiting for a
person, or finished), so a script that has just started a run or decided sees where it went.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from countersign import bootstrap, render
from countersign.cli_options import wait_option
from countersign.personal_view import opener
from countersign.settings import Settings
from engine.errors import ConfigurationError
from engine.log.routing import candidates
from engine.log.routing_log import load_partition_map
from events.envelope import EventEnvelope
from projections.queries import Queries
from projections.rows import RunRow

if TYPE_CHECKING:
    from projections.store import ProjectionStore


def register(commands: Any) -> None:
    runs = commands.add_parser("runs", help="runs as the projections see them")
    actions = runs.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="a run's status, open interrupts and timeline")
    show.add_argument("run_id")
    wait_option(show, "until the projections show the run waiting or finished")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=runs_show)
    listing = actions.add_parser("list", help="recent runs")
    listing.add_argument(
        "--status", choices=["running", "waiting", "parked", "completed", "failed", "cancelled"]
    )
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=runs_list)
    quarantined = actions.add_parser(
        "quarantined",
        help="runs held because their log breaks their chain (resolve with `runs lift` or "
        "`cancel`)",
    )
    quarantined.add_argument("--json", action="store_true", help="machine-readable output")
    quarantined.set_defaults(handler=runs_quarantined)
    lift = actions.add_parser(
        "lift",
        help="accept a quarantined run's chain as it is, so that it goes on (LiftQuarantine)",
    )
    lift.add_argument("run_id")
    lift.add_argument("--by", required=True, help="who takes the decision (recorded)")
    lift.add_argument("--reason", required=True, help="why the chain may be trusted (recorded)")
    lift.add_argument("--json", action="store_true", help="machine-readable output")
    lift.set_defaults(handler=runs_lift)

    audit = commands.add_parser("audit", help="who decided what, when and why")
    audit.add_argument("--run", dest="run_id", default=None, help="one run only")
    audit.add_argument("--approver", default=None, help="one principal's actions")
    audit.add_argument("--tool", default=None)
    audit.add_argument("--since", default=None, help="ISO time, e.g. 2026-11-21T00:00:00+00:00")
    audit.add_argument(
        "--action", default=None, help="one kind of entry, e.g. decision_accepted, gate_evaluated"
    )
    audit.add_argument("--limit", type=int, default=100)
    audit.add_argument("--json", action="store_true", help="machine-readable output")
    audit.set_defaults(handler=show_audit)


@asynccontextmanager
async def queries(settings: Settings) -> AsyncIterator[Queries]:
    """Queries over the live copy of the projections (the one the pointer names)."""
    async with bootstrap.read_side(settings) as store:
        yield Queries(store)


async def runs_show(settings: Settings, args: argparse.Namespace) -> int:
    if args.wait is not None:
        await _at_rest(settings, args.run_id, args.wait)
    async with queries(settings) as q:
        run = await q.get_run(args.run_id)
        if run is None:
            raise ConfigurationError(
                f"run {args.run_id} is not in the projections (unknown, or the projector "
                "has not caught up: is `countersign projector` running?)"
            )
        async with opener(settings) as personal:  # personal values opened, or `erased`

            async def opened(events: list[EventEnvelope]) -> list[EventEnvelope]:
                return await personal.history(events, show=True)

            timeline = await q.run_timeline(args.run_id, opened)
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
    print(render.runs(runs))
    return 0


async def runs_quarantined(settings: Settings, args: argparse.Namespace) -> int:
    async with queries(settings) as q:
        rows = await q.quarantined()
    if args.json:
        print(json.dumps([row.to_json() for row in rows]))
        return 0
    print(render.audit(rows) if rows else "(no run is quarantined)")
    return 0


async def runs_lift(settings: Settings, args: argparse.Namespace) -> int:
    async with bootstrap.connected(settings, client_id="countersign-cli") as runtime:
        await runtime.publisher().lift_quarantine(
            args.run_id, lifted_by=args.by, reason=args.reason
        )
    if args.json:
        print(json.dumps({"run_id": args.run_id, "lift_requested": True}))
    else:
        print(f"lift requested for {args.run_id} (see `countersign runs show {args.run_id}`)")
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
    async with opener(settings) as personal:  # personal values opened, or `erased`
        rows = await personal.audit(rows, show=not args.json)
    if args.json:
        print(json.dumps([r.to_json() for r in rows]))
        return 0
    print(render.audit(rows))
    return 0


async def _at_rest(settings: Settings, run_id: str, timeout_s: float) -> RunRow:
    """The run, once the projector has caught up with its partition and it is not running."""
    async with (
        bootstrap.connected(settings, client_id="countersign-cli") as runtime,
        bootstrap.read_side(settings) as store,
    ):
        topic = runtime.topics.runs
        # Every partition the run can be on (it keeps the one it started on when partitions
        # are added: `engine.log.routing`).
        homes = candidates(run_id, await load_partition_map(runtime.log, runtime.topics))

        async def caught_up(store: ProjectionStore) -> bool:
            positions = await store.positions("core", topic)
            for partition in homes:
                async for _ in runtime.log.read(topic, partition, positions.get(partition, 0)):
                    return False  # a record the projector has not read yet
            return True

        async def settled() -> RunRow:
            while True:
                if await caught_up(store):
                    run = await Queries(store).get_run(run_id)
                    if run is not None and run.status != "running":
                        return run
                await asyncio.sleep(0.1)

        try:
            return await asyncio.wait_for(settled(), timeout_s)
        except TimeoutError as exc:
            raise TimeoutError(
                f"run {run_id} is not waiting or finished in the projections after "
                f"{timeout_s:g}s (is `countersign projector` running? a worker?)"
            ) from exc
