"""Whether a projection's stored positions belong to the log a projector reads. Pure.

Positions are offsets, and offsets mean nothing outside the log that gave them: applied to
another log they skip or misplace events without a sound. So stores bind the positions of a
(projection, topic) to the log's identity (`EventLog.log_id`) when they are first used, and a
projector refuses to start on positions bound to another log, or lying past the end of its
own. Positions stored before identities existed are adopted, unless they lie past the end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable


@runtime_checkable
class LogBound(Protocol):
    """A store that knows which log its positions were read from: `ProjectionStore`,
    `LiveStore` and `MemoryStore`."""

    async def log_binding(self, projection: str, topic: str) -> str | None:
        """The log the positions were read from; None before they are bound."""
        ...

    async def bind_log(self, projection: str, topic: str, log_id: str) -> str:
        """Bind them to `log_id` unless bound already; the log they are bound to now."""
        ...


def past_end(positions: Mapping[int, int], ends: Mapping[int, int]) -> dict[int, tuple[int, int]]:
    """Partitions whose stored position lies past the log's end: {partition: (position,
    end)}. A partition the log does not have ends at 0."""
    return {
        partition: (position, ends.get(partition, 0))
        for partition, position in sorted(positions.items())
        if position > ends.get(partition, 0)
    }


def refusal(
    *,
    projection: str,
    schema: str,
    topic: str,
    log_id: str,
    bound: str | None,
    positions: Mapping[int, int],
    ends: Mapping[int, int],
) -> str | None:
    """Why projecting on from `positions` into this log would be wrong, said so that the
    reader knows what to do; None when it is right."""
    if bound is not None and bound != log_id:
        why = f"its positions were read from another log ({clipped(bound)}), not from this one"
    elif beyond := past_end(positions, ends):
        where = ", ".join(f"partition {p} at {pos} of {end}" for p, (pos, end) in beyond.items())
        why = (
            f"its positions lie past the end of this log ({where}): they were read from"
            " another log, or this log lost records"
        )
    else:
        return None
    return (
        f"projection {projection} in schema {schema} does not describe topic {topic} of this"
        f" log ({clipped(log_id)}): {why}. Projecting on would skip or misplace events. Either"
        f" build it again from this log: `countersign projections rebuild {projection}`, or"
        " keep this log's projections apart: COUNTERSIGN_PROJECTION_SCHEMA=<another schema>"
    )


def clipped(text: str, limit: int = 160) -> str:
    """A stored identity as shown in a message (it was read back from a database)."""
    shown = text.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= limit else f"{shown[: limit - 3]}..."
