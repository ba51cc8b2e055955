"""A run's events without their personal fields, replaced the same way throughout. Pure.

`redact_run(codec, events)` gives the run's events, re-encoded and re-chained, with:
- people (who asked, decided, voted, cancelled, may approve) as `person-1`, `person-2`, ...
  (`role:`, `system:`, `policy:` and `agent:` names are kept: they are not people);
- every string inside a JSON value (run input, tool arguments and results, edits, answers,
  output, a request's context, model requests) and every free text (reasons, reasoning,
  impact, errors) as a token `s-1`, `s-2`, ...

The same original string becomes the same token everywhere in the run, and the digests that
match calls on replay are recomputed from the redacted arguments, so agent code that passes
values along (the order id from the input into a tool call) replays against a redacted file
exactly as against the original. Code that computes with a string (parses it, slices it,
formats it into a new one) sees a token instead, and replay says where that diverges.
Numbers, booleans, object keys, ids, tool and policy names, the titles of questions (the
agent's own words, which replay matches) and times are kept. The chain is the redacted
events' own: its hashes prove nothing about the original run (a history file keeps the
original head beside them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from events.approval import ApprovalRequest
from events.codec import Codec
from events.envelope import GENESIS_HASH, EventEnvelope, hash_encoded
from events.json import Json, digest
from events.run_events import (
    DecisionAccepted,
    DecisionHeld,
    DecisionRejected,
    GateEvaluated,
    InterruptEscalated,
    InterruptRaised,
    ModelCalled,
    QuarantineLifted,
    RunCancelled,
    RunCompleted,
    RunEventPayload,
    RunFailed,
    RunParked,
    RunQuarantined,
    RunStarted,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallScheduled,
    VoteRecorded,
)

__all__ = ["KEPT_PRINCIPALS", "Redactor", "redact_run"]

KEPT_PRINCIPALS = ("role:", "system:", "policy:", "agent:")

_PLAN: dict[type[Any], dict[str, str]] = {
    RunStarted: {"input": "json", "requested_by": "who"},
    ModelCalled: {"request": "json", "response": "json", "request_digest": "digest"},
    ToolCallScheduled: {"args": "json", "args_digest": "digest"},
    ToolCallCompleted: {"result": "json"},
    ToolCallFailed: {"error": "text"},
    InterruptRaised: {"request": "request"},
    DecisionAccepted: {
        "decided_by": "who",
        "reason": "text",
        "edited_args": "json",
        "response": "json",
        "approved_by": "whos",
    },
    DecisionRejected: {"decided_by": "who", "reason": "text"},
    DecisionHeld: {
        "decided_by": "who",
        "reason": "text",
        "edited_args": "json",
        "response": "json",
        "digest": "text",
    },
    VoteRecorded: {"decided_by": "who", "reason": "text"},
    GateEvaluated: {"args_digest": "digest"},
    InterruptEscalated: {"approvers": "whos", "reason": "text"},
    RunCompleted: {"output": "json"},
    RunFailed: {"error": "text"},
    RunCancelled: {"cancelled_by": "who", "reason": "text"},
    RunParked: {"expected": "text", "actual": "text"},
    RunQuarantined: {"reason": "text", "strays": "json"},
    QuarantineLifted: {"lifted_by": "who", "reason": "text"},
}
"""Per event type, the fields that may hold personal data, and how each is replaced."""

_REQUEST: dict[str, str] = {
    "args": "json",
    "digest": "text",
    "reasoning": "text",
    "context": "json",
    "impact": "text",
    "approvers": "whos",
    "excluded": "whos",
    "escalate_to": "whos",
}


class Redactor:
    """One run's replacements: the same string always gets the same token."""

    def __init__(self) -> None:
        self._tokens: dict[str, str] = {}
        self._people: dict[str, str] = {}
        self._digests: dict[str, str] = {}

    def learn_arguments(self, payloads: Sequence[RunEventPayload]) -> None:
        """Remember the redacted digest of every call's arguments the run holds in full (a
        schedule whose arguments are the call's, the first approval request of a call)."""
        for payload in payloads:
            args: Json = None
            if isinstance(payload, ToolCallScheduled):
                args = payload.args
            elif isinstance(payload, InterruptRaised):
                args = payload.request.args
            elif isinstance(payload, ModelCalled):
                args = payload.request
            if args is not None:
                self._digests.setdefault(digest(args), digest(self.json(args)))

    def payload(self, payload: RunEventPayload) -> RunEventPayload:
        plan = _PLAN.get(type(payload))
        if not plan:
            return payload
        changes = {name: self._field(getattr(payload, name), how) for name, how in plan.items()}
        redacted: RunEventPayload = dataclasses.replace(payload, **changes)
        return redacted

    def _field(self, value: Any, how: str) -> Any:
        if value is None:
            return None
        if how == "json":
            return self.json(value)
        if how == "text":
            return self.text(value) if value else value
        if how == "who":
            return self.person(value)
        if how == "whos":
            return tuple(self.person(v) for v in value)
        if how == "digest":
            return self._digests.get(value) or self.text(value)
        assert how == "request"
        assert isinstance(value, ApprovalRequest)
        changes = {name: self._field(getattr(value, name), kind) for name, kind in _REQUEST.items()}
        if value.kind != "question":  # the engine wrote it from the arguments
            changes["title"] = self.text(value.title)
        return dataclasses.replace(value, **changes)

    def json(self, value: Json) -> Json:
        """Strings replaced at every depth (keys kept), without recursion."""
        if isinstance(value, str):
            return self.text(value)
        if not isinstance(value, dict | list):
            return value
        root: list[Json] = [None]
        stack: list[tuple[Json, list[Json] | dict[str, Json], int | str]] = [(value, root, 0)]
        while stack:
            node, parent, key = stack.pop()
            if isinstance(node, dict):
                copy: dict[str, Json] = dict.fromkeys(node)
                stack.extend((v, copy, k) for k, v in reversed(node.items()))
                parent[key] = copy  # type: ignore[index]
            elif isinstance(node, list):
                items: list[Json] = [None] * len(node)
                stack.extend((v, items, i) for i, v in reversed(list(enumerate(node))))
                parent[key] = items  # type: ignore[index]
            else:
                parent[key] = self.text(node) if isinstance(node, str) else node  # type: ignore[index]
        return root[0]

    def text(self, value: str) -> str:
        token = self._tokens.get(value)
        if token is None:
            token = self._tokens[value] = f"s-{len(self._tokens) + 1}"
        return token

    def person(self, value: str) -> str:
        if not value or value.startswith(KEPT_PRINCIPALS):
            return value
        person = self._people.get(value)
        if person is None:
            person = self._people[value] = f"person-{len(self._people) + 1}"
        return person


def redact_run(codec: Codec, events: Sequence[EventEnvelope]) -> list[bytes]:
    """The run's events, redacted and re-chained, encoded as the log would hold them."""
    redactor = Redactor()
    redactor.learn_arguments([event.payload for event in events])
    raws: list[bytes] = []
    previous = GENESIS_HASH
    for event in events:
        redacted = dataclasses.replace(
            event, payload=redactor.payload(event.payload), prev_hash=previous
        )
        raw = codec.encode(redacted)
        raws.append(raw)
        previous = hash_encoded(raw)
    return raws
