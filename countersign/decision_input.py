"""What a person types to decide, made into a decision: which interrupt, the edited arguments
from `--set`, the answer from `--response`. Pure (reading an `@file` is passed in).

    countersign decide RUN approve --by alice                  # the run's one open request
    countersign decide RUN edit --by bob --set body=@draft.txt --set amount=900
    countersign decide RUN respond --by ann --response 'ship by DHL'

`--set NAME=VALUE` takes VALUE as JSON when it is JSON (`900`, `true`, `["a"]`) and as text
otherwise; `NAME=@PATH` reads the file as text; `NAME:=VALUE` must be JSON; `NAME=` is the
empty string. The sets are merged over the proposed arguments and validated like any edit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from engine.agent.argspec import validate
from engine.errors import ConfigurationError
from events.json import Json, JsonObject, loads
from events.limits import MAX_ECHO_CHARS, clip
from projections.card import takes_plain_text
from projections.rows import InterruptRow

MAX_SETS = 100


def choose_interrupt(run_id: str, open_rows: Sequence[InterruptRow], wanted: str | None) -> str:
    """The interrupt to decide: `wanted`, or the run's only open one."""
    if wanted is not None:
        return wanted
    if len(open_rows) == 1:
        return open_rows[0].interrupt_id
    if not open_rows:
        raise ConfigurationError(
            f"run {run_id} has no open request in the projections (decided already, or the "
            "projector has not caught up: countersign runs show RUN)"
        )
    listed = "; ".join(f"{r.interrupt_id} {clip(r.title, 60)}" for r in open_rows)
    raise ConfigurationError(f"run {run_id} has {len(open_rows)} open requests; name one: {listed}")


def parse_sets(sets: Sequence[str], read_text: Callable[[str], str]) -> JsonObject:
    """`--set` values by argument name (a name given twice: the last one wins)."""
    if len(sets) > MAX_SETS:
        raise ConfigurationError(f"at most {MAX_SETS} --set, not {len(sets)}")
    values: JsonObject = {}
    for item in sets:
        name, value = _one_set(item, read_text)
        values[name] = value
    return values


def _one_set(item: str, read_text: Callable[[str], str]) -> tuple[str, Json]:
    name, equals, text = item.partition("=")
    if not equals:
        raise ConfigurationError(f"--set {clip(item, MAX_ECHO_CHARS)!r}: use NAME=VALUE")
    if name.endswith(":"):  # NAME:=JSON
        return _name(name[:-1], item), json_value(text, f"--set {name}=")
    if text.startswith("@"):
        return _name(name, item), read_text(text[1:])
    try:
        value: Json = loads(text)
    except ValueError:
        value = text  # not JSON: the text itself
    return _name(name, item), value


def _name(name: str, item: str) -> str:
    if not name or not name.isidentifier():
        raise ConfigurationError(
            f"--set {clip(item, MAX_ECHO_CHARS)!r}: {clip(name, 60)!r} is not an argument name"
        )
    return name


def json_value(text: str, what: str) -> Json:
    try:
        value = loads(text)  # strict: what the codec would refuse later is refused here
    except ValueError as exc:
        raise ConfigurationError(f"{what} is not valid JSON: {exc}") from exc
    return value


def json_object(text: str, what: str) -> JsonObject:
    value = json_value(text, what)
    if not isinstance(value, dict):
        raise ConfigurationError(f"{what} must be a JSON object")
    return value


def merged_edit(
    proposed: JsonObject | None, sets: JsonObject, schema: Json, whole: JsonObject | None
) -> JsonObject:
    """The edited arguments: `whole` (`--args`, every argument) or the proposed ones with the
    sets merged over them; checked against the tool's schema before anything is sent."""
    if whole is not None and sets:
        raise ConfigurationError("give either --args (all arguments) or --set (some), not both")
    edited = whole if whole is not None else {**(proposed or {}), **sets}
    if whole is None and not sets:
        raise ConfigurationError("an edit needs --set NAME=VALUE (or --args with all arguments)")
    errors = validate(edited, schema)
    if errors:
        raise ConfigurationError("the edited arguments are invalid: " + "; ".join(errors))
    return edited


def response_of(text: str, schema: Json) -> Json:
    """The answer: the text itself when the answer is one string, else JSON (a text that is
    not JSON is taken as text only where the schema allows a string)."""
    if takes_plain_text(schema):
        return text
    try:
        value: Json = loads(text)
    except ValueError as exc:
        if not validate(text, schema):
            return text
        raise ConfigurationError(f"--response is not valid JSON: {exc}") from exc
    return value
