"""The reviewer's side of the CLI: `inbox show INTERRUPT_ID` (the whole card), `runs
resume-parked RUN_ID`, and what `decide` looks up so that a person types only what they
decide (the run's one open request, `--set` over the proposed arguments, a plain-text
answer). It reads the projections, as the web inbox does.

Registered beside the commands it extends (`inbox`, `runs`): `cli_review.register(commands)`
after theirs.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consumers.publisher import OutcomeTimeout
from countersign import bootstrap
from countersign.decision_input import (
    choose_interrupt,
    json_object,
    json_value,
    merged_edit,
    parse_sets,
    response_of,
)
from countersign.personal_view import opener
from countersign.render import clean
from countersign.settings import Settings
from engine.errors import ConfigurationError
from events.approval import DECISION_KINDS
from events.envelope import EventEnvelope
from events.json import Json, JsonObject, canonical_json
from events.run_events import InterruptRaised, RunCompleted, RunFailed, RunParked
from projections.card import ReviewCard

MAX_SET_FILE_BYTES = 1_000_000
POLL_S = 0.25


def register(commands: Any) -> None:
    inbox: argparse.ArgumentParser = commands.choices["inbox"]
    inbox_actions = inbox.add_subparsers(
        dest="inbox_action", metavar="show INTERRUPT_ID", required=False
    )
    show = inbox_actions.add_parser(
        "show", help="one request in full: arguments, context, answer schema, digest, deadline"
    )
    show.add_argument("interrupt_id", metavar="INTERRUPT_ID|RUN_ID")
    show.add_argument(
        "--wait", type=float, default=None, metavar="SECONDS", help="wait for it to be projected"
    )
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=show_card)

    runs: argparse.ArgumentParser = commands.choices["runs"]
    resume = _subcommands(runs).add_parser(
        "resume-parked",
        help="continue a parked run once its code replays again (fixed, or the old version "
        "deployed again); parked again, with why, if it still diverges",
    )
    resume.add_argument("run_id")
    resume.add_argument("--by", default=None, help="who resumes it (default: $USER)")
    resume.add_argument("--reason", default="", help="why (kept in the run and the audit)")
    resume.add_argument("--wait", type=float, default=30.0, metavar="SECONDS")
    resume.add_argument("--json", action="store_true", help="machine-readable output")
    resume.set_defaults(handler=resume_parked)


def _subcommands(parser: argparse.ArgumentParser) -> Any:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise ConfigurationError(f"{parser.prog} has no subcommands")  # pragma: no cover


async def _card(settings: Settings, ident: str, wait_s: float = 0.0) -> ReviewCard:
    """The card of request `ident`, or of run `ident`'s one open request; waiting up to
    `wait_s` for the projections to show it."""
    from countersign.cli_queries import queries

    deadline = time.monotonic() + wait_s
    while True:
        async with queries(settings) as q:
            card = await q.card(ident)
            if card is None:
                rows = [i for i in await q.interrupts(ident) if i.status == "open"]
                if len(rows) > 1:
                    choose_interrupt(ident, rows, None)  # names them
                card = await q.card(rows[0].interrupt_id) if rows else None
                run = None if rows else await q.get_run(ident)
                if run is not None and run.status == "parked":
                    raise ConfigurationError(
                        f"run {ident} is parked: it takes no decision until it is resumed "
                        f"(countersign runs resume-parked {ident}) or cancelled; why it "
                        f"stopped: countersign runs show {ident}"
                    )
        if card is not None:
            async with opener(settings) as personal:  # personal values opened, or erased
                return await personal.card(card)
        if time.monotonic() >= deadline:
            raise ConfigurationError(
                f"no request {ident} (nor an open request of a run {ident}) in the "
                "projections: unknown, decided, or the projector has not caught up (is "
                "`countersign projector` running? --wait SECONDS waits for it)"
            )
        await asyncio.sleep(POLL_S)  # polling the projections, which another process feeds


# -- inbox show -------------------------------------------------------------------------------


async def show_card(settings: Settings, args: argparse.Namespace) -> int:
    card = await _card(settings, args.interrupt_id, args.wait or 0.0)
    if args.json:
        print(json.dumps(card.to_json(), ensure_ascii=False))
    else:
        print(render_card(card))
    return 0


def render_card(card: ReviewCard) -> str:
    """The card as text: what changed first, then everything the request carries."""
    row, request = card.row, card.request
    lines = [f"{request.kind.upper()} REQUEST  {row.interrupt_id}  ({row.status})"]
    changes = card.changes
    if changes:
        lines.append("CHANGED since the previous proposal:")
        lines.extend(_changes(changes))
    lines.append(f"  title      {request.title}")
    lines.append(f"  run        {row.run_id}  agent {row.agent}  asked by {row.requested_by}")
    if request.tool:
        lines.append(f"  tool       {request.tool}")
        lines.append("  arguments")
        lines.extend(_arguments(request.args or {}))
    if request.reasoning:
        lines.append(f"  why        {request.reasoning}")
    if request.impact:
        lines.append(f"  impact     {request.impact}")
    if request.context is not None:
        lines.extend(_block("context", request.context))
    risk = f"  risk       {request.risk}"
    if request.amount is not None:
        risk += f"   amount {request.amount:,.2f}"
    if request.confidence is not None:
        risk += f"   confidence {request.confidence:g}"
    lines.append(risk)
    if request.policy:
        lines.append(
            f"  policy     {request.policy}{f' rule {request.rule}' if request.rule else ''}"
        )
    if request.kind == "question":
        lines.extend(_block("answer", request.answer_schema or "anything (JSON or text)"))
    lines.append(f"  decide     {' / '.join(request.allowed)}")
    level = f"level {request.level} of {request.levels}" if request.levels > 1 else "one level"
    votes = f", {row.votes} of {request.quorum} approvals" if request.quorum > 1 else ""
    lines.append(f"  who        {_who(card)}  ({level}{votes})")
    lines.append(f"  deadline   {_deadline(card)}")
    lines.append(f"  then       {card.at_deadline}")
    lines.append(f"  digest     {request.digest}")
    if row.status == "open":
        lines.append(_example(card))
    else:
        lines.append(f"  outcome    {row.status} by {row.decided_by}: {row.reason or '-'}")
    # Everything here came from agent code, tools or people: no line may drive the terminal.
    return "\n".join(clean(line) for line in lines)


def _changes(changes: JsonObject) -> list[str]:
    out = []
    for kind in ("changed", "added", "removed"):
        entries = changes.get(kind)
        if not isinstance(entries, dict):
            continue
        for name, value in entries.items():
            if kind == "changed" and isinstance(value, dict):
                shown = f"{canonical_json(value.get('from'))} -> {canonical_json(value.get('to'))}"
            else:
                shown = canonical_json(value)
            out.append(f"  ! {name}: {kind} {shown}")
    return out


def _arguments(args: JsonObject) -> list[str]:
    """One argument a line; text as it reads (lines indented), anything else as JSON."""
    out = []
    for name, value in args.items():
        if isinstance(value, str) and ("\n" in value or len(value) > 60):
            out.append(f"    {name}:")
            out.extend(f"      | {line}" for line in value.splitlines() or [""])
        else:
            out.append(f"    {name}: {json.dumps(value, ensure_ascii=False)}")
    return out


def _who(card: ReviewCard) -> str:
    """Who may decide, and who may not although listed (the requester, earlier approvers,
    the editor of the call)."""
    barred = list(card.row.excluded)
    if card.request.kind != "question" and card.row.requested_by:
        barred.append(card.row.requested_by)
    shown = ", ".join(card.deciders)
    named = [b for b in dict.fromkeys(barred) if f"anyone but {b}" not in shown]
    return shown + (f"; not {', '.join(named)}" if named else "")


def _block(label: str, value: Json) -> list[str]:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    first, *rest = text.splitlines() or [""]
    return [f"  {label:<10} {first}", *(f"             {line}" for line in rest)]


def _deadline(card: ReviewCard) -> str:
    deadline = card.row.deadline
    if deadline is None:
        return "none"
    shown = deadline.strftime("%Y-%m-%d %H:%M:%S %Z")
    left = card.seconds_left
    if left is None:
        return shown
    if left <= 0:
        return f"{shown} (passed {_span(-left)} ago)"
    return f"{shown} (in {_span(left)})"


def _span(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _example(card: ReviewCard) -> str:
    kind = card.request.allowed[0] if card.request.allowed else "approve"
    extra = ""
    if card.request.kind == "question":
        kind, extra = "respond", " --response '...'"
    elif "edit" in card.request.allowed:
        extra = "   (edit: --set NAME=VALUE, NAME=@file)"
    row = card.row
    return (
        f"  e.g.       countersign decide {row.run_id} {row.interrupt_id} {kind} --by NAME{extra}"
    )


# -- decide -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecisionInput:
    """A decision as the command will publish it; `looked_up` when the projections said
    which request (then `settled` waits for them to show it decided)."""

    interrupt_id: str
    kind: str
    edited_args: JsonObject | None
    response: Json
    digest: str
    looked_up: bool = False


async def settled(settings: Settings, decision: DecisionInput, wait_s: float) -> None:
    """After an accepted decision on a request the projections named: wait (up to `wait_s`)
    until they show it closed, so that the next `decide RUN ...` reads the next request."""
    if not decision.looked_up:
        return
    from countersign.cli_queries import queries

    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        async with queries(settings) as q:
            card = await q.card(decision.interrupt_id)
        if card is None or card.row.status != "open":
            return
        await asyncio.sleep(POLL_S)  # the projector, another process, moves it on


def decide_arguments(decide: argparse.ArgumentParser) -> None:
    """The arguments `decide` takes (one place, shared with the parser in `cli_runs`)."""
    decide.add_argument("run_id")
    decide.add_argument(
        "target",
        metavar="INTERRUPT_ID|KIND",
        help="the request, or the kind when the run has one open request",
    )
    decide.add_argument("kind", nargs="?", metavar="KIND", help=" | ".join(DECISION_KINDS))
    decide.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="edit: change one argument (VALUE as JSON if it is, else text; NAME=@FILE reads "
        "a file; NAME:=JSON); merged over the proposed arguments",
    )


async def decision_input(settings: Settings, args: argparse.Namespace) -> DecisionInput:
    """Which request, and the edit or answer, from what was typed; the projections are read
    only when something must be looked up (the request, the proposed arguments, the schema)."""
    wanted, kind = _target(args.target, args.kind)
    whole = json_object(args.args, "--args") if args.args is not None else None
    sets = parse_sets(args.sets, _read_text)
    if sets and kind != "edit":
        raise ConfigurationError("--set is for an edit")
    needs_card = wanted is None or bool(sets) or (kind == "respond" and args.response is not None)
    if not needs_card:
        if kind == "edit" and whole is None:
            raise ConfigurationError("an edit needs --set NAME=VALUE or --args '{...}'")
        response = json_value(args.response, "--response") if args.response is not None else None
        assert wanted is not None
        return DecisionInput(wanted, kind, whole, response, args.digest)
    card = await _card(settings, wanted or args.run_id, args.wait or 0.0)
    if card.row.run_id != args.run_id:
        raise ConfigurationError(
            f"request {card.row.interrupt_id} belongs to run {card.row.run_id}, not {args.run_id}"
        )
    edited = None
    if kind == "edit":
        edited = merged_edit(card.request.args, sets, card.request.args_schema, whole)
    response = None
    if args.response is not None:
        response = response_of(args.response, card.request.answer_schema)
    digest = args.digest or card.request.digest
    return DecisionInput(card.row.interrupt_id, kind, edited, response, digest, looked_up=True)


def _target(target: str, kind: str | None) -> tuple[str | None, str]:
    """(the interrupt named, or None: the run's only open one; the kind)."""
    wanted: str | None = target
    if kind is None:
        wanted, kind = None, target
    if kind not in DECISION_KINDS:
        raise ConfigurationError(
            f"unknown decision kind {kind!r}; one of {', '.join(DECISION_KINDS)}"
        )
    return wanted, kind


def _read_text(path: str) -> str:
    file = Path(path)
    try:
        if file.stat().st_size > MAX_SET_FILE_BYTES:
            raise ConfigurationError(f"--set @{path}: over {MAX_SET_FILE_BYTES} bytes")
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"--set @{path}: {exc}") from exc


# -- runs resume-parked -----------------------------------------------------------------------


async def resume_parked(settings: Settings, args: argparse.Namespace) -> int:
    from countersign.cli_queries import queries

    async with queries(settings) as q:
        run = await q.get_run(args.run_id)
    if run is not None and run.status != "parked":
        raise ConfigurationError(f"run {args.run_id} is {run.status}, not parked")
    async with bootstrap.connected(settings, client_id="countersign-cli") as runtime:
        publisher = runtime.publisher()
        position = await publisher.run_position(args.run_id)
        command_id = await publisher.resume_run(
            args.run_id, resumed_by=args.by or getpass.getuser(), reason=args.reason
        )
        try:
            events = await publisher.wait_for_resumed(args.run_id, command_id, position, args.wait)
        except OutcomeTimeout:
            raise ConfigurationError(
                f"run {args.run_id} was not resumed within {args.wait:g} s: is a worker "
                "running, with the run's agent version? (a refused resume is a dead letter)"
            ) from None
    status, detail = resumed_status(events)
    if args.json:
        print(json.dumps({"run_id": args.run_id, "status": status, "detail": detail}))
    else:
        print(f"run {args.run_id} resumed: {status}" + (f"\n{detail}" if detail else ""))
    return 0 if status != "parked again" else 2


def resumed_status(events: list[EventEnvelope]) -> tuple[str, str]:
    """What the resume came to, from the events committed with it."""
    for envelope in reversed(events):
        payload = envelope.payload
        if isinstance(payload, RunParked):
            return "parked again", payload.detail or f"{payload.reason}: {payload.actual}"
        if isinstance(payload, RunCompleted):
            return "completed", ""
        if isinstance(payload, RunFailed):
            return "failed", f"{payload.error_type}: {payload.error}"
    raised = [e.payload for e in events if isinstance(e.payload, InterruptRaised)]
    if raised:
        return "waiting", f"new request: {raised[-1].interrupt_id}"
    if len(events) <= 1:
        return "waiting where it stood", "its open requests take decisions again"
    return "going on", ""
