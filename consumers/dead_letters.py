"""Dead letters: what a worker could not take, read back, looked at, and put back (I/O).

    letters = DeadLetters(event_log, topics)
    for letter in await letters.entries():     # every entry, with its requeues
        print(letter.partition, letter.offset, letter.reason)
    letter = await letters.get(partition, offset)   # with the original bytes
    requeued = await letters.requeue(partition, offset, by="alice")

A worker dead-letters a command it cannot decode or use to `<prefix>.dlq`, in the same
transaction that moves past it: the original key and bytes, and the headers
`countersign.reason`, `countersign.source.topic`, `.partition` and `.offset`.

Requeueing publishes the original bytes, unchanged, with the original key, back to the
partition of the commands topic they came from, with two headers saying where they come from
and who sent them back (`countersign.requeued.from` = `<dlq topic>:<partition>:<offset>`,
`countersign.requeued.by`). Then it appends a *marker* to the same DLQ partition (header
`countersign.requeued` = the entry's offset; a small JSON value naming who, and where the
command went), so the DLQ itself records what became of each entry; readers of the DLQ skip
markers. An entry that has a marker is refused a second time unless forced: a command sent
back twice is judged twice (commands are idempotent by id only within the worker's window).
Two operators requeueing the same entry at the same moment can both succeed; the markers
then show both. Who requeued is what the operator says (`--by`), as for other CLI commands.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace

import structlog

from engine.errors import ConfigurationError
from engine.log.port import EventLog, Outgoing, Record, Topics
from events.json import JsonObject

__all__ = ["DeadLetter", "DeadLetters", "Requeue", "RequeueRefused"]

log = structlog.get_logger(__name__)

REASON = "countersign.reason"
SOURCE_TOPIC = "countersign.source.topic"
SOURCE_PARTITION = "countersign.source.partition"
SOURCE_OFFSET = "countersign.source.offset"
MARKER = "countersign.requeued"
REQUEUED_FROM = "countersign.requeued.from"
REQUEUED_BY = "countersign.requeued.by"
_MAX_MARKER_BYTES = 4096
_MAX_BY = 200


class RequeueRefused(ConfigurationError):
    """The entry cannot be requeued as asked (already requeued, not a command, unknown)."""


@dataclass(frozen=True, slots=True)
class Requeue:
    """One time an entry was sent back: by whom, when, and where the command landed."""

    by: str
    at_ms: int
    partition: int
    offset: int
    marker_offset: int

    def to_json(self) -> JsonObject:
        return {
            "by": self.by,
            "at_ms": self.at_ms,
            "partition": self.partition,
            "offset": self.offset,
            "marker_offset": self.marker_offset,
        }


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One entry of the DLQ. `value` is empty in listings (see `size`); `get` fills it."""

    partition: int
    offset: int
    key: str | None
    timestamp_ms: int
    reason: str
    source_topic: str
    source_partition: int | None
    source_offset: int | None
    size: int
    value: bytes = b""
    requeues: tuple[Requeue, ...] = field(default=())

    def to_json(self) -> JsonObject:
        out: JsonObject = {
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key,
            "timestamp_ms": self.timestamp_ms,
            "reason": self.reason,
            "source": {
                "topic": self.source_topic,
                "partition": self.source_partition,
                "offset": self.source_offset,
            },
            "size": self.size,
            "requeues": [r.to_json() for r in self.requeues],
        }
        if self.value:
            out["value_hex"] = self.value.hex()
        return out


class DeadLetters:
    def __init__(self, event_log: EventLog, topics: Topics) -> None:
        self._log = event_log
        self._topics = topics

    async def entries(self, partition: int | None = None) -> list[DeadLetter]:
        """Every entry (without its bytes), oldest first per partition."""
        count = await self._log.partition_count(self._topics.dlq)
        partitions = range(count) if partition is None else [self._checked(partition, count)]
        found: list[DeadLetter] = []
        for number in partitions:
            found += await self._read(number, keep_value_of=None)
        return found

    async def get(self, partition: int, offset: int) -> DeadLetter:
        """One entry with its original bytes; `RequeueRefused` if there is none there."""
        self._checked(partition, await self._log.partition_count(self._topics.dlq))
        # Markers always come after their entry: reading from the entry on finds them all.
        for letter in await self._read(partition, keep_value_of=offset, start=offset):
            if letter.offset == offset:
                return letter
        raise RequeueRefused(f"no dead letter at {self._topics.dlq}[{partition}] offset {offset}")

    async def requeue(
        self, partition: int, offset: int, *, by: str, force: bool = False
    ) -> Requeue:
        """Publish the entry's bytes back to the commands topic and record that (see above)."""
        letter = await self.get(partition, offset)
        by = by.strip()[:_MAX_BY]
        if not by:
            raise RequeueRefused("say who requeues (--by)")
        if letter.requeues and not force:
            last = letter.requeues[-1]
            raise RequeueRefused(
                f"{self._topics.dlq}[{partition}]@{offset} was already requeued by {last.by} "
                f"to {self._topics.commands}[{last.partition}]@{last.offset} (--force: again)"
            )
        if letter.source_topic != self._topics.commands:
            raise RequeueRefused(
                f"{self._topics.dlq}[{partition}]@{offset} came from {letter.source_topic!r}, "
                f"not {self._topics.commands}: only commands are requeued"
            )
        commands = await self._log.partition_count(self._topics.commands)
        target = letter.source_partition
        if target is None or not 0 <= target < commands:
            target = None  # let the key choose, as it did when the command was first sent
        origin = f"{self._topics.dlq}:{partition}:{offset}"
        [landed] = await self._log.publish(
            [
                Outgoing(
                    self._topics.commands,
                    letter.key or "",
                    letter.value,
                    partition=target,
                    headers=((REQUEUED_FROM, origin.encode()), (REQUEUED_BY, by.encode())),
                )
            ]
        )
        marker = {"requeued": offset, "by": by, "to": [landed.partition, landed.offset]}
        [noted] = await self._log.publish(
            [
                Outgoing(
                    self._topics.dlq,
                    letter.key or "",
                    json.dumps(marker).encode(),
                    partition=partition,
                    headers=((MARKER, str(offset).encode()),),
                )
            ]
        )
        log.info("dlq_requeued", by=by, dlq_partition=partition, dlq_offset=offset,
                 topic=landed.topic, partition=landed.partition, offset=landed.offset,
                 forced=force and bool(letter.requeues))  # fmt: skip
        return Requeue(
            by=by,
            at_ms=int(time.time() * 1000),
            partition=landed.partition,
            offset=landed.offset,
            marker_offset=noted.offset,
        )

    async def _read(
        self, partition: int, keep_value_of: int | None, start: int = 0
    ) -> list[DeadLetter]:
        letters: dict[int, DeadLetter] = {}
        async for record in self._log.read(self._topics.dlq, partition, start):
            marked = _marker(record)
            if marked is None:
                letters[record.offset] = _letter(record, keep=record.offset == keep_value_of)
                continue
            target, requeue = marked
            if target in letters:
                letter = letters[target]
                letters[target] = replace(letter, requeues=(*letter.requeues, requeue))
        return list(letters.values())

    def _checked(self, partition: int, count: int) -> int:
        if not 0 <= partition < count:
            raise RequeueRefused(f"{self._topics.dlq} has partitions 0..{count - 1}")
        return partition


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", errors="replace")


def _number(value: bytes | None) -> int | None:
    text = _text(value)
    return int(text) if text.isascii() and text.isdigit() and len(text) < 20 else None


def _letter(record: Record, *, keep: bool) -> DeadLetter:
    return DeadLetter(
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        timestamp_ms=record.timestamp_ms,
        reason=_text(record.header(REASON)) or "(no reason given)",
        source_topic=_text(record.header(SOURCE_TOPIC)),
        source_partition=_number(record.header(SOURCE_PARTITION)),
        source_offset=_number(record.header(SOURCE_OFFSET)),
        size=len(record.value),
        value=record.value if keep else b"",
    )


def _marker(record: Record) -> tuple[int, Requeue] | None:
    """(the entry's offset, the requeue) if `record` is a well-formed marker, else None: a
    record that merely claims to be one is listed as an entry, where people will see it."""
    target = _number(record.header(MARKER))
    if target is None or len(record.value) > _MAX_MARKER_BYTES:
        return None
    try:
        body = json.loads(record.value)
        by, (partition, offset) = body["by"], body["to"]
    except (ValueError, KeyError, TypeError):
        return None
    if not (isinstance(by, str) and isinstance(partition, int) and isinstance(offset, int)):
        return None
    if body.get("requeued") != target:
        return None
    return target, Requeue(
        by=by[:_MAX_BY],
        at_ms=record.timestamp_ms,
        partition=partition,
        offset=offset,
        marker_offset=record.offset,
    )
