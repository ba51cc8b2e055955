"""Anchoring (I/O): a signed chain-head anchor per runs partition, every N events or T seconds.

The committer asks `attach(step)` for the anchor to add to a commit: when the events
committed since the last anchor plus this step's reach `every_events`, or the oldest of
them is `every_s` old, it signs an anchor (`engine.trust.anchors`) over their runs' heads
and this step's, to go to the anchors topic in the same atomic commit. `committed` moves
the partition's sequence on once the commit went through; after a failed or fenced commit
`forget` drops what is known of the partition (the outcome may be unknown), and the next
commit reads it back from the log: the partition's last anchor (to go on from its seq and
hash) and the runs records from that anchor's `through` to the end (heads a previous owner
committed and did not anchor yet). So the anchors of a partition form one sequence across
owners, and no committed event is left out of the next anchor.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from engine.log.port import EventLog, Outgoing, Position, Topics
from engine.runtime.step import Step
from engine.trust.anchors import Anchor, anchor_hash, encode_anchor, read_anchor
from engine.trust.jws import BadToken, SigningKey
from events.codec import Codec
from events.envelope import hash_encoded
from events.errors import DecodeError

__all__ = ["Anchorer"]

log = structlog.get_logger(__name__)

_LOOK_BACK = 64
"""Records read back from the anchors partition's end to find its last anchor (Kafka's
transaction markers take offsets too)."""


@dataclass
class _Partition:
    epoch: int | None = None
    seq: int = 0
    prev: str = ""
    through: int = 0
    pending: dict[str, tuple[int, str]] = field(default_factory=dict)
    events: int = 0
    since: float | None = None


class Anchorer:
    def __init__(
        self,
        event_log: EventLog,
        topics: Topics,
        codec: Codec,
        key: SigningKey,
        *,
        every_events: int = 256,
        every_s: float = 2.0,
        clock_s: Callable[[], float] = time.time,
        epoch: Callable[[int], int | None] = lambda partition: 0,
    ) -> None:
        self._epoch = epoch
        self._log = event_log
        self._topics = topics
        self._codec = codec
        self._key = key
        self._every_events = every_events
        self._every_s = every_s
        self._clock_s = clock_s
        self._partitions: dict[int, _Partition] = {}
        self._in_flight: dict[int, bytes] = {}

    def due(self, partition: int) -> bool:
        """Whether the partition has committed events older than `every_s` to anchor."""
        state = self._partitions.get(partition)
        return bool(
            state is not None
            and state.epoch == self._epoch(partition)
            and state.since is not None
            and self._clock_s() - state.since >= self._every_s
        )

    async def idle_due(self, partition: int) -> bool:
        """Whether an idle partition should commit an anchor now: its committed events are
        `every_s` old — including those a previous owner left unanchored, which a new
        owner reads back here even if it has nothing else to commit."""
        await self._ready(partition)
        return self.due(partition)

    async def attach(self, step: Step) -> Outgoing | None:
        """The anchor to commit with `step`, if one is due."""
        state = await self._ready(step.partition)
        events = state.events + step.appended
        if not events:
            return None
        if events < self._every_events and not self.due(step.partition):
            return None
        anchor = Anchor(
            partition=step.partition,
            seq=state.seq,
            prev=state.prev,
            heads={**state.pending, **step.heads},
            through=state.through,
            events=events,
            issued_at=int(self._clock_s()),
        )
        value = encode_anchor(anchor, self._key)
        self._in_flight[step.partition] = value
        return Outgoing(self._topics.anchors, str(step.partition), value, step.partition)

    def committed(self, step: Step, positions: Sequence[Position]) -> None:
        state = self._partitions.get(step.partition)
        if state is None:
            return
        for position in positions:
            if position.topic == self._topics.runs:
                state.through = max(state.through, position.offset + 1)
        value = self._in_flight.pop(step.partition, None)
        if value is not None:
            state.seq += 1
            state.prev = anchor_hash(value)
            state.pending, state.events, state.since = {}, 0, None
            return
        if step.appended:
            state.pending.update(step.heads)
            state.events += step.appended
            state.since = state.since if state.since is not None else self._clock_s()

    def forget(self, partition: int) -> None:
        """After a failed or fenced commit: read the partition back before the next anchor."""
        self._partitions.pop(partition, None)
        self._in_flight.pop(partition, None)

    async def _ready(self, partition: int) -> _Partition:
        state = self._partitions.get(partition)
        epoch = self._epoch(partition)
        if state is None or state.epoch != epoch:  # owned anew: another may have anchored
            state = await self._read_back(partition)
            state.epoch = epoch
            self._partitions[partition] = state
        return state

    async def _read_back(self, partition: int) -> _Partition:
        state = _Partition()
        end = await self._log.end_offset(self._topics.anchors, partition)
        last: tuple[Anchor, bytes] | None = None
        async for record in self._log.read(
            self._topics.anchors, partition, max(0, end - _LOOK_BACK)
        ):
            try:
                last = (read_anchor(record.value, None), record.value)
            except BadToken:
                log.error("anchor_unreadable", partition=partition, offset=record.offset)
        if last is not None:
            anchor, value = last
            state.seq, state.prev, state.through = (
                anchor.seq + 1,
                anchor_hash(value),
                anchor.through,
            )
        async for record in self._log.read(self._topics.runs, partition, state.through):
            try:
                envelope = self._codec.decode_event(record.value)
            except DecodeError:
                continue  # not an event: the restore quarantines what it breaks
            state.pending[envelope.run_id] = (envelope.seq, hash_encoded(record.value))
            state.events += 1
            state.through = max(state.through, record.offset + 1)
        if state.events:
            state.since = self._clock_s()
        log.info(
            "anchors_resumed",
            partition=partition,
            next_seq=state.seq,
            unanchored_events=state.events,
        )
        return state
