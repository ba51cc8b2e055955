"""`countersign replay | export | import`: re-run recorded runs against the code, take them home.

    countersign replay RUN_ID --app examples.refund:app       # from the projections
    countersign replay --file run.cshist --app examples.refund:app   # no Kafka, no PostgreSQL
    countersign replay --all --status waiting --app new.module:app   # can I deploy?
    countersign export RUN_ID -o run.cshist [--redact]
    countersign import run.cshist                              # into the configured log

Exit codes of `replay`: 0 the code replays the history identically (every run, with --all),
3 it diverges (or a run would park: its version is not in the app), 1 an error.
"""

from __future__ import annotations

import argparse
import getpass
import json
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from countersign import bootstrap, run_source
from countersign.atomic_write import write_atomically
from countersign.cli_options import wait_option
from countersign.personal_view import opener
from countersign.render import clean
from countersign.replay_debug import breakpoint_calls, debugger
from countersign.replay_view import render_rerun, render_table
from countersign.settings import Settings
from engine.agent.app import App
from engine.core.rerun import Rerun, RerunOptions, rerun
from engine.errors import ConfigurationError
from events.commands import ForkRun
from events.envelope import EventEnvelope, hash_encoded
from events.notices import DecisionOutcome
from events.run_events import ToolMode

__all__ = ["EXIT_DIVERGES", "EXIT_IDENTICAL", "register"]

EXIT_IDENTICAL = 0
EXIT_DIVERGES = 3

STATUSES = ("running", "waiting", "parked", "completed", "failed", "cancelled")


def register(commands: Any) -> None:
    replay = commands.add_parser(
        "replay",
        help="re-run recorded runs against the code (nothing runs); exit 3 when one diverges",
        description="Re-run a recorded run against the given code: recorded results come "
        "back, no tool, model or clock is touched. Prints every step and stops at the first "
        "difference. Exit 0: identical; 3: diverges (or would park); 1: error.",
    )
    replay.add_argument("run_id", nargs="?", help="a run in the projections")
    replay.add_argument("--app", required=True, help="module:attribute of the App to replay with")
    replay.add_argument("--file", type=Path, help="a history file (countersign export)")
    replay.add_argument("--all", action="store_true", help="every run (see --status, --since)")
    replay.add_argument("--status", choices=STATUSES, help="with --all: runs in this status")
    replay.add_argument("--since", help="with --all: runs started since (ISO time with zone)")
    replay.add_argument("--until", type=int, metavar="SEQ", help="stop after event SEQ")
    replay.add_argument("--agent-version", help="replay with this version of the agent")
    replay.add_argument("--brief", action="store_true", help="the verdict only, not every step")
    replay.add_argument("--json", action="store_true", help="machine-readable output")
    replay.add_argument(
        "--pdb",
        action="store_true",
        help="open the debugger in the agent's code: at --until SEQ, at a divergence, or at "
        "the last call",
    )
    replay.add_argument(
        "--break",
        dest="breaks",
        type=int,
        action="append",
        default=[],
        metavar="SEQ",
        help="open the debugger when the agent reaches event SEQ (repeatable)",
    )
    replay.set_defaults(handler=run_replay)

    export = commands.add_parser("export", help="write a run's events to a history file")
    export.add_argument("run_id")
    export.add_argument("-o", "--output", type=Path, required=True, help="e.g. run.cshist")
    export.add_argument(
        "--redact", action="store_true", help="replace personal fields (input, arguments, ...)"
    )
    export.add_argument("--json", action="store_true", help="machine-readable output")
    export.set_defaults(handler=run_export)

    fork = commands.add_parser(
        "fork",
        help="start a new run from a run's history up to an interrupt, to try another decision",
        description="The fork's history is the run's events up to the interrupt (recorded as "
        "forked from RUN_ID@SEQ); a decision on its copy of the interrupt lets it go on. By "
        "default no tool runs for real (dry run: recorded or stand-in results, ctx.dry_run).",
    )
    fork.add_argument("run_id", help="the run to fork (read from the projections)")
    fork.add_argument("--at", required=True, metavar="INTERRUPT_ID", help="fork at this interrupt")
    fork.add_argument("--decide", choices=["approve", "edit", "reject", "respond"])
    fork.add_argument("--by", default=None, help="who forks and decides (default: $USER)")
    fork.add_argument("--reason", default="")
    fork.add_argument("--args", default=None, help="edit: the new arguments (JSON object)")
    fork.add_argument("--response", default=None, help="respond: the answer (JSON)")
    fork.add_argument(
        "--live", action="store_true", help="run idempotent tools for real (others refused)"
    )
    fork.add_argument("--yes", action="store_true", help="with --live: run every tool for real")
    wait_option(fork, "for the decision's outcome")
    fork.add_argument("--json", action="store_true")
    fork.set_defaults(handler=run_fork)

    timeline = commands.add_parser(
        "timeline",
        help="a run as a timeline: when, how long after the step before, who, what",
    )
    timeline.add_argument("run_id", nargs="?", help="a run in the projections")
    timeline.add_argument("--file", type=Path, help="a history file instead")
    timeline.add_argument("--html", type=Path, metavar="OUT", help="write a self-contained page")
    timeline.add_argument("--json", action="store_true", help="machine-readable output")
    timeline.set_defaults(handler=run_timeline)

    importing = commands.add_parser(
        "import", help="append a history file's events, byte for byte, to the configured log"
    )
    importing.add_argument("file", type=Path)
    importing.add_argument("--json", action="store_true", help="machine-readable output")
    importing.set_defaults(handler=run_import)


# -- replay ---------------------------------------------------------------------------------------


async def run_replay(settings: Settings, args: argparse.Namespace) -> int:
    if sum(bool(x) for x in (args.run_id, args.file, args.all)) != 1:
        raise ConfigurationError("name a RUN_ID, or give --file FILE, or --all")
    if (args.status or args.since) and not args.all:
        raise ConfigurationError("--status and --since go with --all")
    app = bootstrap.load_app(args.app)
    codec = bootstrap.codec(settings)
    if args.all:
        return await _replay_all(settings, app, args)
    if args.file is not None:
        events = list(run_source.from_file(args.file, codec).events)
    else:
        async with bootstrap.read_side(settings) as store:
            events = list((await run_source.from_projections(store, args.run_id, codec)).events)
    async with opener(settings) as personal:  # erased personal values replay as erased
        events = await personal.history(events)
    return _replay_one(app, events, args)


def _replay_one(app: App, history: Sequence[EventEnvelope], args: argparse.Namespace) -> int:
    options = RerunOptions(
        until=args.until,
        version=args.agent_version,
        steps=not args.brief,
        frames=args.until is not None,
    )
    if args.pdb or args.breaks:
        options = _with_debugger(options, history, args)
    report = rerun(app, history, options)
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        print(_safe(render_rerun(report, app=args.app, steps=not args.brief)))
    return EXIT_IDENTICAL if report.identical else EXIT_DIVERGES


def _safe(text: str) -> str:
    """Text for the terminal: whatever the events hold, no control character gets through."""
    return "\n".join(clean(line) for line in text.split("\n"))


def _with_debugger(
    options: RerunOptions, history: Sequence[EventEnvelope], args: argparse.Namespace
) -> RerunOptions:
    seqs = list(args.breaks)
    if args.pdb and not seqs:
        seqs = [args.until if args.until is not None else len(history) - 1]
    try:
        calls = breakpoint_calls(history, seqs)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc
    return RerunOptions(
        until=options.until,
        version=options.version,
        steps=options.steps,
        frames=options.frames,
        pause_at=calls,
        pause=debugger(),
    )


async def _replay_all(settings: Settings, app: App, args: argparse.Namespace) -> int:
    from countersign.cli_projections import _since

    since = _since(args.since)
    started = time.perf_counter()
    reports: list[Rerun] = []
    refused: list[tuple[str, str]] = []
    options = RerunOptions(version=args.agent_version, explain=3, state=False)
    async with bootstrap.read_side(settings) as store, opener(settings) as personal:
        async for loaded in run_source.many_from_projections(
            store, bootstrap.codec(settings), status=args.status, since=since
        ):
            if isinstance(loaded, tuple):
                refused.append(loaded)
                continue
            reports.append(rerun(app, await personal.history(loaded.events), options))
    seconds = time.perf_counter() - started
    if args.json:
        runs = [{k: v for k, v in r.to_json().items() if k != "steps"} for r in reports]
        unreadable = [{"run_id": run_id, "reason": why} for run_id, why in refused]
        print(json.dumps({"runs": runs, "unreadable": unreadable, "seconds": round(seconds, 3)}))
    else:
        print(_safe(render_table(reports, refused, seconds)))
    clean = all(r.identical for r in reports) and not refused
    return EXIT_IDENTICAL if clean else EXIT_DIVERGES


# -- timeline -------------------------------------------------------------------------------------


async def run_timeline(settings: Settings, args: argparse.Namespace) -> int:
    from countersign.timeline_view import render_html, render_text, timeline_rows

    if bool(args.run_id) == bool(args.file):
        raise ConfigurationError("name a RUN_ID, or give --file FILE")
    codec = bootstrap.codec(settings)
    if args.file is not None:
        events = list(run_source.from_file(args.file, codec).events)
    else:
        async with bootstrap.read_side(settings) as store:
            events = list((await run_source.from_projections(store, args.run_id, codec)).events)
    async with opener(settings) as personal:
        events = await personal.history(events, show=True)
    if args.json:
        print(json.dumps([row.to_json() for row in timeline_rows(events)], ensure_ascii=False))
        return 0
    if args.html is None:
        print(_safe(render_text(events)))
        return 0
    write_atomically(args.html, render_html(events).encode())
    print(
        _safe(f"wrote the timeline of run {events[0].run_id} ({len(events)} events) to {args.html}")
    )
    return 0


# -- export / import ------------------------------------------------------------------------------


async def run_export(settings: Settings, args: argparse.Namespace) -> int:
    from events.history_file import write_history
    from events.redact import redact_run

    codec = bootstrap.codec(settings)
    async with bootstrap.read_side(settings) as store:
        loaded = await run_source.from_projections(store, args.run_id, codec)
    raws = list(loaded.raw)
    origin_head = ""
    if args.redact:
        origin_head = hash_encoded(raws[-1])
        raws = redact_run(codec, loaded.events)
    data = write_history(codec, raws, redacted=args.redact, origin_head=origin_head)
    write_atomically(args.output, data)
    done = {"run_id": args.run_id, "file": str(args.output), "events": len(raws)}
    if args.json:
        print(json.dumps({**done, "redacted": args.redact, "bytes": len(data)}))
        return 0
    redacted = ", personal fields redacted" if args.redact else ""
    print(f"exported {len(raws)} events of run {args.run_id} to {args.output}{redacted}")
    return 0


async def run_import(settings: Settings, args: argparse.Namespace) -> int:
    from engine.log.port import Outgoing
    from engine.log.routing import candidates, home
    from engine.log.routing_log import load_partition_map

    codec = bootstrap.codec(settings)
    history = run_source.from_file(args.file, codec)
    async with bootstrap.connected(settings, client_id="countersign-import") as runtime:
        event_log, topics = runtime.log, runtime.topics
        partition_map = await load_partition_map(event_log, topics)
        partition = home(history.run_id, partition_map)  # where a run started now lives
        for candidate in candidates(history.run_id, partition_map):
            async for record in event_log.read(topics.runs, candidate, 0):
                if record.key == history.run_id:
                    raise ConfigurationError(
                        f"run {history.run_id} already has events in this log: import into a "
                        "log that does not have it"
                    )
        records = [
            Outgoing(topics.runs, history.run_id, raw, partition, (codec.schema_header(raw),))
            for raw in history.raw
        ]
        start = history.events[0].payload
        command_id = getattr(start, "command_id", "")
        records.append(Outgoing(topics.index, history.run_id, command_id.encode(), partition))
        await event_log.publish(records)
    if args.json:
        done = {"run_id": history.run_id, "events": len(history.raw), "partition": partition}
        print(json.dumps({**done, "head": history.head}))
        return 0
    print(
        f"imported {len(history.raw)} events of run {history.run_id} "
        f"(partition {partition}, head {history.head[:12]})"
    )
    return 0


# -- fork -----------------------------------------------------------------------------------------


async def run_fork(settings: Settings, args: argparse.Namespace) -> int:
    if args.yes and not args.live:
        raise ConfigurationError("--yes goes with --live")
    mode: ToolMode = ("live" if args.yes else "idempotent") if args.live else "dry-run"
    codec = bootstrap.codec(settings)
    async with bootstrap.read_side(settings) as store:
        origin = await run_source.from_projections(store, args.run_id, codec)
    async with bootstrap.connected(settings, client_id="countersign-cli") as runtime:
        fork, outcome = await _fork(runtime, origin, mode, args)
    _print_fork(fork, mode, outcome, args)
    return 0 if outcome is None or outcome.accepted else 2


async def _fork(
    runtime: bootstrap.Runtime,
    origin: run_source.LoadedRun,
    mode: ToolMode,
    args: argparse.Namespace,
) -> tuple[ForkRun, DecisionOutcome | None]:
    """Publish the fork, and the decision on its interrupt if one is asked for."""
    from countersign.decision_input import json_object, json_value
    from engine.core.forking import colocated_id, fork_command, fork_interrupt_id

    edited = json_object(args.args, "--args") if args.args is not None else None
    if args.decide == "edit" and edited is None:
        raise ConfigurationError("an edit needs --args '{...}' with the new arguments")
    response = json_value(args.response, "--response") if args.response is not None else None
    by = args.by or getpass.getuser()
    partitions = await runtime.log.partition_count(runtime.topics.runs)
    fork_id = colocated_id(args.run_id, partitions, lambda: str(uuid.uuid4()))
    try:
        command = fork_command(
            origin.events,
            origin.raw,
            at_interrupt=args.at,
            fork_id=fork_id,
            requested_by=by,
            tool_mode=mode,
            command_id=str(uuid.uuid4()),
            issued_at_us=time.time_ns() // 1000,
        )
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc
    publisher = runtime.publisher()
    await publisher.publish(command)
    if not args.decide:
        return command, None
    position = await publisher.outcome_position(fork_id) if args.wait else None
    decision_id = await publisher.submit_decision(
        fork_id,
        fork_interrupt_id(fork_id, args.at),
        args.decide,
        decided_by=by,
        reason=args.reason,
        edited_args=edited,
        response=response,
    )
    if position is None:
        return command, None
    return command, await publisher.wait_for_outcome(decision_id, position, args.wait)


def _print_fork(
    fork: ForkRun, mode: ToolMode, outcome: DecisionOutcome | None, args: argparse.Namespace
) -> None:
    from engine.core.forking import fork_interrupt_id

    seq = len(fork.prefix) - 1
    interrupt_id = fork_interrupt_id(fork.run_id, fork.at_interrupt)
    status = None
    if outcome is not None:
        status = outcome.status or ("accepted" if outcome.accepted else "refused")
    if args.json:
        shown = {
            "run_id": fork.run_id,
            "forked_from": fork.origin_run_id,
            "forked_at": seq,
            "interrupt_id": interrupt_id,
            "tool_mode": mode,
            "decision": status,
            "reason": None if outcome is None else outcome.reason,
        }
        print(json.dumps(shown))
        return
    print(
        f"{fork.run_id} forked from {fork.origin_run_id}@{seq} ({mode}); interrupt {interrupt_id}"
    )
    if mode == "idempotent":
        print("live fork: idempotent tools run for real, others are refused (--yes runs them)")
    if outcome is not None:
        detail = f": {outcome.reason}" if outcome.reason and not outcome.accepted else ""
        print(_safe(f"decision {status}{detail}"))
