"""Which values of a run event are personal, sealing them, and opening a history again. Pure.

The personal fields are the tool's (`engine.agent.personal`): a schedule's arguments, a
completion's result, a tool gate's request arguments, an edit's arguments. The subject is
the call's `DATA_SUBJECT` argument. Sealing and opening take the key lookups and the
sealing of one value as functions (the shell holds the keys and the randomness).

Opening a history gives back the values whose key exists and `{"countersign.erased": ...}`
for the others; a call whose arguments were erased has its recorded digests blanked in the
opened copy (never in the log), so replay matches the call by tool name alone: the agent's
code now computes those arguments from erased values, and that is not a divergence.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence

from engine.agent.personal import PersonalFields
from engine.privacy.sealing import (
    Sealed,
    open_sealed,
    replace_sealed,
    sealed_in,
    shown,
    withheld_in,
)
from events.envelope import EventEnvelope
from events.errors import EncodeError
from events.json import Json, JsonObject
from events.run_events import (
    DecisionAccepted,
    DecisionHeld,
    GateEvaluated,
    InterruptRaised,
    RunEventPayload,
    ToolCallCompleted,
    ToolCallScheduled,
)

__all__ = [
    "PersonalDataErased",
    "SealValue",
    "ToolFields",
    "open_history",
    "seal_payload",
    "subjects_in",
    "subjects_to_seal",
]

ToolFields = Callable[[str], PersonalFields | None]
"""A tool's personal fields by its name (None: it has none, or it is unknown)."""
SealValue = Callable[[str, str, Json], Json]
"""(subject, path, value) → the sealed value; raises `PersonalDataErased` or `EncodeError`."""


class PersonalDataErased(EncodeError):
    """The subject's key was destroyed: personal data about them cannot be written again."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Site:
    fields: PersonalFields
    subject: str
    args: JsonObject


def _call_args(history: Sequence[EventEnvelope], call: int) -> tuple[str, JsonObject] | None:
    for envelope in reversed(history):
        payload = envelope.payload
        if isinstance(payload, ToolCallScheduled) and payload.call == call:
            return payload.tool, payload.args
    return None


def _interrupt_tool(history: Sequence[EventEnvelope], interrupt_id: str) -> str | None:
    for envelope in reversed(history):
        payload = envelope.payload
        if isinstance(payload, InterruptRaised) and payload.interrupt_id == interrupt_id:
            return payload.request.tool
    return None


def _site(tool: str | None, args: JsonObject | None, fields: ToolFields) -> _Site | None:
    personal = fields(tool) if tool else None
    if personal is None or args is None:
        return None
    subject = args.get(personal.subject)
    if not isinstance(subject, str) or not subject:
        raise EncodeError(
            f"tool {tool!r} has personal data but its data subject {personal.subject!r} "
            "is not a non-empty string: nothing to seal it for"
        )
    return _Site(personal, subject, args)


def _where(
    payload: RunEventPayload, history: Sequence[EventEnvelope], fields: ToolFields
) -> _Site | None:
    match payload:
        case ToolCallScheduled(tool=tool, args=args):
            return _site(tool, args, fields)
        case ToolCallCompleted(call=call):
            found = _call_args(history, call)
            return _site(found[0], found[1], fields) if found else None
        case InterruptRaised(request=request):
            return _site(request.tool, request.args, fields)
        case DecisionAccepted(edited_args=edited) | DecisionHeld(edited_args=edited):
            if edited is None:
                return None
            return _site(_interrupt_tool(history, payload.interrupt_id), edited, fields)
        case _:
            return None


def subjects_to_seal(
    payloads: Iterable[RunEventPayload], history: Sequence[EventEnvelope], fields: ToolFields
) -> set[str]:
    """The subjects whose keys sealing `payloads` needs (a completion needs its schedule in
    `history`)."""
    found = set()
    for payload in payloads:
        site = _where(payload, history, fields)
        if site is not None:
            found.add(site.subject)
    return found


def _sealed_args(site: _Site, args: JsonObject, prefix: str, seal: SealValue) -> JsonObject:
    return {
        name: seal(site.subject, f"{prefix}{name}", value) if name in site.fields.args else value
        for name, value in args.items()
    }


def _sealed_result(site: _Site, result: Json, seal: SealValue) -> Json:
    if site.fields.whole_result:
        return seal(site.subject, "result", result)
    if not isinstance(result, dict):
        return result
    return {
        name: seal(site.subject, f"result.{name}", value) if name in site.fields.result else value
        for name, value in result.items()
    }


def seal_payload(
    payload: RunEventPayload,
    history: Sequence[EventEnvelope],
    fields: ToolFields,
    seal: SealValue,
) -> RunEventPayload:
    """`payload` with its personal values sealed (unchanged when it has none)."""
    site = _where(payload, history, fields)
    if site is None:
        return payload
    match payload:
        case ToolCallScheduled(args=args):
            return dataclasses.replace(payload, args=_sealed_args(site, args, "args.", seal))
        case ToolCallCompleted(result=result):
            return dataclasses.replace(payload, result=_sealed_result(site, result, seal))
        case InterruptRaised(request=request):
            assert request.args is not None
            args = _sealed_args(site, request.args, "request.args.", seal)
            return dataclasses.replace(payload, request=dataclasses.replace(request, args=args))
        case DecisionAccepted(edited_args=edited) | DecisionHeld(edited_args=edited):
            assert edited is not None
            sealed = _sealed_args(site, edited, "edited_args.", seal)
            return dataclasses.replace(payload, edited_args=sealed)
    return payload  # pragma: no cover - `_where` names no other kind


def _values(payload: RunEventPayload) -> list[Json]:
    match payload:
        case ToolCallScheduled(args=args):
            return [args]
        case ToolCallCompleted(result=result):
            return [result]
        case InterruptRaised(request=request):
            return [request.args]
        case DecisionAccepted(edited_args=edited) | DecisionHeld(edited_args=edited):
            return [edited]
    return []


def subjects_in(payloads: Iterable[RunEventPayload]) -> set[str]:
    """The subjects of every sealed value in `payloads` (the keys opening them needs)."""
    return {s.subject for p in payloads for value in _values(p) for s in sealed_in(value)}


def _opened(
    payload: RunEventPayload, run_id: str, key: Callable[[str], bytes | None], show: bool
) -> RunEventPayload:
    def opener(sealed: Sealed) -> Json:
        opened = open_sealed(sealed, key(sealed.subject), run_id)
        return shown(opened) if show else opened

    match payload:
        case ToolCallScheduled(args=args):
            opened = replace_sealed(args, opener)
            assert isinstance(opened, dict)
            digest = "" if withheld_in(opened) else payload.args_digest
            return dataclasses.replace(payload, args=opened, args_digest=digest)
        case ToolCallCompleted(result=result):
            return dataclasses.replace(payload, result=replace_sealed(result, opener))
        case InterruptRaised(request=request) if request.args is not None:
            asked = replace_sealed(request.args, opener)
            assert isinstance(asked, dict)
            return dataclasses.replace(payload, request=dataclasses.replace(request, args=asked))
        case DecisionAccepted(edited_args=edited) | DecisionHeld(edited_args=edited):
            if edited is None:
                return payload
            edits = replace_sealed(edited, opener)
            assert isinstance(edits, dict)
            return dataclasses.replace(payload, edited_args=edits)
    return payload


def open_history(
    history: Sequence[EventEnvelope], key: Callable[[str], bytes | None], *, show: bool = False
) -> list[EventEnvelope]:
    """The run's events with their sealed values opened (or erased); the digests of a call
    whose arguments were erased blanked (see the module doc). `show`: for people to read
    (an erased value is the word `erased`), not for replay."""
    opened = [
        dataclasses.replace(e, payload=_opened(e.payload, e.run_id, key, show)) for e in history
    ]
    blind = {
        e.payload.call
        for e in opened
        if isinstance(e.payload, ToolCallScheduled | InterruptRaised)
        and withheld_in(_values(e.payload)[0])
    }
    return [_blinded(e, blind) for e in opened] if blind else opened


def _blinded(envelope: EventEnvelope, calls: set[int]) -> EventEnvelope:
    payload = envelope.payload
    if isinstance(payload, GateEvaluated | ToolCallScheduled) and payload.call in calls:
        return dataclasses.replace(envelope, payload=dataclasses.replace(payload, args_digest=""))
    return envelope
