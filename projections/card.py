"""One approval request as a reviewer decides it: the whole card. Pure.

The inbox row says where a request stands; the card adds everything the engine asked with it
(the request as raised: full arguments, context, answer schema, digest, argument schema) and,
for a request that follows an edit or an escalation of the same call, what changed since the
previous proposal, so that a changed argument is never hidden behind a cut title.

    card = await Queries(store).card(interrupt_id)      # None: no such request projected
    card.changes                                        # {"changed": {...}, "added": ..., ...}
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from events.approval import ApprovalRequest
from events.json import Json, JsonObject
from projections.describe import payload_json
from projections.fold import edit_diff
from projections.inbox import at_deadline, deciders
from projections.rows import InterruptRow

NO_DEFAULT: JsonObject = {}


@dataclass(frozen=True, kw_only=True, slots=True)
class ReviewCard:
    """`row` is the inbox row (status, votes, outcome); `request` the request as raised;
    `previous` the arguments of the same call's previous request (None for the first)."""

    row: InterruptRow
    request: ApprovalRequest
    previous: JsonObject | None
    now: datetime

    @property
    def changes(self) -> JsonObject | None:
        """What the arguments changed since the previous proposal (None when there is none,
        or nothing changed)."""
        if self.previous is None or self.request.args is None:
            return None
        diff = edit_diff(self.previous, self.request.args)
        return diff if any(diff.values()) else None

    @property
    def deciders(self) -> tuple[str, ...]:
        return deciders(self.row)

    @property
    def default_answer(self) -> tuple[bool, Json]:
        """(whether the question has a default answer, that answer)."""
        schema = self.request.answer_schema
        if self.request.kind == "question" and isinstance(schema, dict) and "default" in schema:
            return True, schema["default"]
        return False, None

    @property
    def at_deadline(self) -> str:
        has, default = self.default_answer
        return at_deadline(self.row, default if has else None)

    @property
    def seconds_left(self) -> float | None:
        if self.row.deadline is None or self.row.status != "open":
            return None
        return (self.row.deadline - self.now).total_seconds()

    @property
    def answers_plain_text(self) -> bool:
        """Whether a `respond` here is one string (the CLI then takes plain text)."""
        return takes_plain_text(self.request.answer_schema)

    def to_json(self) -> JsonObject:
        row = self.row
        return {
            "interrupt_id": row.interrupt_id,
            "run_id": row.run_id,
            "agent": row.agent,
            "requested_by": row.requested_by,
            "status": row.status,
            "request": payload_json(self.request),
            "changes_since_previous": self.changes,
            "previous_args": self.previous,
            "may_decide": list(self.deciders),
            "votes": row.votes,
            "deadline": None if row.deadline is None else row.deadline.isoformat(),
            "seconds_left": self.seconds_left,
            "at_deadline": self.at_deadline,
            "outcome": None
            if row.status == "open"
            else {
                "status": row.status,
                "decided_by": row.decided_by,
                "kind": row.decision_kind,
                "reason": row.reason,
                "edited_args": row.edited_args,
            },
        }


def takes_plain_text(schema: Json) -> bool:
    """An answer schema whose only type is string (with or without more keywords)."""
    return isinstance(schema, dict) and schema.get("type") in ("string", ["string"])


def previous_args(row: InterruptRow, siblings: list[InterruptRow]) -> JsonObject | None:
    """The arguments of the request raised for the same call just before `row` (an earlier
    level, or the proposal an edit replaced), from the run's interrupts."""
    earlier = [
        i
        for i in siblings
        if i.call == row.call and i.kind == row.kind and i.seq < row.seq and i.args is not None
    ]
    if not earlier:
        return None
    return max(earlier, key=lambda i: i.seq).args
