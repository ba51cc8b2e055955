"""A decision as a person sends it, checked before anything is published. Pure.

    draft = read_decision(body, request=card.request, allowed=card.row.allowed)
    decision_id = decision_id_for(principal, interrupt_id, idempotency_key)

The body is JSON: `{"kind": "approve" | "edit" | "reject" | "respond", "reason": str,
"args": {...} (edit), "response": any (respond), "digest": str}`. Who decides is never in it:
a `decided_by` field is refused, the server writes the authenticated principal. An edit is
checked against the tool's argument schema and a response against the answer schema
(`engine.agent.argspec`, the worker's own checks), so a bad edit is refused here, before
anything is sent, with the same sentences the worker would give.

The decision id is derived from who decides, the request and the `Idempotency-Key`, so a
retried POST — to this server or to another one, before or after a restart — publishes the
same decision id, which the engine applies once and answers with its first outcome.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from engine.agent.argspec import validate
from events.approval import DECISION_KINDS, ApprovalRequest
from events.json import Json, JsonObject, canonical_json
from projections.fold import edit_diff

MAX_REASON_CHARS = 2_000
MAX_KEY_CHARS = 200
_NAMESPACE = uuid.UUID("6f1c0d1e-8a4b-4f7e-9d2a-2b3c4d5e6f70")


class DecisionInvalid(ValueError):
    """The decision is refused before it is sent; `errors` are readable sentences."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True, kw_only=True, slots=True)
class DecisionDraft:
    kind: str
    reason: str = ""
    args: JsonObject | None = None
    response: Json = None
    digest: str = ""

    def fingerprint(self) -> str:
        """What an idempotency key is bound to: the same key with another body is refused."""
        return canonical_json(
            {
                "kind": self.kind,
                "reason": self.reason,
                "args": self.args,
                "response": self.response,
                "digest": self.digest,
            }
        )


def decision_id_for(principal: str, interrupt_id: str, idempotency_key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{principal}\n{interrupt_id}\n{idempotency_key}"))


def check_idempotency_key(key: str | None) -> str:
    if not key:
        raise DecisionInvalid(["an Idempotency-Key header is required (any unique string)"])
    if len(key) > MAX_KEY_CHARS or not key.isprintable():
        raise DecisionInvalid([f"the Idempotency-Key must be printable, {MAX_KEY_CHARS} max"])
    return key


def read_decision(
    body: Json, *, request: ApprovalRequest, allowed: tuple[str, ...]
) -> DecisionDraft:
    """The draft, or `DecisionInvalid` with every reason it cannot be sent."""
    if not isinstance(body, dict):
        raise DecisionInvalid(["the body must be a JSON object"])
    errors: list[str] = []
    unknown = sorted(set(body) - {"kind", "reason", "args", "response", "digest"})
    if "decided_by" in body:
        errors.append("decided_by is not yours to send: the server decides as the person it "
                      "authenticated")  # fmt: skip
    elif unknown:
        errors.append(f"unknown fields: {', '.join(unknown)[:200]}")
    kind = body.get("kind")
    if kind not in DECISION_KINDS:
        return _fail(errors, f"kind must be one of {', '.join(DECISION_KINDS)}")
    if kind not in allowed:
        errors.append(f"this request does not allow {kind} (it allows {', '.join(allowed)})")
    reason = _text(body.get("reason", ""), "reason", MAX_REASON_CHARS, errors)
    digest = _text(body.get("digest", ""), "digest", 128, errors)
    if kind == "reject" and not reason.strip():
        errors.append("a rejection needs a reason (the agent is told it)")
    args = body.get("args")
    response = body.get("response")
    if kind == "edit":
        errors.extend(edit_errors(args, request))
    elif args is not None:
        errors.append(f"args belong to an edit, not to {kind}")
    if kind == "respond":
        errors.extend(validate(response, request.answer_schema, "the answer"))
    elif response is not None:
        errors.append(f"a response belongs to respond, not to {kind}")
    if errors:
        raise DecisionInvalid(errors)
    return DecisionDraft(
        kind=str(kind),
        reason=reason,
        args=args if isinstance(args, dict) else None,
        response=response if kind == "respond" else None,
        digest=digest,
    )


def edit_errors(args: Json, request: ApprovalRequest) -> list[str]:
    if not isinstance(args, dict):
        return ["an edit needs args: the new arguments, as an object"]
    if args == (request.args or {}):
        return ["the edit changes nothing: approve instead"]
    return validate(args, request.args_schema)


def edit_changes(request: ApprovalRequest, args: JsonObject) -> JsonObject:
    """What an edit changes: `{"changed": {k: {"from", "to"}}, "added": ..., "removed": ...}`."""
    return edit_diff(request.args, args)


def _text(value: Json, name: str, limit: int, errors: list[str]) -> str:
    if not isinstance(value, str):
        errors.append(f"{name} must be text")
        return ""
    if len(value) > limit:
        errors.append(f"{name} must have at most {limit} characters")
    return value


def _fail(errors: list[str], message: str) -> DecisionDraft:
    raise DecisionInvalid([*errors, message])
