"""A `ForkRun` in: a new run from another run's history, through the step. No I/O.

The prefix comes in the command, as the origin's log bytes. It is decoded by the codec and
must chain from the origin's start to the interrupt named (`engine.core.forking`); it is
trusted only as far as it can be checked: a fork whose tools may run (live, idempotent) is
taken only when this worker holds the origin live (the CLI puts the fork in the origin's
partition) and the prefix is exactly the origin's history; a dry run, where no tool acts,
may fork any run. Anything else is a dead letter with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from engine.agent.app import App
from engine.core.executor import Services
from engine.core.forking import TOOL_MODES, fork_events, prefix_problem
from engine.core.live_run import LiveRun
from engine.log.port import Record
from engine.runtime.step import Step, StepWriter
from engine.runtime.table import RunTable
from events.codec import Codec
from events.commands import ForkRun
from events.envelope import EventEnvelope, hash_encoded
from events.errors import DecodeError
from events.history_file import chain_problem
from events.run_events import RunStarted

__all__ = ["Forks", "start_fork"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Forks:
    app: App
    codec: Codec
    writer: StepWriter
    table: RunTable
    services: Services


def start_fork(forks: Forks, step: Step, record: Record, command: ForkRun) -> None:
    """Write the fork's history (its start, the origin's events up to the interrupt), or
    dead-letter the command with the reason it is refused."""
    prefix, why = _checked_prefix(forks, command)
    if why:
        forks.writer.dead_letter(step, record, f"fork refused: {why}")
        return
    origin = forks.table.get(step.partition, command.origin_run_id)
    verified = origin is not None and origin.recorded[: len(prefix)] == prefix
    if command.tool_mode != "dry-run" and not verified:
        why = (
            f"a fork whose tools run ({command.tool_mode}) needs its origin live on this worker, "
            "to check the prefix against the log; fork it as a dry run"
        )
        forks.writer.dead_letter(step, record, f"fork refused: {why}")
        return
    first = prefix[0]
    if forks.app.find_agent(first.agent, first.agent_version) is None:
        why = f"this worker has no agent {first.agent!r} version {first.agent_version!r}"
        forks.writer.dead_letter(step, record, f"fork refused: {why}")
        return
    assert isinstance(first.payload, RunStarted)
    started = RunStarted(
        input=first.payload.input,
        requested_by=first.payload.requested_by,
        command_id=command.command_id,
        forked_from=command.origin_run_id,
        forked_at=prefix[-1].seq,
        forked_by=command.requested_by,
        origin_hash=hash_encoded(command.prefix[-1]) if verified else "",
        tool_mode=command.tool_mode,  # type: ignore[arg-type]  # checked in _checked_prefix
        recorded_results=command.recorded_results,
    )
    run = LiveRun(command.run_id, step.partition)
    events = fork_events(prefix, command.run_id, started, forks.services.clock_us())
    payload, _ = events[0]
    forks.writer.append(
        step, run, payload, command.command_id, agent=first.agent, version=first.agent_version
    )
    forks.table.add(run)
    for payload, tell in events[1:]:
        forks.writer.append(step, run, payload, command.command_id, notices=tell)
    step.touched[run.run_id] = run
    log.info(
        "run_forked",
        run_id=run.run_id,
        origin=command.origin_run_id,
        at_seq=started.forked_at,
        tool_mode=command.tool_mode,
        verified=verified,
    )


def _checked_prefix(forks: Forks, command: ForkRun) -> tuple[list[EventEnvelope], str]:
    if command.tool_mode not in TOOL_MODES:
        return [], f"unknown tool mode {command.tool_mode[:32]!r}"
    if not command.prefix:
        return [], "no prefix"
    try:
        prefix = [forks.codec.decode_event(raw) for raw in command.prefix]
    except DecodeError as exc:
        return [], f"an event of the prefix does not decode: {exc}"
    why = chain_problem(prefix, command.prefix) or prefix_problem(
        prefix, command.origin_run_id, command.at_interrupt
    )
    return prefix, why
