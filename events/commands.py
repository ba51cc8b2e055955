"""Commands: what other systems ask of the engine, on the commands topic (key = run_id)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from events.fields import json_field
from events.json import Json, JsonObject


@dataclass(frozen=True, kw_only=True, slots=True)
class StartRun:
    command_id: str
    run_id: str
    agent: str
    input: JsonObject = json_field()
    requested_by: str
    issued_at_us: int
    agent_version: str = ""
    """Empty means the newest version the worker has."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SubmitDecision:
    decision_id: str
    run_id: str
    interrupt_id: str
    kind: str
    """approve | edit | reject | respond; anything else is refused with a reason."""
    decided_by: str
    issued_at_us: int
    reason: str = ""
    edited_args: JsonObject | None = json_field(default=None)
    response: Json = json_field(default=None)
    digest: str = ""
    """The request digest the decision was made on; empty skips the check."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CancelRun:
    command_id: str
    run_id: str
    cancelled_by: str
    issued_at_us: int
    reason: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class LiftQuarantine:
    """An operator accepts a quarantined run's chain as it is, so that it goes on."""

    command_id: str
    run_id: str
    lifted_by: str
    issued_at_us: int
    reason: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class ResumeRun:
    """Continue a parked run (after its code was fixed, or the old version deployed again):
    the worker replays it from its history; if it diverges again it is parked again."""

    command_id: str
    run_id: str
    resumed_by: str
    issued_at_us: int
    reason: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class ForkRun:
    """Start `run_id` from another run's history, up to one of its interrupts, to try
    another decision there (`countersign fork`). `prefix` is the origin's events, seq 0 up
    to that interrupt, exactly as its log holds them: the worker checks they chain, and,
    unless the fork is a dry run, that they are the origin's as it holds them itself."""

    command_id: str
    run_id: str
    origin_run_id: str
    at_interrupt: str
    requested_by: str
    issued_at_us: int
    prefix: tuple[bytes, ...] = ()
    tool_mode: str = "dry-run"
    """dry-run (no tool runs), idempotent (only idempotent tools run) or live."""
    recorded_results: Json = json_field(default=None)
    """The origin's tool results after the fork point, for a dry run to return."""


Command: TypeAlias = StartRun | SubmitDecision | CancelRun | LiftQuarantine | ResumeRun | ForkRun
COMMAND_TYPES: tuple[type[Command], ...] = (
    StartRun,
    SubmitDecision,
    CancelRun,
    LiftQuarantine,
    ResumeRun,
    ForkRun,
)


def command_id_of(command: Command) -> str:
    if isinstance(command, SubmitDecision):
        return command.decision_id
    return command.command_id
