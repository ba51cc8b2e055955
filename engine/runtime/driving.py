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
from engine.core.live_run import LiveRun
from engine.runtime.held import settle_held
from engine.runtime.ownership import Ownership
from engine.runtime.step import Step, StepAbandoned, StepWriter
from events.json import canonical_json
from events.run_events import RunEventPayload, ToolCallCompleted, ToolCallFailed

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
    ) -> None:
        self._app = app
        self._writer = writer
        self._services = services
        self._own = ownership
        self._commit = commit

    async def drive(self, step: Step) -> None:
        epoch = self._own.epoch(step.partition)
        while step.touched:
            effects: list[tuple[LiveRun, ExecuteTool]] = []
            ran = list(step.touched.values())
            for run in ran:
                advance = self._advance(run)
                if advance is None:
                    continue
                for event in advance.events:
                    self._writer.append(step, run, event, run.history[-1].event_id)
                effects.extend((run, effect) for effect in advance.effects)
            step.touched = {}
            settle_held(self._writer, self._app, self._services, step, ran)
            if not effects:
                if step.touched:
                    continue
                return
            if any(not self._idempotent(effect) for _, effect in effects):
                await self._commit(step)  # the schedule must be durable before the tool runs
                self._still_owned(step, epoch, "tools_not_started")
            results = await asyncio.gather(*(self._execute(run, fx) for run, fx in effects))
            self._still_owned(step, epoch, "tool_results_discarded")
            for (run, _), result in zip(effects, results, strict=True):
                self._writer.append(step, run, result, run.history[-1].event_id)
                step.touched[run.run_id] = run

    def _still_owned(self, step: Step, epoch: int | None, what: str) -> None:
        """Stop a step whose partition was lost while it awaited: its runs are another
        worker's now (whatever this one did since is its to find in the log, or not)."""
        if not self._own.owns(step.partition, epoch):
            log.warning("partition_lost_mid_step", partition=step.partition, action=what)
            raise StepAbandoned(step.partition)

    def _advance(self, run: LiveRun) -> Advance | None:
        if run.state is None or run.state.terminal:
            return None
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
        try:
            result = await tool.invoke(effect.args, effect.idempotency_key)
            canonical_json(result)
        except Exception as exc:  # recorded as ToolCallFailed: the agent sees it, nothing is lost
            bound.warning("tool_failed", error_type=type(exc).__name__, error=str(exc))
            return ToolCallFailed(call=effect.call, error_type=type(exc).__name__, error=str(exc))
        bound.info("tool_completed")
        return ToolCallCompleted(call=effect.call, result=result)
