"""What changed in the agent's behaviour, found by trying the changes one at a time. Pure.

The first call at which the code and the history differ says where, not what: a call that
was added shows up as "another tool here", and so do one that was removed and one that moved.
`explain` takes the recorded calls from the divergence on and tries, one at a time: the new
call moved up from later in the history, the recorded call moved later, the new call added
before it, recorded calls removed, the recorded call replaced by the new one. Each try is a
made-up history (calls renumbered with `engine.core.positions.remap`, a made-up result for an
added call) that the code is re-run against; the try that takes the replay furthest past the
calls it changed, dropping the fewest recorded calls, is the explanation. Nothing of it is
ever written anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from engine.agent.app import AgentSpec, App
from engine.agent.context import Call
from engine.core.divergence import CallShape, Divergence, compare, recorded_shape
from engine.core.executor import Replayer, Services
from engine.core.history import HistoryIndex
from engine.core.limits import LIMIT_EXCEEDED
from engine.core.positions import call_of, remap, stub_events
from events.run_events import RunCompleted, RunEventPayload, RunFailed, RunParked, RunStarted

__all__ = ["RUNTIME_FAILURES", "Cause", "Explained", "code_end", "explain", "trouble"]

Cause: TypeAlias = Literal[
    "added",
    "removed",
    "reordered",
    "interrupt-moved",
    "replaced",
    "arguments",
    "version",
    "ending",
    "other",
]
"""What changed: a call added, removed, reordered (an interrupt moved), replaced, its
arguments; the agent's version; how the run ends; or something else (a tool the app lacks)."""

RUNTIME_FAILURES = frozenset({LIMIT_EXCEEDED, "Unrecordable", "UnknownAgent"})
"""RunFailed error types the worker records, not the agent code: no code reproduces them."""
_NEVER = float("inf")
_SERVICES = Services(
    clock_us=lambda: 0,
    new_uuid=lambda: "00000000-0000-4000-8000-000000000000",
    random=lambda: 0.5,
)


@dataclass(frozen=True, slots=True)
class Explained:
    divergence: Divergence
    cause: Cause


@dataclass(frozen=True, slots=True)
class _Try:
    """One made-up history: recorded calls renumbered by `where`, plus made-up events."""

    where: Callable[[int], int | None]
    affected: int
    """The try explains the divergence only if the replay gets past this call."""
    dropped: int
    explanation: Callable[[], tuple[Cause, str]]
    extra: tuple[RunEventPayload, ...] = ()


def explain(
    app: App,
    spec: AgentSpec,
    run_id: str,
    payloads: Sequence[RunEventPayload],
    divergence: Divergence,
    made: Call | str | None,
    *,
    window: int = 20,
) -> Explained:
    """`divergence` with the explanation of the best try, or as it is when none fits."""
    default: Cause = "arguments" if divergence.kind == "other-arguments" else "other"
    index = HistoryIndex()
    for payload in payloads:
        index.add(payload)
    if divergence.kind == "missing-call":
        return Explained(divergence.explained(_returns_early(divergence, index)), "removed")
    tries = _tries(index, divergence, made, window)
    started = payloads[0]
    assert isinstance(started, RunStarted)
    best: tuple[float, int, int] | None = None
    chosen: _Try | None = None
    for order, attempt in enumerate(tries):
        history = [*remap(payloads, attempt.where), *attempt.extra]
        reached = trouble(app, spec, run_id, started, history)
        score = _NEVER if reached is None else float(reached)
        if score <= attempt.affected:
            continue
        key = (-score, attempt.dropped, order)
        if best is None or key < best:
            best, chosen = key, attempt
        if score == _NEVER and attempt.dropped == 0:
            break  # nothing can beat it: the tries are in order of preference
    if chosen is None:
        return Explained(divergence, default)
    cause, text = chosen.explanation()
    return Explained(divergence.explained(text), cause)


def trouble(
    app: App,
    spec: AgentSpec,
    run_id: str,
    started: RunStarted,
    payloads: Sequence[RunEventPayload],
) -> int | None:
    """The first call at which `payloads` and the code disagree, or None."""
    replayer = _Counting(app, spec, run_id, started, _SERVICES)
    replayer.feed(payloads[1:])
    advance = replayer.advance()
    replayer.close()
    for event in advance.events:
        if isinstance(event, RunParked):
            return event.call
    recorded = code_end(payloads)
    now = next((e for e in advance.events if isinstance(e, RunCompleted | RunFailed)), None)
    if isinstance(now, RunFailed) and now != recorded:
        return replayer.highest  # the agent raised on a result: that call is where it broke
    if recorded is None:
        return None
    if now is None:  # the recorded run ended here; the code goes on
        calls = [c for c in (call_of(e, {}) for e in advance.events) if c is not None]
        return calls[0] if calls else replayer.highest + 1
    return None if now == recorded else replayer.highest + 1


def _tries(
    index: HistoryIndex, divergence: Divergence, made: Call | str | None, window: int
) -> list[_Try]:
    n = divergence.step
    last = max(index.calls, default=-1)
    horizon = min(n + window, last)
    now = divergence.new
    view: Callable[[int], CallShape] = lambda p: recorded_shape(index.calls[p])  # noqa: E731
    matching = [m for m in range(n + 1, horizon + 1) if m in index.calls and _fits(view(m), now)]
    earlier = [_moved_earlier(n, m, view) for m in matching]
    later = [_moved_later(n, k, view) for k in range(n + 1, horizon + 1) if n in index.calls]
    added: list[_Try] = []
    replaced: list[_Try] = []
    if made is not None and now is not None:
        added.append(_added(n, made, now, view if n in index.calls else None))
        if n in index.calls and divergence.kind != "other-arguments":
            replaced.append(_replaced(n, made, now, view))  # same tool: its arguments changed
    removed = [_removed(n, m, view, now) for m in matching]
    return [*earlier, *later, *added, *removed, *replaced]


def _fits(recorded: CallShape, now: CallShape | None) -> bool:
    return now is not None and compare(0, recorded, now) is None


def _moved_earlier(n: int, m: int, view: Callable[[int], CallShape]) -> _Try:
    def where(c: int) -> int:
        return n if c == m else c + 1 if n <= c < m else c

    def text() -> tuple[Cause, str]:
        moved, passed = view(m), view(n)
        if moved.kind != "interrupt" and passed.kind == "interrupt" and m == n + 1:
            return _moved(passed, moved, n, m, "later")  # a swap: tell of the question
        return _moved(moved, passed, m, n, "earlier")

    return _Try(where, affected=m, dropped=0, explanation=text)


def _moved_later(n: int, k: int, view: Callable[[int], CallShape]) -> _Try:
    def where(c: int) -> int:
        return k if c == n else c - 1 if n < c <= k else c

    return _Try(
        where, affected=k, dropped=0, explanation=lambda: _moved(view(n), view(k), n, k, "later")
    )


def _moved(
    moved: CallShape, passed: CallShape, was: int, now: int, way: Literal["earlier", "later"]
) -> tuple[Cause, str]:
    """`moved`, recorded as call `was`, is made at `now`: before or after `passed`."""
    where = "before" if way == "earlier" else "after"
    if moved.kind == "interrupt":
        return "interrupt-moved", (
            f"the {moved.describe()} moved {way}: recorded as step {was}, the code now asks it "
            f"at step {now}, {where} the {passed.describe()}"
        )
    return "reordered", (
        f"reordered: the {moved.describe()} (recorded as step {was}) now comes {where} the "
        f"{passed.describe()}"
    )


def _added(
    n: int, made: Call | str, now: CallShape, view: Callable[[int], CallShape] | None
) -> _Try:
    def text() -> tuple[Cause, str]:
        before = f", before the recorded {view(n).describe()}" if view is not None else ""
        return "added", f"a call was added: {now.describe()}{before}"

    return _Try(
        lambda c: c + 1 if c >= n else c,
        affected=n + 1 if view is not None else n,
        dropped=0,
        explanation=text,
        extra=tuple(stub_events(n, made)),
    )


def _removed(n: int, m: int, view: Callable[[int], CallShape], now: CallShape | None) -> _Try:
    def where(c: int) -> int | None:
        return None if n <= c < m else c - (m - n) if c >= m else c

    def text() -> tuple[Cause, str]:
        going_on = f"; it goes on with the {now.describe()}" if now is not None else ""
        if m - n == 1:
            return "removed", f"the {view(n).describe()} was removed{going_on}"
        first, last = view(n).describe(), view(m - 1).describe()
        return "removed", f"{m - n} calls were removed, the {first} to the {last}{going_on}"

    return _Try(where, affected=n, dropped=m - n, explanation=text)


def _replaced(n: int, made: Call | str, now: CallShape, view: Callable[[int], CallShape]) -> _Try:
    def text() -> tuple[Cause, str]:
        return "replaced", f"the {view(n).describe()} was replaced by the {now.describe()}"

    return _Try(
        lambda c: None if c == n else c,
        affected=n,
        dropped=1,
        explanation=text,
        extra=tuple(stub_events(n, made)),
    )


def _returns_early(divergence: Divergence, index: HistoryIndex) -> str:
    n = divergence.step
    rest = [p for p in index.calls if p >= n]
    missing = recorded_shape(index.calls[min(rest)]).describe() if rest else "recorded calls"
    if len(rest) > 1:
        return (
            f"the agent now returns after step {n - 1}: the {missing} and {len(rest) - 1} more "
            "calls after it are no longer made"
        )
    return f"the agent now returns after step {n - 1}: the {missing} is no longer made"


def code_end(payloads: Sequence[RunEventPayload]) -> RunCompleted | RunFailed | None:
    """How the agent code ended the recorded run, if the history ends there."""
    last = payloads[-1] if payloads else None
    if isinstance(last, RunCompleted):
        return last
    if isinstance(last, RunFailed) and last.error_type not in RUNTIME_FAILURES:
        return last
    return None


class _Counting(Replayer):
    """A replayer that remembers the highest call position the code reached."""

    highest = -1

    def next_position(self) -> int:
        position = super().next_position()
        self.highest = max(self.highest, position)
        return position
