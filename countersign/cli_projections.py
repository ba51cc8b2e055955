"""`countersign inbox | stats | recommendations | what-if | verify | projections status|rebuild`.

The read side people and other systems use every day, over the PostgreSQL projections. Every
command reads the live copy the home schema's pointer names (see `projections.live`) and
takes `--json`.

Settings (environment; the flags override):
  COUNTERSIGN_PROJECTION_SCHEMA      home schema of the projections (default: public)
  COUNTERSIGN_INBOX_DUE_SOON_S       "due soon" = deadline within this many seconds (3600)
  COUNTERSIGN_RECOMMEND_MIN_DECISIONS    N: decisions before a tool is judged (20)
  COUNTERSIGN_RECOMMEND_AUTO_RATE        approved share for AUTO/NOTIFY (0.95)
  COUNTERSIGN_RECOMMEND_TIGHTEN_RATE     approved share at or under which to tighten (0.30)
  COUNTERSIGN_RECOMMEND_CALIBRATION_RATE approved share above a confidence threshold (0.95)
  COUNTERSIGN_RECOMMEND_FATIGUE_RATE     approved share of a rubber-stamping approver (0.95)
  COUNTERSIGN_RECOMMEND_FATIGUE_SECONDS  their median time to decide, at most (10)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from countersign import bootstrap, render
from countersign.settings import Settings
from engine.errors import ConfigurationError
from projections.errors import ProjectionsError
from projections.insights import Insights
from projections.recommend import DEFAULT_SETTINGS, RecommendationSettings
from projections.stats import DIMENSIONS
from projections.verify import VerifyReport
from projections.whatif import Policy, PolicyError

_RECOMMEND_ENV = {
    "min_decisions": "COUNTERSIGN_RECOMMEND_MIN_DECISIONS",
    "auto_rate": "COUNTERSIGN_RECOMMEND_AUTO_RATE",
    "tighten_rate": "COUNTERSIGN_RECOMMEND_TIGHTEN_RATE",
    "calibration_rate": "COUNTERSIGN_RECOMMEND_CALIBRATION_RATE",
    "fatigue_rate": "COUNTERSIGN_RECOMMEND_FATIGUE_RATE",
    "fatigue_seconds": "COUNTERSIGN_RECOMMEND_FATIGUE_SECONDS",
}


@dataclass(frozen=True, kw_only=True)
class ProjectionSettings:
    """The read side's settings, from `COUNTERSIGN_*` variables (see the module doc)."""

    schema: str = "public"
    due_soon_s: float = 3600.0
    recommend: RecommendationSettings = DEFAULT_SETTINGS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ProjectionSettings:
        env = os.environ if env is None else env
        base = cls()
        values: dict[str, Any] = {}
        for f in fields(RecommendationSettings):
            name = _RECOMMEND_ENV.get(f.name)
            if name and env.get(name):
                values[f.name] = _number(env[name], name, int if f.type == "int" else float)
        return cls(
            schema=env.get("COUNTERSIGN_PROJECTION_SCHEMA") or base.schema,
            due_soon_s=_number(
                env.get("COUNTERSIGN_INBOX_DUE_SOON_S") or str(base.due_soon_s),
                "COUNTERSIGN_INBOX_DUE_SOON_S",
                float,
            ),
            recommend=replace(base.recommend, **values),
        )


def _number(text: str, name: str, kind: type[int] | type[float]) -> Any:
    try:
        return kind(text)
    except ValueError as exc:
        raise ConfigurationError(f"{name}={text!r} is not a number") from exc


def register(commands: Any) -> None:
    inbox = commands.add_parser("inbox", help="approval requests: open (oldest first) or closed")
    inbox.add_argument(
        "--for", dest="principal", default=None, help="only what PRINCIPAL may decide now"
    )
    inbox.add_argument(
        "--role",
        dest="roles",
        action="append",
        default=[],
        help="a role PRINCIPAL holds (repeat for several; `support` or `role:support`)",
    )
    inbox.add_argument("--overdue", action="store_true", help="only overdue ones, and by team")
    inbox.add_argument("--closed", action="store_true", help="closed ones with their outcome")
    inbox.add_argument("--due-soon", type=float, default=None, metavar="SECONDS")
    inbox.add_argument("--limit", type=int, default=100)
    inbox.add_argument("--long", action="store_true", help="each request in full, not a table")
    inbox.add_argument("--json", action="store_true", help="machine-readable output")
    inbox.set_defaults(handler=show_inbox)

    stats = commands.add_parser("stats", help="decision statistics")
    stats.add_argument("--by", choices=DIMENSIONS, default="tool")
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.set_defaults(handler=show_stats)

    recommendations = commands.add_parser(
        "recommendations", help="what to relax, tighten or look at, with the evidence"
    )
    recommendations.add_argument("--min-decisions", type=int, default=None, metavar="N")
    recommendations.add_argument("--since", default=None, help="ISO time: only later requests")
    recommendations.add_argument("--json", action="store_true", help="machine-readable output")
    recommendations.set_defaults(handler=show_recommendations)

    what_if = commands.add_parser(
        "what-if", help="replay a proposed policy (JSON file) against past calls and decisions"
    )
    what_if.add_argument("policy_file", type=Path)
    what_if.add_argument("--since", default=None, help="ISO time: only later calls")
    what_if.add_argument("--json", action="store_true", help="machine-readable output")
    what_if.set_defaults(handler=show_what_if)

    verify = commands.add_parser(
        "verify", help="recompute runs' hash chains from the log and the projections"
    )
    verify.add_argument("run_ids", nargs="*", metavar="RUN_ID")
    verify.add_argument("--all", action="store_true", help="every run")
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.set_defaults(handler=run_verify)

    projections = commands.add_parser("projections", help="the projections themselves")
    actions = projections.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = actions.add_parser("status", help="positions, end offsets and lag per partition")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=show_status)
    rebuild = actions.add_parser(
        "rebuild", help="build a fresh copy from offset 0 beside the live one, then switch"
    )
    rebuild.add_argument("name", help="the projection: core")
    rebuild.add_argument("--max-lag", type=int, default=100, help="switch within N records")
    rebuild.add_argument("--grace", type=float, default=3.0, help="seconds to go on after it")
    rebuild.add_argument("--drop-previous", action="store_true", help="drop the old copy")
    rebuild.add_argument("--group", default=None, help="consumer group prefix")
    rebuild.add_argument("--json", action="store_true", help="machine-readable output")
    rebuild.set_defaults(handler=run_rebuild)
    switch = actions.add_parser("switch", help="point the live copy at SCHEMA (roll back)")
    switch.add_argument("schema")
    switch.add_argument("--json", action="store_true", help="machine-readable output")
    switch.set_defaults(handler=run_switch)


# -- plumbing -------------------------------------------------------------------------------------


@asynccontextmanager
async def live_store(settings: Settings) -> AsyncIterator[Any]:
    """The live copy's store, in the home schema the projection settings name."""
    home = ProjectionSettings.from_env().schema
    async with bootstrap.read_side(replace(settings, projection_schema=home)) as store:
        yield store


def _since(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        since = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigurationError(f"--since {text!r}: {exc}") from exc
    if since.tzinfo is None:
        raise ConfigurationError(f"--since {text!r}: give a time zone, e.g. +00:00")
    return since


def _print_json(value: object) -> None:
    print(json.dumps(value, ensure_ascii=False))


# -- inbox ----------------------------------------------------------------------------------------


async def show_inbox(settings: Settings, args: argparse.Namespace) -> int:
    config = ProjectionSettings.from_env()
    due_soon = timedelta(seconds=args.due_soon if args.due_soon is not None else config.due_soon_s)
    async with live_store(settings) as store:
        insights = Insights(store, due_soon=due_soon)
        try:
            items = await insights.inbox(
                args.principal,
                tuple(args.roles),
                overdue=args.overdue,
                closed=args.closed,
                limit=args.limit,
            )
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        teams = await insights.overdue_by_team() if args.overdue else None
    if args.json:
        out: dict[str, object] = {"items": [i.to_json() for i in items]}
        if teams is not None:
            out["overdue_by_team"] = [t.to_json() for t in teams]
        _print_json(out)
        return 0
    if args.long:
        print(render.inbox_long(items))
    else:
        print(render.inbox(items, closed=args.closed))
    if teams:
        print("\noverdue by team:")
        print(render.teams(teams))
    return 0


# -- stats, recommendations, what-if --------------------------------------------------------------


async def show_stats(settings: Settings, args: argparse.Namespace) -> int:
    async with live_store(settings) as store:
        rows = await Insights(store).stats(args.by)
    if args.json:
        _print_json([r.to_json() for r in rows])
        return 0
    print(render.stats(rows, args.by))
    return 0


async def show_recommendations(settings: Settings, args: argparse.Namespace) -> int:
    config = ProjectionSettings.from_env().recommend
    if args.min_decisions is not None:
        config = replace(config, min_decisions=args.min_decisions)
    async with live_store(settings) as store:
        found = await Insights(store).recommendations(config, _since(args.since))
    if args.json:
        _print_json([r.to_json() for r in found])
        return 0
    print(render.recommendations(found))
    return 0


async def show_what_if(settings: Settings, args: argparse.Namespace) -> int:
    try:
        policy = Policy.from_json(json.loads(args.policy_file.read_text("utf-8")))
    except (OSError, ValueError) as exc:  # PolicyError and JSONDecodeError are ValueErrors
        kind = "policy" if isinstance(exc, PolicyError) else "file"
        raise ConfigurationError(f"{args.policy_file}: bad {kind}: {exc}") from exc
    async with live_store(settings) as store:
        report = await Insights(store).what_if(policy, _since(args.since))
    if args.json:
        _print_json(report.to_json())
        return 0
    print(render.what_if(report))
    return 0


# -- verify ---------------------------------------------------------------------------------------


async def run_verify(settings: Settings, args: argparse.Namespace) -> int:
    from countersign.trusting import anchor_check
    from engine.log.routing_log import load_partition_map
    from projections.verify import verify_report

    if bool(args.run_ids) == bool(args.all):
        raise ConfigurationError("name one or more RUN_IDs, or --all")
    async with (
        bootstrap.connected(settings, client_id="countersign-verify") as runtime,
        live_store(settings) as store,
    ):
        report = await verify_report(
            runtime.log,
            runtime.topics.runs,
            store,
            runtime.codec,
            None if args.all else args.run_ids,
            anchors=await anchor_check(settings, runtime.topics.anchors),
            partition_map=await load_partition_map(runtime.log, runtime.topics),
        )
    verdicts = report.runs
    broken = [v for v in verdicts if not v.ok]
    problems = [problem for p in report.partitions for problem in p.problems]
    unknown = [v.run_id for v in verdicts if not v.log_events and not v.projected_events]
    if args.json:
        _print_json(
            {
                "runs": len(verdicts),
                "broken": len(broken),
                "verdicts": [v.to_json() for v in (broken if args.all else verdicts)],
                "anchor_problems": len(problems),
                "anchors": [p.to_json() for p in report.partitions],
            }
        )
    else:
        print(render.verdicts(verdicts, all_runs=args.all))
        print(_render_anchors(report))
    if unknown and not args.all:
        print(f"countersign: no events for {', '.join(unknown)}", file=sys.stderr)
    return 1 if broken or problems or (unknown and not args.all) else 0


def _render_anchors(report: VerifyReport) -> str:
    if not report.partitions:
        return "anchors: none checked (no worker keys in the trust file; docs/anchors.md)"
    lines = [f"BROKEN anchors: {problem}" for p in report.partitions for problem in p.problems]
    tail = sum(v.unanchored or 0 for v in report.runs)
    count = sum(p.anchors for p in report.partitions)
    lines.append(f"anchors: {count} signed anchors checked; {tail} events not anchored yet")
    return "\n".join(lines)


# -- projections status | rebuild | switch --------------------------------------------------------


async def show_status(settings: Settings, args: argparse.Namespace) -> int:
    from projections.status import projection_status

    async with (
        bootstrap.connected(settings, client_id="countersign-status") as runtime,
        live_store(settings) as store,
    ):
        status = await projection_status(runtime.log, store, runtime.topics.runs)
    failed = 1 if status.problems else 0  # positions of another log, or past its end
    if args.json:
        _print_json(status.to_json())
        return failed
    print(render.status(status))
    return failed


async def run_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    from projections.rebuild import rebuild

    try:
        async with (
            bootstrap.connected(settings, client_id="countersign-rebuild") as runtime,
            bootstrap.database(settings) as url,
        ):
            done = await rebuild(
                runtime.log,
                url,
                runtime.topics.runs,
                runtime.codec,
                group=args.group or settings.projector_group,
                home=ProjectionSettings.from_env().schema,
                projection=args.name,
                max_lag=args.max_lag,
                grace_s=args.grace,
                drop_previous=args.drop_previous,
            )
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc
    if args.json:
        _print_json(done.to_json())
        return 0
    dropped = " (dropped)" if done.dropped_previous else ""
    print(
        f"{done.projection}: rebuilt {done.events} records into {done.schema} in "
        f"{done.seconds:.1f}s; live now (was {done.previous}{dropped})"
    )
    return 0


async def run_switch(settings: Settings, args: argparse.Namespace) -> int:
    home = replace(settings, projection_schema=ProjectionSettings.from_env().schema)
    try:
        async with bootstrap.read_side(home, schema=home.projection_schema) as store:
            previous = await store.switch_live("core", args.schema)
    except (ValueError, ProjectionsError) as exc:
        raise ConfigurationError(str(exc)) from exc
    if args.json:
        _print_json({"projection": "core", "schema": args.schema, "previous": previous})
    else:
        print(f"core: live copy is now {args.schema} (was {previous})")
    return 0
