"""A pure, synchronous stand-in for the worker, for the approval tests: one run, its envelopes,
its folded state and its replayer; decisions judged by `engine.core.handling`, expiries by
`engine.core.deadlines`, held decisions released the way the worker releases them.

It mirrors the worker (`engine.runtime`) without I/O so that hypothesis can try thousands of
interleavings; the worker itself is exercised with the in-memory log in
`test_approvals_worker.py`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Coroutine
from typing import Any

from engine.agent.app import App
from engine.core.deadlines import expire_due
from engine.core.executor import ExecuteTool, Replayer, Services
from engine.core.handling import DecisionVerdict, held_ready, judge_decision, judge_held
from engine.core.state import RunState, evolve
from events.commands import SubmitDecision
from events.envelope import EventEnvelope
from events.json import Json, JsonObject
from events.run_events import (
    InterruptRaised,
    RunEventPayload,
    RunStarted,
    ToolCallCompleted,
    ToolCallFailed,
)

START_US = 1_700_000_000_000_000
SECOND_US = 1_000_000


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now_us: int = START_US) -> None:
        self.now_us = now_us

    def __call__(self) -> int:
        return self.now_us

    def advance(self, seconds: float) -> None:
        self.now_us += int(seconds * SECOND_US)


def services(clock: Clock) -> Services:
    counter = itertools.count()
    return Services(
        clock_us=clock,
        new_uuid=lambda: f"00000000-0000-4000-8000-{next(counter):012d}",
        random=lambda: 0.5,
    )


def run_tool(coro: Coroutine[Any, Any, Json]) -> Json:
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("the tool suspended; the sim only runs tools that do not")


class Sim:
    """One run driven like the worker drives it, without a log."""

    def __init__(
        self,
        app: App,
        agent: str,
        input: JsonObject,
        *,
        requested_by: str = "alice",
        run_id: str = "run-1",
        version: str = "",
        clock: Clock | None = None,
        tool_seconds: Callable[[ExecuteTool], float] | None = None,
    ) -> None:
        spec = app.find_agent(agent, version)
        assert spec is not None
        self.app = app
        self.spec = spec
        self.run_id = run_id
        self.clock = clock or Clock()
        self.tool_seconds = tool_seconds
        self.started = RunStarted(input=input, requested_by=requested_by, command_id="cmd-1")
        self.envelopes: list[EventEnvelope] = []
        self.state: RunState | None = None
        self.replayer = Replayer(app, spec, run_id, self.started, services(self.clock))
        self._decisions = itertools.count()
        self.append(self.started)
        self.drive()

    # -- the log --------------------------------------------------------------------------------

    @property
    def events(self) -> list[RunEventPayload]:
        return [envelope.payload for envelope in self.envelopes]

    def of_type(self, cls: type[Any]) -> list[Any]:
        return [event for event in self.events if isinstance(event, cls)]

    def append(self, payload: RunEventPayload) -> None:
        envelope = EventEnvelope(
            event_id=f"e{len(self.envelopes)}",
            run_id=self.run_id,
            seq=len(self.envelopes),
            occurred_at_us=self.clock.now_us,
            agent=self.spec.name,
            agent_version=self.spec.version,
            causation_id="c",
            correlation_id=self.run_id,
            prev_hash="",
            payload=payload,
        )
        self.envelopes.append(envelope)
        self.state = evolve(self.state, envelope)
        self.replayer.feed([payload])

    @property
    def run(self) -> RunState:
        assert self.state is not None
        return self.state

    # -- driving ----------------------------------------------------------------------------------

    def drive(self) -> None:
        while True:
            step = self.replayer.advance()
            for event in step.events:
                self.append(event)
            for effect in step.effects:
                self.perform(effect)
            released = self._release_held()
            if not step.effects and not released:
                return

    def perform(self, effect: ExecuteTool) -> None:
        tool = self.app.get_tool(effect.tool)
        assert tool is not None
        if self.tool_seconds is not None:
            self.clock.advance(self.tool_seconds(effect))
        try:
            result = run_tool(tool.invoke(effect.args, effect.idempotency_key))
        except Exception as exc:
            self.append(
                ToolCallFailed(call=effect.call, error_type=type(exc).__name__, error=str(exc))
            )
            return
        self.append(ToolCallCompleted(call=effect.call, result=result))

    def _release_held(self) -> bool:
        accepted = False
        for held in held_ready(self.run):
            verdict = judge_held(
                self.run, held, directory=self.app.directory, now_us=self.clock.now_us
            )
            assert verdict.event is not None
            self.append(verdict.event)
            accepted = accepted or (verdict.accepted and not self.run.terminal)
        return accepted

    # -- what people and time do ------------------------------------------------------------------

    def decide(
        self,
        interrupt_id: str,
        kind: str,
        by: str,
        *,
        decision_id: str | None = None,
        **fields: Any,
    ) -> DecisionVerdict:
        self.expire()
        command = SubmitDecision(
            decision_id=decision_id or f"d{next(self._decisions)}",
            run_id=self.run_id,
            interrupt_id=interrupt_id,
            kind=kind,
            decided_by=by,
            issued_at_us=self.clock.now_us,
            **fields,
        )
        verdict = judge_decision(
            self.run, command, directory=self.app.directory, now_us=self.clock.now_us
        )
        if verdict.event is not None:
            self.append(verdict.event)
            self.drive()
        return verdict

    def expire(self, at_us: int | None = None) -> int:
        """Fire the deadlines due at `at_us` (default: now), as the worker's timer does; how
        many events it appended."""
        events = expire_due(self.run, self.clock.now_us if at_us is None else at_us)
        for event in events:
            self.append(event)
        if events:
            self.drive()
        return len(events)

    def tick(self, seconds: float) -> int:
        self.clock.advance(seconds)
        return self.expire()

    # -- looking -----------------------------------------------------------------------------------

    def open(self) -> list[InterruptRaised]:
        return sorted(self.run.open_interrupts.values(), key=lambda r: (r.call, r.interrupt_id))

    def only_open(self) -> InterruptRaised:
        [raised] = self.open()
        return raised

    @property
    def output(self) -> Json:
        from events.run_events import RunCompleted

        [done] = self.of_type(RunCompleted)
        return done.output  # type: ignore[no-any-return]

    def replayed(self) -> Replayer:
        """A fresh replayer fed the whole history, as another worker would build it."""
        replayer = Replayer(self.app, self.spec, self.run_id, self.started, services(Clock(0)))
        replayer.feed(self.events[1:])
        return replayer
