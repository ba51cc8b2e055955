"""The bounds walk: one pass over an Avro body, following its writer schema, before fastavro
reads it. Pure.

fastavro trusts the bytes: it allocates as many items as an array block declares, lets a
varint run past 10 bytes (the value wraps), reads any non-zero byte as `true` and any NaN as a
double. The walk refuses all of that without allocating, and checks the rules every message
shares: a field named `seq` or ending in `_us` (positions, times) is never negative; `int` is
32-bit and `long` 64-bit; doubles are finite. `compile_walk` turns a schema into nested
closures once, so a walk costs a few microseconds per message.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping
from typing import Any

from events.errors import DecodeError

Walk = Callable[[bytes, int], int]
"""Reads the value starting at a position; returns the position after it."""

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")


def read_long(data: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint of at most 10 bytes and 64 bits; (value, position after it)."""
    byte = data[pos]
    if byte < 0x80:
        return (byte >> 1) ^ -(byte & 1), pos + 1
    acc = byte & 0x7F
    pos += 1
    for shift in _SHIFTS:  # no counter to test and step: a time in microseconds is 8 bytes
        byte = data[pos]
        pos += 1
        acc |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (acc >> 1) ^ -(acc & 1), pos
    byte = data[pos]  # the tenth byte holds the 64th bit and nothing more
    if byte > 1:
        raise DecodeError("varint longer than 10 bytes or over 64 bits")
    acc |= byte << 63
    return (acc >> 1) ^ -(acc & 1), pos + 1


_SHIFTS = tuple(range(7, 63, 7))


def walk(check: Walk, data: bytes, start: int) -> int:
    """Run a compiled walk over `data` from `start`; any failure is a DecodeError."""
    try:
        return check(data, start)
    except (IndexError, struct.error) as exc:
        raise DecodeError("message ends inside a record") from exc
    except RecursionError as exc:  # only a recursive (registry) schema can nest this deep
        raise DecodeError("message nests too deep") from exc


def compile_walk(schema: Any) -> Walk:
    """The walk for a parsed schema (fastavro's form: full names, references by name)."""
    return _Compiler().compile(schema, field="")


def _guarded(field: str) -> bool:
    return field == "seq" or field.endswith("_us")


class _Compiler:
    def __init__(self) -> None:
        self.named: dict[str, Walk] = {}

    def compile(self, schema: Any, field: str) -> Walk:
        if isinstance(schema, list):
            return self._union([self.compile(branch, field) for branch in schema])
        if isinstance(schema, str) and schema in self.named:
            return self._reference(schema)
        kind = schema if isinstance(schema, str) else schema["type"]
        if kind in _PRIMITIVES:
            return _nonnegative_long if kind == "long" and _guarded(field) else _PRIMITIVES[kind]
        if isinstance(kind, dict | list):  # {"type": {...}}: a nested type written inline
            return self.compile(kind, field)
        compile_kind = _COMPOUND.get(kind)
        if compile_kind is None:
            raise DecodeError(f"schema type {kind!r} is not supported")
        return compile_kind(self, schema, field)

    def _reference(self, name: str) -> Walk:
        named = self.named
        return lambda data, pos: named[name](data, pos)

    def _record(self, schema: Mapping[str, Any], field: str) -> Walk:
        self.named[schema["name"]] = _unresolved
        walks = tuple(self.compile(f["type"], f["name"]) for f in schema["fields"])

        def record(data: bytes, pos: int) -> int:
            for step in walks:
                pos = step(data, pos)
            return pos

        self.named[schema["name"]] = record
        return record

    def _enum(self, schema: Mapping[str, Any], field: str) -> Walk:
        count = len(schema["symbols"])

        def enum(data: bytes, pos: int) -> int:
            index, pos = read_long(data, pos)
            if not 0 <= index < count:
                raise DecodeError(f"enum index {index} out of range")
            return pos

        self.named[schema["name"]] = enum
        return enum

    def _fixed(self, schema: Mapping[str, Any], field: str) -> Walk:
        size = int(schema["size"])

        def fixed(data: bytes, pos: int) -> int:
            if size > len(data) - pos:
                raise DecodeError("message ends inside a fixed value")
            return pos + size

        self.named[schema["name"]] = fixed
        return fixed

    def _array(self, schema: Mapping[str, Any], field: str) -> Walk:
        return _blocks(self.compile(schema["items"], field))

    def _map(self, schema: Mapping[str, Any], field: str) -> Walk:
        value = self.compile(schema["values"], field)

        def entry(data: bytes, pos: int) -> int:
            return value(data, _string(data, pos))

        return _blocks(entry)

    @staticmethod
    def _union(branches: list[Walk]) -> Walk:
        count = len(branches)

        def union(data: bytes, pos: int) -> int:
            byte = data[pos]
            if byte < 0x80 and not byte & 1 and byte >> 1 < count:
                return branches[byte >> 1](data, pos + 1)
            index, pos = read_long(data, pos)
            if not 0 <= index < count:
                raise DecodeError(f"union branch {index} out of range")
            return branches[index](data, pos)

        return union


def _unresolved(data: bytes, pos: int) -> int:  # pragma: no cover - replaced once compiled
    raise DecodeError("schema refers to a type still being defined")


def _blocks(item: Walk) -> Walk:
    """Avro arrays and maps: blocks of `count` items, 0 ends (see `block_count`)."""

    def blocks(data: bytes, pos: int) -> int:
        budget = len(data) - pos
        while True:
            count, pos, budget = block_count(data, pos, budget)
            if count == 0:
                return pos
            for _ in range(count):
                pos = item(data, pos)

    return blocks


def block_count(data: bytes, pos: int, budget: int) -> tuple[int, int, int]:
    """An array or map block's item count, the position after its header, and the budget of
    items left. A negative count is followed by the block's size in bytes. No item takes less
    than a byte in any schema worth reading, so more items than bytes left is a lie told to
    make the reader allocate."""
    count, pos = read_long(data, pos)
    if count < 0:
        count = -count
        _size, pos = read_long(data, pos)
    budget -= count
    if budget < 0 or count > len(data) - pos:
        raise DecodeError(
            f"array block declares {count} items but only {len(data) - pos} bytes are left"
        )
    return count, pos, budget


def string_at(data: bytes, pos: int) -> tuple[int, int]:
    """Where the string or bytes value whose length varint starts at `pos` starts and ends."""
    length, pos = read_long(data, pos)
    if length < 0 or length > len(data) - pos:
        raise DecodeError(f"declared length {length} exceeds the {len(data) - pos} bytes left")
    return pos, pos + length


def _null(data: bytes, pos: int) -> int:
    return pos


def _boolean(data: bytes, pos: int) -> int:
    if data[pos] > 1:
        raise DecodeError(f"boolean byte {data[pos]} is neither 0 nor 1")
    return pos + 1


def _int(data: bytes, pos: int) -> int:
    value, pos = read_long(data, pos)
    if not _INT_MIN <= value <= _INT_MAX:
        raise DecodeError(f"int {value} is out of the 32-bit range")
    return pos


# Fast paths: most varints are one byte; only the rest pay for `read_long`.


def _long(data: bytes, pos: int) -> int:
    if data[pos] < 0x80:
        return pos + 1
    return read_long(data, pos)[1]


def _nonnegative_long(data: bytes, pos: int) -> int:
    if data[pos] < 0x80 and not data[pos] & 1:
        return pos + 1
    value, pos = read_long(data, pos)
    if value < 0:
        raise DecodeError(f"a position or time is negative ({value})")
    return pos


def _double(data: bytes, pos: int) -> int:
    if not math.isfinite(_DOUBLE.unpack_from(data, pos)[0]):
        raise DecodeError("a double is NaN or infinite")
    return pos + 8


def _float(data: bytes, pos: int) -> int:
    if not math.isfinite(_FLOAT.unpack_from(data, pos)[0]):
        raise DecodeError("a float is NaN or infinite")
    return pos + 4


def _string(data: bytes, pos: int) -> int:
    byte = data[pos]
    if byte < 0x80:  # lengths up to 63, then up to 8,191 (a digest is 64): no tuple built
        zigzag, start = byte, pos + 1
    elif data[pos + 1] < 0x80:
        zigzag, start = (byte & 0x7F) | (data[pos + 1] << 7), pos + 2
    else:
        zigzag, start = 1, pos  # the general path below
    if not zigzag & 1 and start + (zigzag >> 1) <= len(data):
        return start + (zigzag >> 1)
    return string_at(data, pos)[1]


_PRIMITIVES: dict[str, Walk] = {
    "null": _null,
    "boolean": _boolean,
    "int": _int,
    "long": _long,
    "float": _float,
    "double": _double,
    "bytes": _string,
    "string": _string,
}
_COMPOUND: dict[str, Callable[[_Compiler, Any, str], Walk]] = {
    "record": _Compiler._record,
    "error": _Compiler._record,
    "enum": _Compiler._enum,
    "fixed": _Compiler._fixed,
    "array": _Compiler._array,
    "map": _Compiler._map,
}
