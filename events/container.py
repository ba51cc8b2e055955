"""The framing of an Avro object container file, written and read without trusting it. Pure.

A container file (Avro spec, "Object Container Files") is `Obj\\x01`, a metadata map of
string → bytes (`avro.schema` holds the schema of every record, `avro.codec` the block
compression), a 16-byte sync marker, then blocks: a record count, a byte size, that many
bytes of records, the sync marker again. This module writes and reads that framing only; the
records inside a block are the caller's to write and to walk. Only the `null` codec is
written or read: a deflated block could inflate without bound.

Reading bounds everything a hostile file could inflate: metadata entries and their sizes,
block counts and sizes (within the bytes given), a sync marker that must repeat exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from events.bounds import read_long
from events.errors import DecodeError

__all__ = ["MAGIC", "Container", "ContainerError", "read_container", "write_container", "zigzag"]

MAGIC = b"Obj\x01"
SYNC_BYTES = 16
MAX_METADATA_ENTRIES = 64
MAX_KEY_BYTES = 256


class ContainerError(DecodeError):
    """The bytes are not a container file this reader accepts; the message says why."""


@dataclass(frozen=True, slots=True)
class Container:
    metadata: Mapping[str, bytes]
    sync: bytes
    blocks: tuple[tuple[int, bytes], ...]
    """(record count, the records' bytes) per block, in file order."""


def zigzag(value: int) -> bytes:
    """Avro's variable-length zig-zag encoding of a long."""
    encoded = (value << 1) ^ (value >> 63)
    out = bytearray()
    while encoded >= 0x80:
        out.append((encoded & 0x7F) | 0x80)
        encoded >>= 7
    out.append(encoded)
    return bytes(out)


def write_container(
    metadata: Mapping[str, bytes], blocks: Iterable[tuple[int, bytes]], sync: bytes
) -> bytes:
    """A container file of `blocks` ((record count, records' bytes) each), `metadata` (which
    must hold `avro.schema`) and the `null` codec."""
    if len(sync) != SYNC_BYTES:
        raise ValueError(f"a sync marker is {SYNC_BYTES} bytes")
    entries = {**metadata, "avro.codec": b"null"}
    out = bytearray(MAGIC)
    out += zigzag(len(entries))
    for key, value in entries.items():
        name = key.encode()
        out += zigzag(len(name)) + name + zigzag(len(value)) + value
    out += zigzag(0) + sync
    for count, data in blocks:
        out += zigzag(count) + zigzag(len(data)) + data + sync
    return bytes(out)


def read_container(data: bytes, *, max_records: int) -> Container:
    """The metadata and blocks of a container file; `ContainerError` for anything else,
    including more than `max_records` records in all."""
    try:
        return _read(data, max_records)
    except IndexError as exc:
        raise ContainerError("the file ends inside its framing") from exc


def _read(data: bytes, max_records: int) -> Container:
    if data[: len(MAGIC)] != MAGIC:
        raise ContainerError("not an Avro object container file (no Obj\\x01 header)")
    metadata, pos = _metadata(data, len(MAGIC))
    sync = data[pos : pos + SYNC_BYTES]
    if len(sync) != SYNC_BYTES:
        raise ContainerError("the file ends before its sync marker")
    pos += SYNC_BYTES
    codec = metadata.get("avro.codec", b"null")
    if codec != b"null":
        raise ContainerError(f"blocks compressed with {codec[:32]!r}: only 'null' is read")
    blocks: list[tuple[int, bytes]] = []
    records = 0
    while pos < len(data):
        count, pos = read_long(data, pos)
        size, pos = read_long(data, pos)
        if count < 1 or size < count or pos + size + SYNC_BYTES > len(data):
            raise ContainerError(f"a block of {count} records in {size} bytes does not fit")
        records += count
        if records > max_records:
            raise ContainerError(f"more than {max_records} records")
        blocks.append((count, data[pos : pos + size]))
        pos += size
        if data[pos : pos + SYNC_BYTES] != sync:
            raise ContainerError("a block is not followed by the file's sync marker")
        pos += SYNC_BYTES
    return Container(metadata=metadata, sync=sync, blocks=tuple(blocks))


def _metadata(data: bytes, pos: int) -> tuple[dict[str, bytes], int]:
    entries: dict[str, bytes] = {}
    while True:
        count, pos = read_long(data, pos)
        if count == 0:
            return entries, pos
        if count < 0:  # a negative count is followed by the block's byte size
            count = -count
            _, pos = read_long(data, pos)
        if len(entries) + count > MAX_METADATA_ENTRIES:
            raise ContainerError(f"more than {MAX_METADATA_ENTRIES} metadata entries")
        for _ in range(count):
            key, pos = _bytes(data, pos, MAX_KEY_BYTES)
            value, pos = _bytes(data, pos, len(data))
            try:
                entries[key.decode()] = value
            except UnicodeDecodeError as exc:
                raise ContainerError("a metadata key is not UTF-8") from exc


def _bytes(data: bytes, pos: int, limit: int) -> tuple[bytes, int]:
    size, pos = read_long(data, pos)
    if size < 0 or size > limit or pos + size > len(data):
        raise ContainerError(f"a metadata item of {size} bytes does not fit")
    return data[pos : pos + size], pos + size
