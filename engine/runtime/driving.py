"""Driving runs forward: replay each touched run's agent, run the tools it asks for (I/O).

A step's runs advance until they wait. A tool that is not idempotent runs only after its
`ToolCallScheduled` is committed, so a crash mid-call is visible to the next owner; tools
run outside any transaction, and a step whose partition was lost while it awaited stops
touching its runs (`StepAbandoned`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from engine.agent.app import App
from engine.core.executor import Advance, ExecuteTool, Replayer, Services
from engine.core.forking import tool_plan
from engine.core.limits import DEFAULT_LIMITS, LIMIT_EXCEEDED, RunLimits, growth_refusal
from engine.core.live_run import LiveRun
from engine.core.packed import Decode
from engine.errors import reason_of
from engine.runtime.held import settle_held
from engine.runtime.ownership import Ownership
from engine.runtime.sealing import Sealer
from engine.runtime.step import Step, StepAbandoned, StepWriter
from engine.trust.access import Access
from events.errors import EncodeError, MessageTooLarge
from events.json import canonical_json
from events.run_events import (
    InterruptRaised,
    RunEventPayload,
    RunFailed,
    RunParked,
    ToolCallCompleted,
    ToolCallFailed,
)

__all__ = ["Driver"]

log = structlog.get_logger(__name__)


class Driver:
    def __init__(
        self,
        app: App,
        writer: StepWriter,
        services: Services,
        ownership: Ownership,
        commit: Callable[[Step], Awaitable[None]],
        limits: RunLimits = DEFAULT_LIMITS,
        *,
        check_determinism: bool = False,
        release_waiting: bool = False,
        pack: Decode | None = None,
    ) -> None:
        """`pack`: hold the history of a run that waits for a person as its events' bytes
        (`engine.core.packed`), decoded with this when the run moves on."""
        self._limits = limits
        self._check_determinism = check_determinism
        self._release_waiting = release_waiting
        self._pack = pack
        self._app = app
        self._writer = writer
        self._services = services
        self._own = ownership
        self._commit = commit
        self.access: Access | None = None
        """The deployment's access rules (roles) for judging held decisions."""
        self.sealer: Sealer | None = None
        """Makes the subject keys ready before personal values are written."""
        """Roles for judging held decisions (the worker sets the deployment's)."""

    async def drive(self, step: Step) -> None:
        await self._drive(step)
        if self._pack is not None:
            for run in step.changed.values():
                _pack_waiting(run, self._pack)

    async def _drive(self, step: Step) -> None:
        epoch = self._own.epoch(step.partition)
        while step.touched:
            effects: list[tuple[LiveRun, ExecuteTool]] = []
            ran = list(step.touched.values())
            for run in ran:
                effects.extend((run, effect) for effect in await self._advance(step, run))
            step.touched = {}
            settle_held(self._writer, self._app, self._services, step, ran, self.access)
            if not effects:
                if step.touched:
                    continue
                return
            if any(not self._idempotent(effect) for _, effect in effects):
                await self._commit(step)  # the schedule must be durable before the tool runs
                self._still_owned(step, epoch, "tools_not_started")
            if len(effects) == 1:  # the usual case: gather's bookkeeping is not needed
                # Still a task, as under gather: a tool runs in a copy of the worker's context,
                # so what it sets there (structlog's bound contextvars) stays its own.
                results = [await asyncio.create_task(self._execute(*effects[0]))]
            else:
                results = await asyncio.gather(*(self._execute(run, fx) for run, fx in effects))
            self._still_owned(step, epoch, "tool_results_discarded")
            for (run, _), result in zip(effects, results, strict=True):
                await self._keys_for(run, [result])
                self._record_result(step, run, result)
                step.touched[run.run_id] = run

    def _still_owned(self, step: Step, epoch: int | None, what: str) -> None:
        """Stop a step whose partition was lost while it awaited: its runs are another
        worker's now (whatever this one did since is its to find in the log, or not)."""
        if not self._own.owns(step.partition, epoch):
            log.warning("partition_lost_mid_step", partition=step.partition, action=what)
            raise StepAbandoned(step.partition)

    async def _keys_for(self, run: LiveRun, payloads: list[RunEventPayload]) -> None:
        if self.sealer is not None:
            await self.sealer.ready(run, payloads)

    async def _advance(self, step: Step, run: LiveRun) -> list[ExecuteTool]:
        """Advance one run and append what it did; the effects it asks for. A run whose
        events the log cannot carry fails, one that breaks its limits fails, and one the
        engine itself cannot drive is parked: never the worker (that would stop every run
        of the partition, and the next owner would fail the same way)."""
        try:
            advance = self._replay(run)
            if advance is None or run.state is None:
                return []
            interrupts = sum(isinstance(e, InterruptRaised) for e in advance.events)
            full = growth_refusal(
                run.state, run.size, len(advance.events), interrupts, self._limits
            )
            if full:
                self._stop(step, run, RunFailed(error_type=LIMIT_EXCEEDED, error=full))
                return []
            await self._keys_for(run, advance.events)
            for event in advance.events:
                self._writer.append(step, run, event, run.history[-1].event_id)
            if self._release_waiting and not advance.effects and run.state.open_interrupts:
                _let_wait(run)
                if self._pack is not None:
                    _pack_waiting(run, self._pack)
            return advance.effects
        except (EncodeError, MessageTooLarge) as exc:
            unrecordable = RunFailed(error_type="Unrecordable", error=reason_of(exc))
            self._stop(step, run, unrecordable)
        except Exception as exc:  # a fault of ours on this run: park it, keep the worker
            log.exception("run_engine_error", run_id=run.run_id, error=reason_of(exc))
            parked = RunParked(reason="engine-error", call=0, expected="", actual=reason_of(exc))
            self._stop(step, run, parked)
        return []

    def _stop(self, step: Step, run: LiveRun, event: RunFailed | RunParked) -> None:
        if run.replayer is not None:
            run.replayer.close()
        if run.state is not None and not run.state.terminal and run.state.status != "parked":
            self._writer.append(step, run, event, run.history[-1].event_id)
            log.warning("run_stopped", run_id=run.run_id, reason=event)

    def _record_result(self, step: Step, run: LiveRun, result: RunEventPayload) -> None:
        """A tool's result, or, when the log cannot carry it (too large, not text), the
        failure the agent sees instead: the tool did run; what it returned is lost."""
        try:
            self._writer.append(step, run, result, run.history[-1].event_id)
        except (EncodeError, MessageTooLarge) as exc:
            assert isinstance(result, ToolCallCompleted | ToolCallFailed)
            failed = ToolCallFailed(
                call=result.call, error_type="ResultNotRecordable", error=reason_of(exc)
            )
            if run.replayer is not None:
                run.replayer.feed([failed])
            self._writer.append(step, run, failed, run.history[-1].event_id)

    def _replay(self, run: LiveRun) -> Advance | None:
        if run.state is None or run.state.terminal or run.state.quarantined:
            return None
        replayer = run.replayer
        if (
            self._check_determinism
            and replayer is not None
            and replayer.news
            and not replayer.finished  # a parked run stays stopped until it is resumed
        ):
            # Development: rebuild the agent from its history at every resume (a decision,
            # an expiry, a tool's result came in), as another worker (or this one after a
            # restart) would, so that a divergence shows now.
            replayer.close()
            run.replayer = None
        if run.replayer is None:
            spec = self._app.find_agent(run.state.agent, run.state.agent_version)
            if spec is None:
                log.warning(
                    "run_left_alone",
                    run_id=run.run_id,
                    agent=run.state.agent,
                    version=run.state.agent_version,
                    reason="this worker does not have that agent version",
                )
                return None
            run.replayer = Replayer(self._app, spec, run.run_id, run.started, self._services)
            run.replayer.feed(envelope.payload for envelope in run.history)
        return run.replayer.advance()

    def _idempotent(self, effect: ExecuteTool) -> bool:
        tool = self._app.get_tool(effect.tool)
        return tool is not None and tool.idempotent

    async def _execute(self, run: LiveRun, effect: ExecuteTool) -> RunEventPayload:
        tool = self._app.get_tool(effect.tool)
        assert tool is not None
        bound = log.bind(run_id=run.run_id, tool=effect.tool, call=effect.call)
        plan = tool_plan(run.started, tool, effect)  # a fork's tools may not run for real
        if not isinstance(plan, str):
            return plan
        refusal = self.sealer.refusal(effect.tool, effect.args) if self.sealer else None
        if refusal is not None:  # a data subject was erased: their data is not processed
            bound.warning("tool_refused_erased_data", reason=refusal)
            return ToolCallFailed(call=effect.call, error_type="PersonalDataErased", error=refusal)
        try:
            result = await tool.invoke(effect.args, effect.idempotency_key, dry_run=plan != "run")
            canonical_json(result)
        except Exception as exc:  # recorded as ToolCallFailed: the agent sees it, nothing is lost
            bound.warning("tool_failed", error_type=type(exc).__name__, error=str(exc))
            return ToolCallFailed(call=effect.call, error_type=type(exc).__name__, error=str(exc))
        bound.info("tool_completed")
        return ToolCallCompleted(call=effect.call, result=result)


def _let_wait(run: LiveRun) -> None:
    """Drop the replayer of a run that waits for a person: its suspended coroutine, call
    index and recorded calls were a third of what a waiting run held (bench/memory.py). The
    decision rebuilds it from the history, as a restore does: a few microseconds an event
    (bench/replay.py), plus one decode of its events when it was packed. So a resume
    replays, as under `check_determinism`: an agent that is not deterministic is parked at
    its first decision."""
    if run.replayer is not None and not run.replayer.finished:
        run.replayer.close()
        run.replayer = None


def _pack_waiting(run: LiveRun, decode: Decode) -> None:
    """Pack the history of a run that waits for a person with no replayer (let wait, or
    never rebuilt since a restore): a decision, an expiry or a cancel unpacks it."""
    state = run.state
    if run.replayer is None and state is not None and state.open_interrupts and state.moving:
        run.pack(decode)
