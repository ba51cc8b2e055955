"""The bounds walk and the read in one pass, compiled once per writer schema. Pure.

When a record's writer schema is today's (no resolution, no upcaster), the walk over its bytes
(`events.bounds`) and fastavro's read of the same bytes are two passes that cost as much as
each other, fastavro's mostly in per-call set-up. `compile_reader` turns a parsed schema into
Python source, once: one function per record type whose fields are read inline, each with the
walk's checks (lengths within the bytes left, varints of at most 10 bytes and 64 bits, 32-bit
ints, booleans 0 or 1, finite doubles, positions and times never negative, union and enum
indexes in range, array blocks that cannot declare more items than bytes left) and fastavro's
values (str for string, bytes for bytes and fixed, the symbol for an enum, a dict for a
record, the branch's value for a union). Text must be valid UTF-8, as fastavro requires.
`tests/unit/test_reading.py` holds it to refusing exactly what the walk and fastavro refuse
and to reading the same values.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping
from typing import Any

from events.bounds import block_count, read_long, string_at
from events.errors import DecodeError

Read = Callable[[bytes, int], tuple[Any, int]]
"""Reads the value starting at a position; returns it and the position after it."""

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def read(reader: Read, data: bytes, start: int) -> tuple[Any, int]:
    """Run a compiled reader over `data` from `start`; any failure is a DecodeError."""
    try:
        return reader(data, start)
    except (IndexError, struct.error) as exc:
        raise DecodeError("message ends inside a record") from exc
    except UnicodeDecodeError as exc:
        raise DecodeError(f"a string is not valid UTF-8: {exc.reason}") from exc
    except RecursionError as exc:  # only a recursive (registry) schema can nest this deep
        raise DecodeError("message nests too deep") from exc


def compile_reader(schema: Any, *, values: bool = False) -> Read:
    """The reader for a parsed schema (fastavro's form: full names, references by name).
    With `values`, a record schema is read as the tuple of its fields' values in the
    schema's order instead of a dict (`events.building` takes them from there); records
    nested in it are dicts either way."""
    source = _Source()
    entry = source.values(schema) if values else source.function(schema, field="")
    namespace = source.namespace()
    # The source holds no text from the schema but field names, spelled as repr() literals.
    exec(compile("\n".join(source.lines), "<events.reading>", "exec"), namespace)
    reader: Read = namespace[entry]
    return reader


def _guarded(field: str) -> bool:
    return field == "seq" or field.endswith("_us")


def _refuse(message: str) -> None:
    raise DecodeError(message)


_DOUBLE = struct.Struct("<d").unpack_from
_ZIGZAG = tuple((byte >> 1) ^ -(byte & 1) for byte in range(0x80))  # one-byte varints
# A one-byte string length (0 to 63), or past any message: the other lengths' slow path.
_LENGTHS = tuple(byte >> 1 if byte < 0x80 and not byte & 1 else 1 << 60 for byte in range(256))
_FLOAT = struct.Struct("<f").unpack_from
_U64 = struct.Struct("<Q").unpack_from
_CONTINUED = 0x8080808080808080  # each byte's continuation bit, as a little-endian u64
_EIGHT_BYTES = 0x0080808080808080  # seven bytes continued, the eighth the last


class _Source:
    """Python source for one schema: a function per record, array, map and union type."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.named: dict[str, str] = {}  # full name → function name
        self.constants: dict[str, Any] = {}
        self._count = 0

    def namespace(self) -> dict[str, Any]:
        return {
            "read_long": read_long,
            "DecodeError": DecodeError,
            "_refuse": _refuse,
            "_string_at": string_at,
            "_block_count": block_count,
            "_DOUBLE": _DOUBLE,
            "_ZIGZAG": _ZIGZAG,
            "_LENGTHS": _LENGTHS,
            "_FLOAT": _FLOAT,
            "_U64": _U64,
            "_CONTINUED": _CONTINUED,
            "_EIGHT_BYTES": _EIGHT_BYTES,
            "_isfinite": math.isfinite,
            "_INT_MIN": _INT_MIN,
            "_INT_MAX": _INT_MAX,
            **self.constants,
        }

    def _name(self, prefix: str) -> str:
        self._count += 1
        return f"_{prefix}{self._count}"

    def _constant(self, value: Any) -> str:
        name = self._name("c")
        self.constants[name] = value
        return name

    def function(self, schema: Any, field: str) -> str:
        """The name of a function `(data, pos) -> (value, pos)` reading `schema`."""
        if isinstance(schema, str) and schema in self.named:
            return self.named[schema]
        body: list[str] = []
        if isinstance(schema, dict) and schema.get("type") in ("record", "error"):
            return self._record(schema)
        name = self._name("v")
        self.value(schema, field, "value", body)
        self.lines.extend([f"def {name}(data, pos):", "    size = len(data)"])
        self.lines.extend(f"    {line}" for line in body)
        self.lines.append("    return value, pos")
        if isinstance(schema, dict) and schema.get("type") in ("enum", "fixed"):
            self.named[schema["name"]] = name
        return name

    def values(self, schema: Any) -> str:
        """The name of a function reading a record as a tuple of its fields' values."""
        if not isinstance(schema, dict) or schema.get("type") not in ("record", "error"):
            raise DecodeError("only a record is read as a tuple of values")
        if schema["name"] not in self.named:  # the dict form, for a reference to itself
            self._record(schema)
        return self._record(schema, as_tuple=True)

    def _record(self, schema: Mapping[str, Any], as_tuple: bool = False) -> str:
        name = self._name("r")
        if not as_tuple:
            self.named[schema["name"]] = name
        body: list[str] = []
        names = []
        for index, f in enumerate(schema["fields"]):
            target = f"f{index}"
            self.value(f["type"], f["name"], target, body)
            names.append(target if as_tuple else f"{f['name']!r}: {target}")
        self.lines.extend([f"def {name}(data, pos):", "    size = len(data)"])
        self.lines.extend(f"    {line}" for line in body)
        if as_tuple:
            self.lines.append(f"    return ({''.join(n + ', ' for n in names)}), pos")
        else:
            self.lines.append(f"    return {{{', '.join(names)}}}, pos")
        return name

    def value(self, schema: Any, field: str, target: str, out: list[str]) -> None:
        """Lines that read `schema` at `pos` into the variable `target` and move `pos`."""
        if isinstance(schema, list):
            self._union(schema, field, target, out)
            return
        if isinstance(schema, str) and schema in self.named:
            out.append(f"{target}, pos = {self.named[schema]}(data, pos)")
            return
        kind = schema if isinstance(schema, str) else schema["type"]
        if isinstance(kind, dict | list):  # {"type": {...}}: a nested type written inline
            self.value(kind, field, target, out)
            return
        primitive = _PRIMITIVES.get(kind)
        if primitive is not None:
            if kind == "long" and _guarded(field):
                primitive = _TIME if field.endswith("_us") else _NONNEGATIVE_LONG
            out.extend(line.format(t=target) for line in primitive)
            return
        if kind in ("record", "error"):
            out.append(f"{target}, pos = {self._record(schema)}(data, pos)")
        elif kind == "enum":
            self._enum(schema, target, out)
        elif kind == "fixed":
            self._fixed(schema, target, out)
        elif kind == "array":
            self._blocks(schema["items"], field, None, target, out)
        elif kind == "map":
            self._blocks(schema["values"], field, "key", target, out)
        else:
            raise DecodeError(f"schema type {kind!r} is not supported")

    def _enum(self, schema: Mapping[str, Any], target: str, out: list[str]) -> None:
        symbols = self._constant(tuple(schema["symbols"]))
        function = self._name("e")
        self.named[schema["name"]] = function
        self.lines.extend(
            [
                f"def {function}(data, pos):",
                "    index, pos = read_long(data, pos)",
                f"    if not 0 <= index < {len(schema['symbols'])}:",
                "        _refuse(f'enum index {index} out of range')",
                f"    return {symbols}[index], pos",
            ]
        )
        out.append(f"{target}, pos = {function}(data, pos)")

    def _fixed(self, schema: Mapping[str, Any], target: str, out: list[str]) -> None:
        size = int(schema["size"])
        function = self._name("x")
        self.named[schema["name"]] = function
        self.lines.extend(
            [
                f"def {function}(data, pos):",
                f"    if {size} > len(data) - pos:",
                "        _refuse('message ends inside a fixed value')",
                f"    return data[pos:pos + {size}], pos + {size}",
            ]
        )
        out.append(f"{target}, pos = {function}(data, pos)")

    def _blocks(self, item: Any, field: str, key: str | None, target: str, out: list[str]) -> None:
        body: list[str] = []
        self.value(item, field, "item", body)
        function = self._name("a")
        lines = [
            f"def {function}(data, pos):",
            f"    items = {'{}' if key else '[]'}",
            "    size = len(data)",
            "    budget = size - pos",
            "    while True:",
            "        count, pos, budget = _block_count(data, pos, budget)",
            "        if count == 0:",
            "            return items, pos",
            "        for _ in range(count):",
        ]
        if key:
            lines.extend(
                [
                    "            start, pos = _string_at(data, pos)",
                    "            key = data[start:pos].decode()",
                ]
            )
        lines.extend(f"            {line}" for line in body)
        lines.append("            items[key] = item" if key else "            items.append(item)")
        self.lines.extend(lines)
        out.append(f"{target}, pos = {function}(data, pos)")

    def _union(self, branches: list[Any], field: str, target: str, out: list[str]) -> None:
        out.extend(["index = data[pos]", "if index < 0x80 and not index & 1:"])
        out.extend(["    index >>= 1", "    pos += 1", "else:"])
        out.append("    index, pos = read_long(data, pos)")
        for number, branch in enumerate(branches):
            out.append(f"{'if' if number == 0 else 'elif'} index == {number}:")
            body: list[str] = []
            self.value(branch, field, target, body)
            out.extend(f"    {line}" for line in body)
        out.extend(["else:", "    _refuse(f'union branch {index} out of range')"])


# Fast paths inline: most varints are one or two bytes; only the rest pay for `read_long`.
_LONG = [
    "{t} = data[pos]",
    "if {t} < 0x80:",
    "    {t} = _ZIGZAG[{t}]",
    "    pos += 1",
    "elif data[pos + 1] < 0x80:",
    "    {t} = ({t} & 0x7F) | (data[pos + 1] << 7)",
    "    {t} = ({t} >> 1) ^ -({t} & 1)",
    "    pos += 2",
    "else:",
    "    {t}, pos = read_long(data, pos)",
]
_NONNEGATIVE_LONG = [
    *_LONG,
    "if {t} < 0:",
    "    _refuse(f'a position or time is negative ({{{t}}})')",
]
# A time in microseconds since the epoch is an 8-byte varint until the year 2540: its
# eight 7-bit groups are taken from one 64-bit read and packed in three steps, where
# `read_long` steps through them one by one (~190 ns a time, ~6 % of decoding a run event).
_TIME = [
    *_LONG[:-2],
    "elif pos + 8 <= size and (q := _U64(data, pos)[0]) & _CONTINUED == _EIGHT_BYTES:",
    "    q &= 0x7F7F7F7F7F7F7F7F",
    "    q = (q & 0x007F007F007F007F) | ((q >> 1) & 0x3F803F803F803F80)",
    "    q = (q & 0x00003FFF00003FFF) | ((q >> 2) & 0x0FFFC0000FFFC000)",
    "    q = (q & 0x000000000FFFFFFF) | ((q >> 4) & 0x00FFFFFFF0000000)",
    "    {t} = (q >> 1) ^ -(q & 1)",
    "    pos += 8",
    *_NONNEGATIVE_LONG[-4:],
]
_INT = [
    *_LONG,
    "if not _INT_MIN <= {t} <= _INT_MAX:",
    "    _refuse(f'int {{{t}}} is out of the 32-bit range')",
]
_LENGTH = [  # a zig-zag length: even when not negative; `size` is len(data)
    "start = pos + 1",
    "pos = start + _LENGTHS[data[pos]]",
    "if pos > size:  # a length of two bytes (64 to 8,191), or one to refuse",
    "    at = start - 1",
    "    {t} = data[at]",
    "    if {t} >= 0x80 and data[start] < 0x80:",
    "        {t} = ({t} & 0x7F) | (data[start] << 7)",
    "        start += 1",
    "        pos = start + ({t} >> 1)",
    "        if {t} & 1 or pos > size:",
    "            start, pos = _string_at(data, at)",
    "    else:",
    "        start, pos = _string_at(data, at)",
]
_PRIMITIVES: dict[str, list[str]] = {
    "null": ["{t} = None"],
    "boolean": [
        "{t} = data[pos]",
        "if {t} > 1:",
        "    _refuse(f'boolean byte {{{t}}} is neither 0 nor 1')",
        "{t} = {t} == 1",
        "pos += 1",
    ],
    "int": _INT,
    "long": _LONG,
    "float": [
        "{t} = _FLOAT(data, pos)[0]",
        "if not _isfinite({t}):",
        "    _refuse('a float is NaN or infinite')",
        "pos += 4",
    ],
    "double": [
        "{t} = _DOUBLE(data, pos)[0]",
        "if not _isfinite({t}):",
        "    _refuse('a double is NaN or infinite')",
        "pos += 8",
    ],
    "bytes": [*_LENGTH, "{t} = data[start:pos]"],
    "string": [*_LENGTH, "{t} = data[start:pos].decode()"],
}
