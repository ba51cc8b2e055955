"""A recorded run re-run against today's agent code, touching nothing. Pure.

`rerun(app, history)` does what a worker does when it resumes a run — a `Replayer` fed the
run's events and advanced once — without a worker: recorded results come back, no tool runs,
no clock or random source is read. It says whether the code reproduces the history
(`identical`), where it first differs (`diverges`: the seq of the first event of that call,
both sides, the argument diff, the agent line, and what changed — `engine.core.explain`), or
that no worker with this app would take the run on (`pinned`: the app lacks the version the
run started with; a run keeps its version).

With `steps` it also lists each recorded event with the call the code made there and the
run's state; with `frames`, where the agent waits and its local variables; with `pause`, a
callback gets the agent's own frame at chosen calls (the CLI's debugger hangs on it).
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, Literal, TypeAlias

from engine.agent.app import AgentSpec, App
from engine.agent.context import Call, RunContext
from engine.core.divergence import (
    CallShape,
    Divergence,
    Site,
    caller_frame,
    caller_site,
    compare,
    diff_args,
    recorded_shape,
    shape_of_call,
    shown,
    site_of,
)
from engine.core.executor import Advance, ExecuteTool, Replayer, Services
from engine.core.explain import Cause, code_end, explain
from engine.core.history import HistoryIndex
from engine.core.positions import call_of, first_seqs, interrupt_owners
from engine.core.state import RunState, evolve
from engine.errors import NonDeterminismError
from events.envelope import EventEnvelope
from events.json import Json, JsonObject
from events.limits import clip
from events.run_events import (
    RunCompleted,
    RunEventPayload,
    RunFailed,
    RunParked,
    RunStarted,
)

__all__ = ["AgentFrame", "Outcome", "Pause", "Rerun", "RerunOptions", "Step", "rerun"]

Outcome: TypeAlias = Literal["identical", "diverges", "pinned"]

MAX_LOCALS = 40
"""Local variables shown per agent frame."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Pause:
    """The agent, stopped: at `call` it got its result ("result"), waits for it ("waits"),
    made a call that diverges ("diverges"), or is about to start (call -1, "start")."""

    call: int
    why: Literal["start", "result", "waits", "diverges"]
    frame: FrameType


@dataclass(frozen=True, kw_only=True)
class RerunOptions:
    until: int | None = None
    """Replay the events up to this seq only, and stop there."""
    version: str | None = None
    """Re-run with this version of the agent instead of the one the run recorded."""
    steps: bool = False
    """List every event with the call the code made there (and where it made it)."""
    frames: bool = False
    """Say where the agent waits at the end, with its local variables."""
    state: bool = True
    """Fold the run's state (its status and open interrupts); off to check many runs fast."""
    explain: int = 20
    """How far (in calls) to look for what moved when the code diverges; 0: do not look."""
    pause_at: frozenset[int] = frozenset()
    """Calls at which `pause` is called (-1: before the agent starts); a divergence always."""
    pause: Callable[[Pause], None] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Step:
    """One recorded event, and the call the code made at it (on the first event of a call)."""

    seq: int
    envelope: EventEnvelope
    call: int | None
    made: CallShape | None
    differs: bool
    state: RunState

    def to_json(self) -> JsonObject:
        return {
            "seq": self.seq,
            "type": self.envelope.type,
            "call": self.call,
            "made": None if self.made is None else self.made.to_json(),
            "differs": self.differs,
            "status": self.state.status,
            "open_interrupts": len(self.state.open_interrupts),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentFrame:
    """A frame of agent code where the agent waits: its line and local variables (shown)."""

    site: Site
    locals: tuple[tuple[str, str], ...]

    def to_json(self) -> JsonObject:
        return {"site": self.site.to_json(), "locals": dict(self.locals)}


@dataclass(frozen=True, kw_only=True, slots=True)
class Rerun:
    """What re-running one run's history against the code came to."""

    run_id: str
    agent: str
    version: str
    """The version the run recorded."""
    replayed_with: str
    """The version of the code it was re-run against ("" when pinned)."""
    outcome: Outcome
    events: int
    """Events replayed (all of them, or up to `until`)."""
    seq: int | None = None
    """The first event that differs (diverges), 0 for a pinned run."""
    reason: str = ""
    cause: Cause | None = None
    divergence: Divergence | None = None
    error_site: Site | None = None
    """Where agent code raised, when that is the difference."""
    state: RunState | None = None
    steps: tuple[Step, ...] = ()
    next: tuple[RunEventPayload, ...] = ()
    """What the code appends next, past the end of what was replayed."""
    effects: tuple[ExecuteTool, ...] = ()
    """Tools it would run next (never run here)."""
    waiting_in: tuple[AgentFrame, ...] = ()

    @property
    def identical(self) -> bool:
        return self.outcome == "identical"

    def to_json(self) -> JsonObject:
        return {
            "run_id": self.run_id,
            "agent": self.agent,
            "version": self.version,
            "replayed_with": self.replayed_with,
            "outcome": self.outcome,
            "events": self.events,
            "seq": self.seq,
            "reason": self.reason,
            "cause": self.cause,
            "divergence": None if self.divergence is None else self.divergence.to_json(),
            "error_site": None if self.error_site is None else self.error_site.to_json(),
            "status": None if self.state is None else self.state.status,
            "steps": [step.to_json() for step in self.steps],
            "next": [type(event).__name__ for event in self.next],
            "effects": [{"call": e.call, "tool": e.tool, "args": e.args} for e in self.effects],
            "waiting_in": [frame.to_json() for frame in self.waiting_in],
        }


def rerun(app: App, history: Sequence[EventEnvelope], options: RerunOptions | None = None) -> Rerun:
    """Re-run `history` (one run's events, seq 0 onwards) against `app`'s code."""
    options = options or RerunOptions()
    if not history or not isinstance(history[0].payload, RunStarted):
        raise ValueError("a run's history starts with its RunStarted event")
    if options.until is not None:
        history = history[: options.until + 1]
    first = history[0]
    state = _fold(history) if options.state else None
    base = Rerun(
        run_id=first.run_id,
        agent=first.agent,
        version=first.agent_version,
        replayed_with="",
        outcome="identical",
        events=len(history),
        state=state,
    )
    spec = app.find_agent(first.agent, options.version or first.agent_version)
    if spec is None:
        return _pinned(app, base, options.version)
    return _Session(app, spec, history, options).run(base)


class _Session:
    """One re-run: the observed replayer, and what it saw."""

    def __init__(
        self, app: App, spec: AgentSpec, history: Sequence[EventEnvelope], options: RerunOptions
    ) -> None:
        self.app = app
        self.spec = spec
        self.history = history
        self.options = options
        self.payloads = [envelope.payload for envelope in history]
        started = self.payloads[0]
        assert isinstance(started, RunStarted)
        self.started = started
        self.watch = _Watch(options)
        self.traced = _Traced(spec.fn, self.watch)
        self.index = HistoryIndex()
        self.index_fed = False
        self.cause: Cause | None = None

    def run(self, base: Rerun) -> Rerun:
        traced_spec = AgentSpec(
            name=self.spec.name, version=self.spec.version, fn=self.traced, description=""
        )
        services = _fixed_services(self.history[-1].occurred_at_us)
        replayer = _Observed(self.app, traced_spec, base.run_id, self.started, services, self.watch)
        replayer.feed(self.payloads[1:])
        advance = replayer.advance()
        frames = self.traced.frames() if self.options.frames else ()
        replayer.close()
        found = self._difference(advance)
        if found is None:  # the end the history records is not news
            recorded_end = code_end(self.payloads)
            fresh = [e for e in advance.events if e != recorded_end]
            advance = Advance(fresh, advance.effects, advance.finished)
        return _report(
            base,
            self.spec.version,
            advance,
            found,
            steps=self._steps(found.divergence if found else None) if self.options.steps else (),
            frames=frames,
        )

    # -- finding the first difference ---------------------------------------------------------

    def _difference(self, advance: Advance) -> _Found | None:
        parked = next((e for e in advance.events if isinstance(e, RunParked)), None)
        if parked is not None and parked.reason == "non-determinism":
            divergence = self._call_divergence(parked.call)
            seq = self._seq_of(divergence.step)
            return _Found(seq, divergence.explanation, self.cause, divergence=divergence)
        if parked is not None:  # the app lacks a tool, or the agent awaited something else
            reason = f"{parked.reason}: {parked.actual}"
            site = self.traced.error_site()
            return _Found(self._seq_of(parked.call), reason, "other", site=site)
        return self._ending_difference(advance)

    def _ending_difference(self, advance: Advance) -> _Found | None:
        recorded = code_end(self.payloads)
        now = next((e for e in advance.events if isinstance(e, RunCompleted | RunFailed)), None)
        end_seq = len(self.history) - 1
        if recorded is not None and now is None:
            position = _first_call(advance.events)
            made = self.watch.view(position) if position is not None else None
            divergence = compare(position, None, made) if position is not None else None
            going_on = f": {made.describe()}" if made is not None else ""
            reason = f"the run {_ending(recorded)}; the code now goes on{going_on}"
            return _Found(end_seq, reason, "added", divergence=divergence)
        if now is None or now == recorded:
            return None
        if isinstance(now, RunFailed):
            site = self.traced.error_site()
            at = f" at {site}" if site else ""
            reason = f"the agent now raises {now.error_type}: {clip(now.error, 200)}{at}"
            seq = end_seq if recorded is not None else self._seq_of(self.watch.highest + 1)
            return _Found(seq, reason, "ending", site=site)
        if recorded is None:
            return None  # the recorded run stopped short of its end (parked, left alone)
        changes = ""
        if isinstance(recorded, RunCompleted):
            found = diff_args(recorded.output, now.output, limit=3)
            changes = "; ".join(change.describe() for change in found)
        reason = f"the run {_ending(recorded)}; now it returns {shown(now.output, 120)}"
        return _Found(end_seq, reason + (f" ({changes})" if changes else ""), "ending")

    def _call_divergence(self, position: int) -> Divergence:
        self._index()
        recorded_position = position
        if position not in self.index.calls:  # the agent returned early: the next recorded call
            recorded_position = min(
                (p for p in self.index.calls if p >= position), default=position
            )
        rec = self.index.calls.get(recorded_position)
        recorded = recorded_shape(rec) if rec is not None else None
        made = self.watch.view(position)
        divergence = compare(position, recorded, made) or compare(position, recorded, None)
        assert divergence is not None
        if self.options.explain <= 0:
            self.cause = "arguments" if divergence.kind == "other-arguments" else "other"
            return divergence
        found = explain(
            self.app,
            self.spec,
            self.history[0].run_id,
            self.payloads,
            divergence,
            self.watch.calls.get(position),
            window=self.options.explain,
        )
        self.cause = found.cause
        return found.divergence

    def _index(self) -> None:
        if not self.index_fed:
            for payload in self.payloads:
                self.index.add(payload)
            self.index_fed = True

    def _seq_of(self, position: int) -> int:
        seqs = first_seqs(self.payloads)
        if position in seqs:
            return seqs[position]
        later = [seq for call, seq in seqs.items() if call > position]
        return min(later) if later else len(self.history) - 1

    # -- the steps ----------------------------------------------------------------------------

    def _steps(self, divergence: Divergence | None) -> tuple[Step, ...]:
        owners = interrupt_owners(self.payloads)
        seen: set[int] = set()
        state: RunState | None = None
        out = []
        for envelope in self.history:
            state = evolve(state, envelope)
            call = call_of(envelope.payload, owners)
            made = None
            differs = False
            if call is not None and call not in seen:
                seen.add(call)
                made = self.watch.view(call)
                differs = divergence is not None and call == divergence.step
            out.append(
                Step(
                    seq=envelope.seq,
                    envelope=envelope,
                    call=call,
                    made=made,
                    differs=differs,
                    state=state,
                )
            )
        return tuple(out)


@dataclass(frozen=True, slots=True)
class _Found:
    """The first difference: its seq, one line, what changed, and the call or line involved."""

    seq: int
    reason: str
    cause: Cause | None
    divergence: Divergence | None = None
    site: Site | None = None


def _report(
    base: Rerun,
    version: str,
    advance: Advance,
    found: _Found | None,
    *,
    steps: tuple[Step, ...],
    frames: tuple[AgentFrame, ...],
) -> Rerun:
    if found is None:
        return dataclasses.replace(
            base,
            replayed_with=version,
            steps=steps,
            next=tuple(advance.events),
            effects=tuple(advance.effects),
            waiting_in=frames,
        )
    return dataclasses.replace(
        base,
        replayed_with=version,
        outcome="diverges",
        seq=found.seq,
        reason=found.reason,
        cause=found.cause,
        divergence=found.divergence,
        error_site=found.site,
        steps=steps,
        waiting_in=frames,
    )


def _pinned(app: App, base: Rerun, asked: str | None) -> Rerun:
    versions = sorted(spec.version for spec in app.agents if spec.name == base.agent)
    has = f"it has {', '.join('v' + v for v in versions)}" if versions else "none at all"
    wanted = asked or base.version
    reason = (
        f"the run started with {base.agent} v{base.version}; the app has no {base.agent} "
        f"v{wanted} ({has}): a worker with this app leaves the run where it is"
    )
    return dataclasses.replace(base, outcome="pinned", seq=0, reason=reason, cause="version")


# -- watching the agent ---------------------------------------------------------------------------


class _Watch:
    """What the observed replayer saw: every call made, by position, and where."""

    def __init__(self, options: RerunOptions) -> None:
        self.calls: dict[int, Call | str] = {}
        self.sites: dict[int, Site | None] = {}
        self.want_sites = options.steps
        self.pause = options.pause
        self.pause_at = options.pause_at
        self.paused: set[int] = set()
        self.last: int | None = None
        self.highest = -1

    def made(self, position: int, call: Call | str, frame: FrameType | None) -> None:
        if position in self.calls:
            return
        self.calls[position] = call
        self.highest = max(self.highest, position)
        if self.want_sites:
            self.sites[position] = caller_site(frame)

    def view(self, position: int) -> CallShape | None:
        call = self.calls.get(position)
        if call is None:
            return None
        site = self.sites.get(position)
        if isinstance(call, str):
            return CallShape("value", call, None, str(site) if site else "", "", site)
        return shape_of_call(call, site=site)

    def diverged(self, position: int, frame: FrameType | None) -> None:
        """The call at `position` does not match the history: where it was made, always."""
        self.sites[position] = caller_site(frame)
        self.stop(position, "diverges", frame)

    def stop(
        self,
        position: int,
        why: Literal["start", "result", "waits", "diverges"],
        frame: FrameType | None,
    ) -> None:
        if self.pause is None or frame is None or position in self.paused:
            return
        if why != "diverges" and position not in self.pause_at:
            return
        self.paused.add(position)
        agent = caller_frame(frame) if why != "start" else frame
        if agent is not None:
            self.pause(Pause(call=position, why=why, frame=agent))


class _Observed(Replayer):
    """A replayer that tells its watch about every call the agent makes (and pauses it)."""

    def __init__(
        self,
        app: App,
        agent: AgentSpec,
        run_id: str,
        started: RunStarted,
        services: Services,
        watch: _Watch,
    ) -> None:
        super().__init__(app, agent, run_id, started, services)
        self._watch = watch

    def next_position(self) -> int:
        position = super().next_position()
        self._watch.last = position
        return position

    def resolve(self, call: Call) -> tuple[bool, Any]:
        # Frames are looked at only when asked for: materialising one costs more than the
        # rest of a recorded call's replay.
        watch = self._watch
        if call.position not in watch.calls:
            watch.made(call.position, call, sys._getframe(1) if watch.want_sites else None)
        try:
            done, value = super().resolve(call)
        except NonDeterminismError:
            watch.diverged(call.position, sys._getframe(1))
            raise
        if watch.pause is not None:
            watch.stop(call.position, "result" if done else "waits", sys._getframe(1))
        return done, value

    def record_value(self, kind: Literal["now", "uuid", "random"]) -> Json:
        watch = self._watch
        watch.last = None
        try:
            return super().record_value(kind)
        except NonDeterminismError:
            if watch.last is not None:
                watch.made(watch.last, kind, sys._getframe(1))
                watch.diverged(watch.last, sys._getframe(1))
            raise
        finally:
            if watch.last is not None:
                watch.made(watch.last, kind, sys._getframe(1) if watch.want_sites else None)


class _Traced:
    """The agent function, wrapped so that its coroutine and its exception can be looked at."""

    def __init__(self, fn: Callable[..., Any], watch: _Watch) -> None:
        self._fn = fn
        self._watch = watch
        self.inner: Any = None
        self.error: BaseException | None = None

    async def __call__(self, ctx: RunContext, input: JsonObject) -> Json:
        self._watch.stop(-1, "start", sys._getframe())
        self.inner = self._fn(ctx, input)
        try:
            result: Json = await self.inner
        except Exception as exc:  # recorded for the report, then handled by the replayer
            self.error = exc
            raise
        return result

    def error_site(self) -> Site | None:
        return site_of(self.error.__traceback__) if self.error is not None else None

    def frames(self) -> tuple[AgentFrame, ...]:
        """The agent's frames from the outside in, down to the call it waits on."""
        out = []
        coro = self.inner
        while coro is not None and getattr(coro, "cr_frame", None) is not None:
            frame: FrameType = coro.cr_frame
            site = Site(
                file=frame.f_code.co_filename, line=frame.f_lineno, function=frame.f_code.co_name
            )
            names = [n for n in frame.f_locals if not n.startswith("__")][:MAX_LOCALS]
            shown_locals = tuple((n, clip(_safe_repr(frame.f_locals[n]), 200)) for n in names)
            out.append(AgentFrame(site=site, locals=shown_locals))
            coro = getattr(coro, "cr_await", None)
        return tuple(out)


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception as exc:  # a user object's __repr__ may raise anything
        return f"<repr failed: {type(exc).__name__}>"


# -- small helpers --------------------------------------------------------------------------------


def _fold(history: Sequence[EventEnvelope]) -> RunState:
    state: RunState | None = None
    for envelope in history:
        state = evolve(state, envelope)
    assert state is not None
    return state


def _fixed_services(now_us: int) -> Services:
    """Values for calls past the end of the history: fixed, so a re-run is repeatable."""
    counter = itertools.count()
    return Services(
        clock_us=lambda: now_us,
        new_uuid=lambda: f"00000000-0000-4000-8000-{next(counter):012d}",
        random=lambda: 0.5,
    )


def _first_call(events: Sequence[RunEventPayload]) -> int | None:
    calls = [call_of(e, {}) for e in events]
    return next((c for c in calls if c is not None), None)


def _ending(event: RunCompleted | RunFailed) -> str:
    if isinstance(event, RunCompleted):
        return f"completed with {shown(event.output, 120)}"
    return f"failed with {event.error_type}: {clip(event.error, 120)}"
