"""Where replayed agent code left its recorded history, explained for people. Pure.

Replay matches each call agent code makes through its run context with the call recorded at
the same step (kind, name, argument digest). When they differ, a `Divergence` holds both
sides as `CallShape`s (kind, name, arguments, and for the new call the agent line that made
it) and says how they differ: the arguments that changed (`diff_args`, leaf by leaf), what
kind of difference it is, the likely fix. The runtime's parked message (`explain()`, in
`RunParked.detail`) and the replay tooling's divergence report (`lines()`, `to_json()`) are
both made from it.

    recorded = recorded_shape(index.calls[step])            # from the history
    new = shape_of_call(call, site=caller_site(frame))       # from the call being made
    divergence = compare(step, recorded, new)                # None when they match

Values shown are clipped, and at most `MAX_CHANGES` argument changes are listed: both sides
may hold anything an agent passed or a tool returned.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Literal, TypeAlias

from engine.agent.context import Call, InterruptCall, ToolCall
from engine.core.history import CallRecord
from events.json import Json, JsonObject, canonical_json, digest
from events.limits import MAX_ECHO_CHARS, MAX_ERROR_CHARS, clip

__all__ = [
    "ABSENT",
    "MAX_CHANGES",
    "ArgChange",
    "CallShape",
    "Divergence",
    "DivergenceKind",
    "Site",
    "caller_frame",
    "caller_site",
    "compare",
    "diff_args",
    "recorded_shape",
    "shape_of_call",
    "shown",
    "site_of",
]

ABSENT = "(absent)"
"""How an argument one side does not have is shown."""

MAX_CHANGES = 20
"""Argument changes listed; the rest are counted."""

DivergenceKind: TypeAlias = Literal[
    "new-call", "missing-call", "other-kind", "other-name", "other-arguments"
]
"""How the two sides differ at one step (replay tooling may explain it further: a call
added, removed, reordered, an interrupt moved)."""

_ENGINE = ("engine.agent.", "engine.core.")
"""Modules whose frames are the engine's own, never the agent's call site."""


@dataclass(frozen=True, slots=True)
class Site:
    """A line of agent code."""

    file: str
    line: int
    function: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} in {self.function}"

    def to_json(self) -> JsonObject:
        return {"file": self.file, "line": self.line, "function": self.function}


@dataclass(frozen=True, slots=True)
class CallShape:
    """One call as replay sees it: `kind` is tool, interrupt, value or model; `name` the
    tool, the value's kind ("now", "uuid", "random", "patch"); `args` the tool's arguments,
    the question's title or the patch id (None when the history kept only a digest).
    `source` (`file:line in function`) and `site` say where agent code made a new call;
    `digest` is what replay matches arguments by."""

    kind: str
    name: str
    args: Json = None
    source: str = ""
    digest: str = ""
    site: Site | None = None

    def describe(self) -> str:
        """One line: `tool log_note {"text":"n 17"}`, `question "Ship how?"`, `value now`."""
        if self.kind == "interrupt":
            return f"question {shown(self.args)}"
        text = f"{self.kind} {self.name}".strip()
        if self.args is not None:
            text += f" {shown(self.args)}"
        return text

    def made_at(self) -> str:
        return self.source or (str(self.site) if self.site is not None else "")

    def to_json(self) -> JsonObject:
        return {
            "kind": self.kind,
            "name": self.name,
            "args": self.args,
            "digest": self.digest,
            "source": self.made_at(),
            "site": None if self.site is None else self.site.to_json(),
        }


@dataclass(frozen=True, slots=True)
class ArgChange:
    """One argument that differs (`name` a path such as `items[2].sku`): its value in the
    history and now, shown (`ABSENT` where a side has none)."""

    name: str
    recorded: str
    new: str

    def describe(self) -> str:
        return f"{self.name}: {self.recorded} → {self.new}"

    def to_json(self) -> JsonObject:
        return {"name": self.name, "recorded": self.recorded, "new": self.new}


@dataclass(frozen=True, slots=True)
class Divergence:
    """At `step`, the history holds `recorded` and the code now made `new` (None: the code
    returned, or ended, before making it; `recorded` None: the history has no call there).
    `what` is a better explanation when replay tooling found one (a call added, ...)."""

    step: int
    recorded: CallShape | None
    new: CallShape | None
    what: str = ""

    @property
    def kind(self) -> DivergenceKind:
        recorded, new = self.recorded, self.new
        if recorded is None:
            return "new-call"
        if new is None:
            return "missing-call"
        if recorded.kind != new.kind:
            return "other-kind"
        if recorded.name != new.name:
            return "other-name"
        return "other-arguments"

    @property
    def explanation(self) -> str:
        """One sentence: what changed at this step."""
        return self.what or _plain(self)

    @property
    def changes(self) -> tuple[ArgChange, ...]:
        return self._changes()[:MAX_CHANGES]

    @property
    def more_changes(self) -> int:
        """Changes found beyond the `MAX_CHANGES` listed."""
        return max(0, len(self._changes()) - MAX_CHANGES)

    def _changes(self) -> tuple[ArgChange, ...]:
        if self.kind != "other-arguments" or self.recorded is None or self.new is None:
            return ()
        if self.recorded.args is None:
            return ()
        return diff_args(self.recorded.args, self.new.args, limit=MAX_CHANGES + 1)

    def explained(self, what: str) -> Divergence:
        """The same divergence with a better explanation."""
        return dataclasses.replace(self, what=what)

    def hint(self) -> str:
        """The likely fix, from what differs."""
        if self.new is None:
            return (
                "the agent now ends before this step: a deliberate change needs a new agent "
                'version (@app.agent(..., version="2")) or `if ctx.patched("change-id"):` '
                "around the new code, so that runs recorded with the old code keep it"
            )
        if self.kind == "other-arguments":
            return (
                "the arguments are computed differently on replay: take random numbers, "
                "time and ids from ctx.random(), ctx.now() and ctx.uuid(), and anything "
                "read from the environment, files or global state through a tool, so that "
                "replay sees the recorded values; if the code changed on purpose, give the "
                'agent a new version or branch with `if ctx.patched("change-id"):`'
            )
        return (
            "the code now makes another call at this step: if that is deliberate, give the "
            'agent a new version (@app.agent(..., version="2")) or branch with '
            '`if ctx.patched("change-id"):`; otherwise the code branches on something not '
            "recorded (random, time, environment): take it through the run context"
        )

    def explain(self, run_id: str = "RUN_ID") -> str:
        """The whole message, for the run's `RunParked.detail` and the worker's log."""
        lines = [
            f"step {self.step} does not replay: the history has a different call there",
            f"  recorded: {self.recorded.describe() if self.recorded is not None else '(no call)'}",
            f"  now:      {self.new.describe() if self.new is not None else '(no call)'}",
        ]
        if self.what:
            lines.append(f"  what:     {self.what}")
        changes = self.changes
        if changes:
            lines.append("  arguments that differ:")
            lines.extend(f"    {c.name}: recorded {c.recorded}, now {c.new}" for c in changes)
        made_at = self.new.made_at() if self.new is not None else ""
        if made_at:
            lines.append(f"  made at:  {made_at}")
        lines.append(f"likely fix: {self.hint()}")
        lines.append(f"then resume the run (countersign runs resume-parked {run_id}) or cancel it")
        return clip("\n".join(lines), MAX_ERROR_CHARS)

    def summary(self) -> str:
        """One line: `step 3: the arguments of refund changed (amount: 2400 → 240)`."""
        detail = ", ".join(change.describe() for change in self.changes[:3])
        return f"step {self.step}: {self.explanation}" + (f" ({detail})" if detail else "")

    def to_json(self) -> JsonObject:
        return {
            "step": self.step,
            "kind": self.kind,
            "explanation": self.explanation,
            "recorded": None if self.recorded is None else self.recorded.to_json(),
            "new": None if self.new is None else self.new.to_json(),
            "changes": [change.to_json() for change in self.changes],
            "more_changes": self.more_changes,
        }


# -- the two sides --------------------------------------------------------------------------------


def recorded_shape(rec: CallRecord) -> CallShape:
    """The recorded call at one step, with its arguments where the history holds them: a
    tool's from its first approval request or its schedule, when their digest is the call's
    (an edit changes what runs, not what was called); a question's title; a patch's id."""
    args: Json = None
    if rec.kind == "tool":
        args = _recorded_args(rec)
    elif rec.kind == "interrupt" and rec.questions:
        args = rec.questions[0].request.title
    elif rec.kind == "value" and rec.value is not None and str(rec.value.kind) == "patch":
        args = rec.value.value  # a patch marker (ctx.patched) records its change id
    return CallShape(rec.kind, rec.name, args, digest=rec.digest)


def _recorded_args(rec: CallRecord) -> Json:
    candidates: list[Json] = []
    if rec.gates:
        candidates.append(rec.gates[0].request.args)
    if rec.scheduled is not None:
        candidates.append(rec.scheduled.args)
    for args in candidates:
        if isinstance(args, dict) and (not rec.digest or digest(args) == rec.digest):
            return args
    return None


def shape_of_call(call: Call, *, site: Site | None = None) -> CallShape:
    """A call agent code is making now (a tool call or an interrupt)."""
    source = str(site) if site is not None else ""
    if isinstance(call, ToolCall):
        return CallShape("tool", call.tool, call.args, source, digest(call.args), site)
    if isinstance(call, InterruptCall):
        return CallShape("interrupt", "", call.title, source, digest(call.title), site)
    return CallShape(type(call).__name__, "", None, source, "", site)  # pragma: no cover


# -- comparing ------------------------------------------------------------------------------------


def compare(step: int, recorded: CallShape | None, new: CallShape | None) -> Divergence | None:
    """None when `new` is the recorded call (the history's rule: the kind, then the name
    and the digest where the history knows them); otherwise the divergence."""
    if recorded is None and new is None:
        return None
    if recorded is not None and new is not None:
        same_name = not recorded.name or recorded.name == new.name
        same_args = not recorded.digest or recorded.digest == new.digest
        if recorded.kind == new.kind and same_name and same_args:
            return None
        if recorded.kind == new.kind and not recorded.name:  # a wildcard name is no difference
            recorded = dataclasses.replace(recorded, name=new.name)
    return Divergence(step, recorded, new)


def _plain(divergence: Divergence) -> str:
    recorded, new = divergence.recorded, divergence.new
    kind = divergence.kind
    if kind == "new-call":
        assert new is not None
        return f"the code makes a call the run did not record: {new.describe()}"
    assert recorded is not None
    if kind == "missing-call":
        return f"the code no longer makes the recorded {recorded.describe()}"
    assert new is not None
    if kind == "other-kind":
        return f"the code makes {_a(new.kind)} where the run recorded {_a(recorded.kind)}"
    if kind == "other-name":
        return f"another {new.kind}: {new.name} where the run recorded {recorded.name}"
    if new.kind == "interrupt":
        return "the question changed"
    if new.kind == "tool":
        return f"the arguments of {new.name} changed"
    return f"the {new.kind} call changed"


def diff_args(recorded: Json, new: Json, *, limit: int = MAX_CHANGES) -> tuple[ArgChange, ...]:
    """The leaves that differ, depth first in key order, at most `limit`: objects compared
    key by key, lists item by item, anything else as a whole. No recursion: the values
    come from the history or from agent code, of any depth."""
    out: list[ArgChange] = []
    stack: list[tuple[str, object, object]] = [("", recorded, new)]
    while stack and len(out) < limit:
        path, old, now = stack.pop()
        if isinstance(old, dict) and isinstance(now, dict):
            keys = sorted(old.keys() | now.keys())
            stack.extend(
                (f"{path}.{k}" if path else k, old.get(k, _NONE), now.get(k, _NONE))
                for k in reversed(keys)
            )
        elif isinstance(old, list) and isinstance(now, list):
            items = range(max(len(old), len(now)) - 1, -1, -1)
            stack.extend((f"{path}[{i}]", _item(old, i), _item(now, i)) for i in items)
        elif old is _NONE or now is _NONE or not _same(old, now):
            out.append(ArgChange(path or "(value)", _side(old), _side(now)))
    return tuple(out)


_NONE = object()


def _item(values: list[Json], i: int) -> object:
    return values[i] if i < len(values) else _NONE


def _side(value: object) -> str:
    return ABSENT if value is _NONE else shown(value)  # type: ignore[arg-type]


def _same(a: object, b: object) -> bool:
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
            found = Site(frame.f_code.co_filename, tb.tb_lineno, _name(frame))
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
    return Site(found.f_code.co_filename, found.f_lineno, _name(found))


def _is_engine(frame: FrameType) -> bool:
    module = frame.f_globals.get("__name__", "")
    return isinstance(module, str) and module.startswith(_ENGINE)


def _name(frame: FrameType) -> str:
    return getattr(frame.f_code, "co_qualname", frame.f_code.co_name)


# -- showing values -------------------------------------------------------------------------------


def shown(value: Json, limit: int = MAX_ECHO_CHARS) -> str:
    """A value as canonical JSON, clipped to `limit` characters."""
    try:
        text = canonical_json(value)
    except (TypeError, ValueError):  # agent code may pass what JSON cannot carry
        text = repr(value)
    return clip(text, limit)


def _a(kind: str) -> str:
    article = "an" if kind[:1] in "aeiou" else "a"
    return f"{article} {kind} call"
