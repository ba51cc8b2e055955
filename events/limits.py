"""The documented caps on what a message may hold, and `clip` for echoed text. Pure.

The codec enforces these at the boundary (decode refuses, encode refuses what decode would);
the engine clips the strings it echoes from one message into another (a decision's `kind` or
`decided_by` in a refusal) so an echo can never grow an event past the record limit.
docs/schemas.md explains each number.
"""

from __future__ import annotations

from collections.abc import Mapping

# -- JSON fields (tool arguments and results, run input and output, edits, responses) --------

MAX_JSON_DEPTH = 64
"""Nesting levels of arrays and objects. Far below Python's recursion limit (1,000) and any
JSON parser's; far above any real argument shape (JSON Schemas nest a dozen levels)."""

MAX_JSON_CHARS = 1_048_576
"""Characters of one JSON field's canonical text in a run event or notice (the default
record limit is 1 MiB, so this binds only when `max_message_bytes` is raised)."""

MAX_COMMAND_JSON_CHARS = 262_144
"""Characters of one JSON field in a command (StartRun.input, edited_args, response): what
another system may make a worker hold, per command, until the run takes it."""

# -- string fields of commands -----------------------------------------------------------------

MAX_ID_CHARS = 256
"""Ids: command_id, decision_id, run_id, interrupt_id (uuids are 36; room for prefixes)."""

MAX_PRINCIPAL_CHARS = 256
"""Who: requested_by, decided_by, cancelled_by, lifted_by, resumed_by (an e-mail is at most
254)."""

MAX_NAME_CHARS = 128
"""agent and agent_version."""

MAX_KIND_CHARS = 32
"""A decision's kind ("approve", "edit", "reject", "respond")."""

MAX_DIGEST_CHARS = 128
"""A request digest (sha256 hex is 64)."""

MAX_REASON_CHARS = 4_096
"""A free-text reason given with a decision or a cancellation."""

COMMAND_STRING_CAPS: Mapping[str, int] = {
    "command_id": MAX_ID_CHARS,
    "decision_id": MAX_ID_CHARS,
    "run_id": MAX_ID_CHARS,
    "interrupt_id": MAX_ID_CHARS,
    "requested_by": MAX_PRINCIPAL_CHARS,
    "decided_by": MAX_PRINCIPAL_CHARS,
    "cancelled_by": MAX_PRINCIPAL_CHARS,
    "lifted_by": MAX_PRINCIPAL_CHARS,
    "resumed_by": MAX_PRINCIPAL_CHARS,
    "agent": MAX_NAME_CHARS,
    "agent_version": MAX_NAME_CHARS,
    "kind": MAX_KIND_CHARS,
    "digest": MAX_DIGEST_CHARS,
    "reason": MAX_REASON_CHARS,
    "origin_run_id": MAX_ID_CHARS,
    "at_interrupt": MAX_ID_CHARS,
    "tool_mode": MAX_KIND_CHARS,
}
"""Every string field of every command, by name (a test checks none is missing)."""

# -- echoes ------------------------------------------------------------------------------------

MAX_ECHO_CHARS = 200
"""A value quoted inside another message's text (e.g. `unknown decision kind '...'`)."""

MAX_ERROR_CHARS = 8_192
"""An exception's text recorded in an event (RunFailed.error, ToolCallFailed.error)."""

_MARKER = "…[{} more]"


def clip(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else its start and a marker saying how many
    characters were cut; the result is never longer than `limit`."""
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    while True:
        marker = _MARKER.format(cut)
        keep = limit - len(marker)
        if keep < 0:
            return text[:limit]
        if len(text) - keep == cut:
            return text[:keep] + marker
        cut = len(text) - keep
