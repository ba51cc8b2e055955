"""A run's history held as its events' exact encoded bytes, compressed, decoded on demand. Pure.

A worker that lets waiting runs wait (`WorkerSettings.release_waiting`) holds their
histories this way: a refund's five events are ~2.3 kB as the log's bytes and ~1.5 kB
compressed, where the decoded objects (envelopes, ids, hashes, payloads) took ~3 kB. The
bytes are the ones the log holds (or, for a restored run, the ones read from it), so
decoding them with the same codec gives back the same events; nothing here writes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from typing import overload

import cramjam

from events.envelope import EventEnvelope

__all__ = ["Decode", "PackedHistory"]

Decode = Callable[[bytes], EventEnvelope]
"""The codec's strict event decoder (`Codec.decode_event`)."""

_LENGTH = struct.Struct("<I")


class PackedHistory(Sequence[EventEnvelope]):
    """A run's events as one compressed block of their encoded bytes (each length, then
    the bytes); reading an event decompresses the block (a few microseconds) and decodes
    it. `unpack` gives the decoded list back, with the bytes, when the run moves on."""

    __slots__ = ("_block", "_count", "_decode")

    def __init__(self, encoded: Sequence[bytes], decode: Decode) -> None:
        lengths = b"".join(_LENGTH.pack(len(event)) for event in encoded)
        self._block = bytes(cramjam.lz4.compress_block(lengths + b"".join(encoded)))
        self._count = len(encoded)
        self._decode = decode

    def encoded(self) -> list[bytes]:
        """Each event's exact bytes, in order."""
        raw = bytes(cramjam.lz4.decompress_block(self._block))
        events = []
        start = _LENGTH.size * self._count
        for index in range(self._count):
            (length,) = _LENGTH.unpack_from(raw, _LENGTH.size * index)
            events.append(raw[start : start + length])
            start += length
        return events

    def unpack(self) -> tuple[list[EventEnvelope], list[bytes]]:
        """The decoded events and their bytes."""
        encoded = self.encoded()
        return [self._decode(event) for event in encoded], encoded

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> EventEnvelope: ...

    @overload
    def __getitem__(self, index: slice) -> list[EventEnvelope]: ...

    def __getitem__(self, index: int | slice) -> EventEnvelope | list[EventEnvelope]:
        encoded = self.encoded()
        if isinstance(index, slice):
            return [self._decode(event) for event in encoded[index]]
        return self._decode(encoded[index])

    def __iter__(self) -> Iterator[EventEnvelope]:
        return (self._decode(event) for event in self.encoded())

    def __reversed__(self) -> Iterator[EventEnvelope]:
        return (self._decode(event) for event in reversed(self.encoded()))
