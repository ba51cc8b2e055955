"""How far a reader is behind on a topic's partitions, in records and in time (over the
`EventLog` port, I/O).

On Kafka, offsets are not a count of records: every transaction's commit marker takes one,
so a reader that has read everything can be an offset or two short of the end. When a
position is behind the end, the first record from it is read: none means only markers are
left (no lag), else its timestamp says how old the oldest unread record is. The answer is
kept while neither the position nor the end moves, so an idle reader costs one end-offset
request per look.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.log.port import EventLog

__all__ = ["Lag", "LagProbe"]


@dataclass(frozen=True, slots=True)
class Lag:
    records: int
    """Offsets between the position and the end (transaction markers included)."""
    oldest_ms: int | None
    """The timestamp of the first record not read yet; None when there is none."""

    def seconds(self, now_ms: float) -> float:
        return 0.0 if self.oldest_ms is None else max(0.0, (now_ms - self.oldest_ms) / 1000)


NONE = Lag(0, None)


class LagProbe:
    def __init__(self, event_log: EventLog, topic: str) -> None:
        self._log = event_log
        self._topic = topic
        self._known: dict[int, tuple[int, int, Lag]] = {}

    async def lag(self, partition: int, position: int) -> Lag:
        end = await self._log.end_offset(self._topic, partition)
        if position >= end:
            return NONE
        known = self._known.get(partition)
        if known is not None and known[:2] == (position, end):
            return known[2]
        reader = self._log.read(self._topic, partition, position)
        try:
            first = await anext(reader, None)
        finally:
            close = getattr(reader, "aclose", None)
            if close is not None:
                await close()
        lag = NONE if first is None else Lag(end - position, first.timestamp_ms)
        self._known[partition] = (position, end, lag)
        return lag

    def forget(self, keep: frozenset[int]) -> None:
        """Drop what is known of partitions no longer read here."""
        for partition in self._known.keys() - keep:
            del self._known[partition]
