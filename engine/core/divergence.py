"""A recorded call and the call today's code makes in its place, compared. Pure.

Replay matches each call agent code makes through its run context with the call recorded at
the same position (kind, name, argument digest). When they differ, `compare` says how in
terms a person can act on: the two sides, the arguments that changed (`diff_args`), and the
line of agent code that made the new call (`site_of` / `caller_site`). The runtime's parked
message and the replay tooling's divergence report are both built from a `Divergence`.

    recorded = recorded_view(index.calls[position])     # from the history
    now = view_of_call(call, site=caller_site(frame))   # from the call being made
    divergence = compare(position, recorded, now)       # None when they match

Values shown are clipped (`MAX_SHOWN`), and at most `MAX_CHANGES` argument changes are
listed: both sides may hold anything an agent passed or a tool returned.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Literal, TypeAlias

from engine.agent.context import Call, InterruptCall, ToolCall
from engine.core.history import CallRecord
from events.json import Json, JsonObject, canonical_json, digest
from events.limits import clip

__all__ = [
    "MAX_CHANGES",
    "MAX_SHOWN",
    "ArgChange",
    "CallView",
    "Divergence",
    "DivergenceKind",
    "Site",
    "caller_frame",
    "caller_site",
    "compare",
    "diff_args",
    "recorded_view",
    "shown",
    "site_of",
    "view_of_call",
]

MAX_SHOWN = 200
"""Characters of one value shown in a report."""

MAX_CHANGES = 20
"""Argument changes listed; the rest are counted."""

DivergenceKind: TypeAlias = Literal[
    "new-call", "missing-call", "other-kind", "other-name", "other-arguments"
]
"""How the two sides differ, as found at one position (replay tooling may explain it further:
added, removed, reordered, moved)."""

_ENGINE = ("engine.agent.", "engine.core.")
"""Modules whose frames are the engine's own, never the agent's call site."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Site:
    """A line of agent code."""

    file: str
    line: int
    function: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} in {self.function}"

    def to_json(self) -> JsonObject:
        return {"file": self.file, "line": self.line, "function": self.function}


@dataclass(frozen=True, kw_only=True, slots=True)
class CallView:
    """One call through the run context, as a report shows it.

    `kind` is tool, interrupt, value or model; `name` the tool's name or the value's kind;
    `args` a tool's arguments (None when the history holds only their digest), `title` an
    interrupt's question; `site` where agent code made it (known for calls made now)."""

    kind: str
    name: str = ""
    digest: str = ""
    args: JsonObject | None = None
    title: str | None = None
    site: Site | None = None

    def describe(self) -> str:
        """`tool refund(amount=2400, order_id="A-17")`, `interrupt "Ship it?"`, `value now`."""
        if self.kind == "tool":
            if self.args is None:
                return f"tool {self.name} (arguments {self.digest[:12]})"
            shown_args = ", ".join(f"{k}={shown(v, 60)}" for k, v in sorted(self.args.items()))
            return f"tool {self.name}({clip(shown_args, MAX_SHOWN)})"
        if self.kind == "interrupt":
            if self.title is None:
                return f"interrupt (title {self.digest[:12]})"
            return f"interrupt {shown(self.title)}"
        if self.kind == "value":
            return f"value {self.name}"
        return f"{self.kind} {self.name} {self.digest[:12]}".rstrip()

    def to_json(self) -> JsonObject:
        return {
            "kind": self.kind,
            "name": self.name,
            "digest": self.digest,
            "args": self.args,
            "title": self.title,
            "site": None if self.site is None else self.site.to_json(),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class ArgChange:
    """One difference between the recorded and the new arguments; `path` like `items[2].sku`."""

    path: str
    change: Literal["changed", "added", "removed"]
    recorded: Json = None
    now: Json = None

    def describe(self) -> str:
        if self.change == "added":
            return f"{self.path}: added {shown(self.now)}"
        if self.change == "removed":
            return f"{self.path}: removed (was {shown(self.recorded)})"
        return f"{self.path}: {shown(self.recorded)} → {shown(self.now)}"

    def to_json(self) -> JsonObject:
        return {
            "path": self.path,
            "change": self.change,
            "recorded": self.recorded,
            "now": self.now,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class Divergence:
    """The first call at which today's code and the history disagree.

    `call` is the call position (0, 1, ... in program order); `recorded` is None when the
    history has no call there, `now` when the code made none (it returned, or waits
    elsewhere). `explanation` is one sentence; `changes` the argument (or title) changes."""

    call: int
    kind: DivergenceKind
    explanation: str
    recorded: CallView | None
    now: CallView | None
    changes: tuple[ArgChange, ...] = ()
    more_changes: int = 0
    """Changes found beyond the `MAX_CHANGES` listed."""

    def explained(self, explanation: str) -> Divergence:
        """The same divergence with a better explanation (e.g. "tool notify was added")."""
        return dataclasses.replace(self, explanation=explanation)

    def summary(self) -> str:
        """One line: `call 3: the arguments changed (amount: 2400 → 240)`."""
        detail = ", ".join(change.describe() for change in self.changes[:3])
        return f"call {self.call}: {self.explanation}" + (f" ({detail})" if detail else "")

    def lines(self) -> list[str]:
        """Both sides, the changes and the call site, one fact per line."""
        out = [f"call {self.call}: {self.explanation}"]
        out.append(f"  recorded  {self.recorded.describe() if self.recorded else '(no call)'}")
        out.append(f"  now       {self.now.describe() if self.now else '(no call)'}")
        if self.now is not None and self.now.site is not None:
            out.append(f"  made at   {self.now.site}")
        for change in self.changes:
            out.append(f"  changed   {change.describe()}")
        if self.more_changes:
            out.append(f"  changed   … and {self.more_changes} more")
        return out

    def to_json(self) -> JsonObject:
        return {
            "call": self.call,
            "kind": self.kind,
            "explanation": self.explanation,
            "recorded": None if self.recorded is None else self.recorded.to_json(),
            "now": None if self.now is None else self.now.to_json(),
            "changes": [change.to_json() for change in self.changes],
            "more_changes": self.more_changes,
        }


# -- the two sides --------------------------------------------------------------------------------


def recorded_view(rec: CallRecord) -> CallView:
    """What the history says a call was. Its arguments are recovered from its schedule or its
    first approval request when those hold the arguments the call was made with (an edit
    changes what runs, not what was called); otherwise only their digest is known."""
    if rec.kind == "tool":
        return CallView(kind="tool", name=rec.name, digest=rec.digest, args=_recorded_args(rec))
    if rec.kind == "interrupt":
        question = rec.question
        title = question.request.title if question is not None else None
        return CallView(kind="interrupt", digest=rec.digest, title=title)
    return CallView(kind=rec.kind, name=rec.name, digest=rec.digest)


def _recorded_args(rec: CallRecord) -> JsonObject | None:
    candidates: list[Json] = []
    if rec.gates:
        candidates.append(rec.gates[0].request.args)
    if rec.scheduled is not None:
        candidates.append(rec.scheduled.args)
    for args in candidates:
        if isinstance(args, dict) and (not rec.digest or digest(args) == rec.digest):
            return args
    return None


def view_of_call(call: Call, *, site: Site | None = None) -> CallView:
    """A call agent code is making now (a tool call or an interrupt)."""
    if isinstance(call, ToolCall):
        return CallView(
            kind="tool", name=call.tool, digest=digest(call.args), args=call.args, site=site
        )
    if isinstance(call, InterruptCall):
        return CallView(kind="interrupt", digest=digest(call.title), title=call.title, site=site)
    return CallView(kind=type(call).__name__, site=site)  # pragma: no cover - a closed set


# -- comparing ------------------------------------------------------------------------------------


def compare(call: int, recorded: CallView | None, now: CallView | None) -> Divergence | None:
    """None when `now` is the recorded call (the history's rule: kind, then name and digest
    where the history knows them); otherwise how they differ."""
    kind: DivergenceKind
    if recorded is None:
        if now is None:
            return None
        kind, explanation = (
            "new-call",
            f"the code makes a call the run did not record: {now.describe()}",
        )
    elif now is None:
        kind, explanation = (
            "missing-call",
            f"the code no longer makes the recorded {recorded.describe()}",
        )
    elif recorded.kind != now.kind:
        kind = "other-kind"
        explanation = f"the code makes {_a(now.kind)} where the run recorded {_a(recorded.kind)}"
    elif recorded.name and recorded.name != now.name:
        kind = "other-name"
        explanation = f"another {now.kind}: {now.name} where the run recorded {recorded.name}"
    elif recorded.digest and recorded.digest != now.digest:
        return _other_arguments(call, recorded, now)
    else:
        return None
    return Divergence(call=call, kind=kind, explanation=explanation, recorded=recorded, now=now)


def _other_arguments(call: int, recorded: CallView, now: CallView) -> Divergence:
    if now.kind == "interrupt":
        explanation = "the interrupt's title changed"
        changes: tuple[ArgChange, ...] = ()
        if recorded.title is not None:
            changes = (
                ArgChange(path="title", change="changed", recorded=recorded.title, now=now.title),
            )
        more = 0
    elif now.kind == "tool":
        explanation = f"the arguments of {now.name} changed"
        changes, more = (), 0
        if recorded.args is not None and now.args is not None:
            found = diff_args(recorded.args, now.args, limit=MAX_CHANGES + 1)
            changes, more = found[:MAX_CHANGES], max(0, len(found) - MAX_CHANGES)
    else:
        explanation = f"the {now.kind} call changed"
        changes, more = (), 0
    return Divergence(
        call=call,
        kind="other-arguments",
        explanation=explanation,
        recorded=recorded,
        now=now,
        changes=changes,
        more_changes=more,
    )


def diff_args(recorded: Json, now: Json, *, limit: int = MAX_CHANGES) -> tuple[ArgChange, ...]:
    """The leaves that differ, depth first in key order, at most `limit` of them. Objects are
    compared key by key and lists item by item; anything else is changed as a whole. No
    recursion: the values come from the history or from agent code, of any depth."""
    out: list[ArgChange] = []
    stack: list[tuple[str, object, object]] = [("", recorded, now)]
    while stack and len(out) < limit:
        path, old, new = stack.pop()
        if old is _ABSENT:
            out.append(ArgChange(path=path, change="added", now=_json(new)))
        elif new is _ABSENT:
            out.append(ArgChange(path=path, change="removed", recorded=_json(old)))
        elif isinstance(old, dict) and isinstance(new, dict):
            keys = sorted(old.keys() | new.keys())
            stack.extend(
                (f"{path}.{k}" if path else k, old.get(k, _ABSENT), new.get(k, _ABSENT))
                for k in reversed(keys)
            )
        elif isinstance(old, list) and isinstance(new, list):
            items = range(max(len(old), len(new)) - 1, -1, -1)
            stack.extend((f"{path}[{i}]", _item(old, i), _item(new, i)) for i in items)
        elif not _same(_json(old), _json(new)):
            out.append(
                ArgChange(
                    path=path or "(value)", change="changed", recorded=_json(old), now=_json(new)
                )
            )
    return tuple(out)


_ABSENT = object()


def _item(values: list[Json], i: int) -> object:
    return values[i] if i < len(values) else _ABSENT


def _json(value: object) -> Json:
    return value  # type: ignore[return-value]  # a leaf of a Json value


def _same(a: Json, b: Json) -> bool:
    """Equal as JSON: 1 and 1.0 are the same number, True and 1 are not."""
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    return a == b


# -- where agent code made a call -----------------------------------------------------------------


def site_of(tb: TracebackType | None) -> Site | None:
    """The innermost frame of agent code in a traceback through the engine (the line whose
    call raised, e.g. a `NonDeterminismError` raised while resolving it)."""
    found: Site | None = None
    while tb is not None:
        frame = tb.tb_frame
        if not _is_engine(frame):
            found = Site(file=frame.f_code.co_filename, line=tb.tb_lineno, function=_name(frame))
        tb = tb.tb_next
    return found


def caller_frame(frame: FrameType | None) -> FrameType | None:
    """The first frame of agent code outward from `frame` (e.g. the frame resolving a call)."""
    while frame is not None and _is_engine(frame):
        frame = frame.f_back
    return frame


def caller_site(frame: FrameType | None) -> Site | None:
    """The line of agent code outward from `frame`: where it made the call being resolved."""
    found = caller_frame(frame)
    if found is None:
        return None
    return Site(file=found.f_code.co_filename, line=found.f_lineno, function=_name(found))


def _is_engine(frame: FrameType) -> bool:
    module = frame.f_globals.get("__name__", "")
    return isinstance(module, str) and module.startswith(_ENGINE)


def _name(frame: FrameType) -> str:
    return getattr(frame.f_code, "co_qualname", frame.f_code.co_name)


# -- showing values -------------------------------------------------------------------------------


def shown(value: Json, limit: int = MAX_SHOWN) -> str:
    """A value as canonical JSON, clipped to `limit` characters."""
    try:
        text = canonical_json(value)
    except (TypeError, ValueError):  # agent code may pass what JSON cannot carry
        text = repr(value)
    return clip(text, limit)


def _a(kind: str) -> str:
    article = "an" if kind[:1] in "aeiou" else "a"
    return f"{article} {kind} call"
