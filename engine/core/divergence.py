"""Where replayed agent code left its recorded history, explained for people. Pure.

A `Divergence` holds the recorded call and the new one at the same step, each as a
`CallShape` (kind, name, arguments, and for the new call the source line that made it).
`explain()` is the message a parked run carries: the step, both calls, the arguments that
differ, where the new call was made and the likely fix.

    divergence = Divergence(step=0, recorded=CallShape("tool", "log_note", {"text": "n 17"}),
                            new=CallShape("tool", "log_note", {"text": "n 42"}, "agent.py:12"))
    print(divergence.explain())
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.core.history import CallRecord
from events.json import Json, canonical_json
from events.limits import MAX_ECHO_CHARS, MAX_ERROR_CHARS, clip

ABSENT = "(absent)"
"""How an argument one side does not have is shown."""


@dataclass(frozen=True, slots=True)
class CallShape:
    """One call as replay sees it: `kind` is tool, interrupt, value or model; `name` the
    tool, the value's kind ("now", "uuid", "random", "patch"); `args` the tool's arguments,
    the question's title or the patch id (None when the history kept only a digest)."""

    kind: str
    name: str
    args: Json = None
    source: str = ""

    def describe(self) -> str:
        """One line: `tool log_note {"text":"n 17"}`, `question "Ship how?"`, `value now`."""
        if self.kind == "interrupt":
            return f"question {clip(canonical_json(self.args), MAX_ECHO_CHARS)}"
        shown = f"{self.kind} {self.name}".strip()
        if self.args is not None:
            shown += f" {clip(canonical_json(self.args), MAX_ECHO_CHARS)}"
        return shown


@dataclass(frozen=True, slots=True)
class ArgChange:
    """One argument that differs: its value in the history and now (`ABSENT` for none)."""

    name: str
    recorded: str
    new: str


def recorded_shape(rec: CallRecord) -> CallShape:
    """The recorded call at one position, with its arguments where the history holds them."""
    args: Json = None
    if rec.kind == "tool":
        if rec.scheduled is not None:
            args = rec.scheduled.args
        elif rec.gates:
            args = rec.gates[0].request.args
    elif rec.kind == "interrupt" and rec.questions:
        args = rec.questions[0].request.title
    elif rec.kind == "value" and rec.value is not None and rec.value.kind == "patch":
        args = rec.value.value
    return CallShape(rec.kind, rec.name, args)


def diff_args(recorded: Json, new: Json) -> tuple[ArgChange, ...]:
    """The arguments that differ, by name (objects), or the whole value (anything else)."""
    if isinstance(recorded, dict) and isinstance(new, dict):
        return tuple(
            ArgChange(key, _shown(recorded, key), _shown(new, key))
            for key in sorted(recorded.keys() | new.keys())
            if _shown(recorded, key) != _shown(new, key)
        )
    if canonical_json(recorded) == canonical_json(new):
        return ()
    return (ArgChange("(value)", _clipped(recorded), _clipped(new)),)


@dataclass(frozen=True, slots=True)
class Divergence:
    """At `step`, the history holds `recorded` and the code now made `new` (None: the code
    returned, or ended, before making it)."""

    step: int
    recorded: CallShape
    new: CallShape | None

    @property
    def changes(self) -> tuple[ArgChange, ...]:
        if self.new is None or not self._same_call():
            return ()
        if self.recorded.args is None:
            return ()
        return diff_args(self.recorded.args, self.new.args)

    def hint(self) -> str:
        """The likely fix, from what differs."""
        if self.new is None:
            return (
                "the agent now ends before this step: a deliberate change needs a new agent "
                'version (@app.agent(..., version="2")) or `if ctx.patched("change-id"):` '
                "around the new code, so that runs recorded with the old code keep it"
            )
        if self._same_call():
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
            f"  recorded: {self.recorded.describe()}",
            f"  now:      {self.new.describe() if self.new is not None else '(no call)'}",
        ]
        changes = self.changes
        if changes:
            lines.append("  arguments that differ:")
            lines.extend(f"    {c.name}: recorded {c.recorded}, now {c.new}" for c in changes)
        if self.new is not None and self.new.source:
            lines.append(f"  made at:  {self.new.source}")
        lines.append(f"likely fix: {self.hint()}")
        lines.append(f"then resume the run (countersign runs resume-parked {run_id}) or cancel it")
        return clip("\n".join(lines), MAX_ERROR_CHARS)

    def _same_call(self) -> bool:
        new = self.new
        return new is not None and (new.kind, new.name) == (self.recorded.kind, self.recorded.name)


def _shown(args: dict[str, Json], key: str) -> str:
    return _clipped(args[key]) if key in args else ABSENT


def _clipped(value: Json) -> str:
    return clip(canonical_json(value), MAX_ECHO_CHARS)
