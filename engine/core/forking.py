"""Forks: a new run from another run's history up to one of its interrupts, to try another
decision there. Pure.

`countersign fork` reads the origin's events, picks a fork id in the origin's partition (so
that the worker owning the origin can check the prefix against what it holds) and sends a
`ForkRun`. The worker checks the prefix (`prefix_problem`) and writes the fork's history
(`fork_events`): its own `RunStarted` (forked from, at which seq, how its tools run), then the
origin's events up to the interrupt, with interrupt ids of the fork's own
(`fork_interrupt_id`, so the inbox and the audit keep the two apart) and the still-open
interrupts' deadlines starting over. A decision on the fork's interrupt is then an ordinary
`SubmitDecision`. How the fork's tools run is `tool_plan`:

- live: as in any run;
- idempotent: idempotent tools run; any other tool call fails with `NotRunInFork`;
- dry-run (the default): no tool runs. The tool gets the result the origin recorded for the
  same call after the fork point, or runs its own dry run when it takes a `dry_run`
  parameter, or returns a stand-in (`{"dry_run": true, "tool": name}`). `ctx.dry_run` is
  True, so agent code can tell.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence
from typing import Literal, TypeAlias

from engine.agent.app import ToolSpec
from engine.core.executor import ExecuteTool
from engine.core.state import fold
from engine.log.port import partition_for
from events.commands import ForkRun
from events.envelope import EventEnvelope
from events.json import Json, digest
from events.run_events import (
    DecisionHeld,
    InterruptRaised,
    RunEventPayload,
    RunStarted,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallScheduled,
    ToolMode,
)

__all__ = [
    "MAX_RECORDED_RESULTS",
    "NOT_RUN_IN_FORK",
    "ToolPlan",
    "colocated_id",
    "fork_command",
    "fork_events",
    "fork_interrupt_id",
    "fork_point",
    "prefix_problem",
    "recorded_results",
    "tool_plan",
]

NOT_RUN_IN_FORK = "NotRunInFork"
MAX_RECORDED_RESULTS = 200
"""Results of the origin a dry-run fork carries (the command's JSON has a size cap too)."""
TOOL_MODES: tuple[ToolMode, ...] = ("live", "dry-run", "idempotent")

_NAMESPACE = uuid.UUID("2b9c5f1e-6a0d-4f52-9d5e-5d2f8a7c3e91")

ToolPlan: TypeAlias = Literal["run", "run-dry"] | ToolCallCompleted | ToolCallFailed
"""Run the tool, run its own dry run, or record this result instead of running it."""


def fork_interrupt_id(fork_id: str, origin_interrupt_id: str) -> str:
    """The fork's id for an interrupt it copies from its origin (deterministic: the CLI
    knows it before the worker writes it, and can decide on it at once)."""
    return str(uuid.uuid5(_NAMESPACE, f"{fork_id}/{origin_interrupt_id}"))


def fork_point(events: Sequence[EventEnvelope], interrupt_id: str) -> int | None:
    """The seq at which the origin raised `interrupt_id`."""
    for event in events:
        payload = event.payload
        if isinstance(payload, InterruptRaised) and payload.interrupt_id == interrupt_id:
            return event.seq
    return None


def recorded_results(after: Sequence[EventEnvelope]) -> list[Json]:
    """What the origin's tools returned after the fork point: [{tool, args_digest, result}],
    by the arguments they ran with, for a dry-run fork to return when it makes the same call."""
    scheduled: dict[int, ToolCallScheduled] = {}
    out: list[Json] = []
    for event in after:
        payload = event.payload
        if isinstance(payload, ToolCallScheduled):
            scheduled[payload.call] = payload
        elif isinstance(payload, ToolCallCompleted) and payload.call in scheduled:
            ran = scheduled[payload.call]
            out.append(
                {"tool": ran.tool, "args_digest": digest(ran.args), "result": payload.result}
            )
    return out[:MAX_RECORDED_RESULTS]


def prefix_problem(prefix: Sequence[EventEnvelope], origin_run_id: str, at_interrupt: str) -> str:
    """Why `prefix` (decoded, chain already checked) is not the origin's history from its
    start up to raising `at_interrupt`, or ""."""
    if not prefix or not isinstance(prefix[0].payload, RunStarted):
        return "the prefix does not start with the origin's RunStarted"
    if any(event.run_id != origin_run_id for event in prefix):
        return f"the prefix holds events of another run than {origin_run_id}"
    last = prefix[-1].payload
    if not isinstance(last, InterruptRaised) or last.interrupt_id != at_interrupt:
        return f"the prefix does not end where the origin raised interrupt {at_interrupt}"
    return ""


def fork_events(
    prefix: Sequence[EventEnvelope],
    fork_id: str,
    started: RunStarted,
    now_us: int,
) -> list[tuple[RunEventPayload, bool]]:
    """The fork's history: `started` (its own start), then the prefix's events after the
    origin's start with the fork's interrupt ids; each with whether people should hear of it
    (the interrupts still open at the fork point, whose deadlines start over at `now_us`).
    Decisions the origin held for an interrupt still open there are left out."""
    state = fold(prefix)
    assert state is not None
    still_open = set(state.open_interrupts)
    out: list[tuple[RunEventPayload, bool]] = [(started, False)]
    for event in prefix[1:]:
        payload = event.payload
        interrupt_id = getattr(payload, "interrupt_id", None)
        if not isinstance(interrupt_id, str):
            out.append((payload, False))
            continue
        if isinstance(payload, DecisionHeld) and interrupt_id in still_open:
            continue  # the fork is for another decision: the origin's early one stays behind
        renamed = fork_interrupt_id(fork_id, interrupt_id)
        if isinstance(payload, InterruptRaised) and interrupt_id in still_open:
            request = payload.request
            if request.deadline_us is not None:  # the same time to decide, from now
                due = now_us + max(0, request.deadline_us - event.occurred_at_us)
                request = dataclasses.replace(request, deadline_us=due)
            out.append((dataclasses.replace(payload, interrupt_id=renamed, request=request), True))
            continue
        renamed_payload: RunEventPayload = dataclasses.replace(payload, interrupt_id=renamed)  # type: ignore[arg-type]
        out.append((renamed_payload, False))
    return out


def tool_plan(started: RunStarted, tool: ToolSpec, effect: ExecuteTool) -> ToolPlan:
    """How a tool call of a run runs, by the run's tool mode (see the module docstring)."""
    mode = started.tool_mode
    if mode == "live" or (mode == "idempotent" and tool.idempotent):
        return "run"
    if mode == "idempotent":
        return ToolCallFailed(
            call=effect.call,
            error_type=NOT_RUN_IN_FORK,
            error=f"this fork runs only idempotent tools and {tool.name} is not "
            "(fork with --live --yes to run it)",
        )
    wanted = digest(effect.args)
    for item in started.recorded_results if isinstance(started.recorded_results, list) else ():
        if isinstance(item, dict) and (item.get("tool"), item.get("args_digest")) == (
            tool.name,
            wanted,
        ):
            return ToolCallCompleted(call=effect.call, result=item.get("result"))
    if tool.wants_dry_run:
        return "run-dry"
    return ToolCallCompleted(call=effect.call, result={"dry_run": True, "tool": tool.name})


def colocated_id(origin_run_id: str, partitions: int, new_id: Callable[[], str]) -> str:
    """A new run id in the origin's partition (`fork-<id>`): the worker that owns the origin
    gets the fork, and can check its prefix against the origin it holds."""
    home = partition_for(origin_run_id, partitions)
    for _ in range(100 * partitions):
        candidate = f"fork-{new_id()}"
        if partition_for(candidate, partitions) == home:
            return candidate
    raise ValueError(f"no fork id found in partition {home} of {partitions}")  # pragma: no cover


def fork_command(
    events: Sequence[EventEnvelope],
    raws: Sequence[bytes],
    *,
    at_interrupt: str,
    fork_id: str,
    requested_by: str,
    tool_mode: ToolMode,
    command_id: str,
    issued_at_us: int,
) -> ForkRun:
    """The command that forks the run of `events` (with their log bytes `raws`) at the
    interrupt `at_interrupt`; `ValueError` when the run never raised it."""
    seq = fork_point(events, at_interrupt)
    if seq is None:
        raise ValueError(f"run {events[0].run_id} raised no interrupt {at_interrupt}")
    results = recorded_results(events[seq + 1 :]) if tool_mode == "dry-run" else None
    return ForkRun(
        command_id=command_id,
        run_id=fork_id,
        origin_run_id=events[0].run_id,
        at_interrupt=at_interrupt,
        requested_by=requested_by,
        issued_at_us=issued_at_us,
        prefix=tuple(raws[: seq + 1]),
        tool_mode=tool_mode,
        recorded_results=results,
    )
