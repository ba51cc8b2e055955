"""Decisions that arrived before their interrupt, settled once it is raised or can never be."""

from __future__ import annotations

from collections.abc import Iterable

from engine.agent.app import App
from engine.core.executor import Services
from engine.core.handling import command_of, held_ready, judge_held
from engine.core.live_run import LiveRun
from engine.runtime.step import Step, StepWriter
from engine.trust.access import Access

__all__ = ["settle_held"]


def settle_held(
    writer: StepWriter,
    app: App,
    services: Services,
    step: Step,
    runs: Iterable[LiveRun],
    access: Access | None = None,
) -> None:
    """Decisions that arrived before their interrupt: judge them once it is raised (or
    refuse them once the run has ended without raising it). Their principals were proven
    when they arrived; roles are the App's and the deployment's directory's (`access`)."""
    for run in runs:
        if run.state is None or not run.state.held:
            continue
        for held in held_ready(run.state):
            now = services.clock_us()
            directory = app.directory_for(run.state.agent)
            if access is not None:
                directory = access.merged(directory)
            verdict = judge_held(run.state, held, directory=directory, now_us=now)
            assert verdict.event is not None
            writer.append(step, run, verdict.event, held.decision_id)
            writer.decided(step, command_of(held, run.run_id), verdict, now)
            if verdict.accepted and not run.state.terminal:
                step.touched[run.run_id] = run
