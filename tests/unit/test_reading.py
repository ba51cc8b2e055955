"""The one-pass reader refuses exactly what the bounds walk and fastavro refuse, and reads the
same values; the JSON fast path reads what the strict standard parser reads.

The old path is the reference: walk the bytes (`events.bounds`), then fastavro reads them.
For valid encodings of every message type and for hostile mutations of them, the compiled
reader (`events.reading`) must give the same record and end, or refuse when either refuses.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from events import avro
from events.bounds import compile_walk, walk
from events.codec import HEADER_LEN, Codec
from events.errors import DecodeError
from events.json import JsonRefused, canonical_json, loads
from events.reading import compile_reader, read
from tests.unit.test_codec_fuzz import mutated, valid_encodings
from tests.unit.test_varint import _zigzag

CODEC = Codec()
CHECK = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _reference(data: bytes, schema: avro.AvroSchema, check: Any) -> tuple[Any, int] | None:
    try:
        end = walk(check, data, HEADER_LEN)
        record, read_end = avro.read(data, HEADER_LEN, schema, None)
    except DecodeError:
        return None
    assert read_end == end  # the walk and fastavro agree on where a body ends
    return record, end


def _compiled(data: bytes, reader: Any) -> tuple[Any, int] | None:
    try:
        found: tuple[Any, int] = read(reader, data, HEADER_LEN)
    except DecodeError:
        return None
    return found


def _same_either_way(data: bytes) -> None:
    writer = CODEC._by_fingerprint.get(data[2:HEADER_LEN])
    if writer is None or writer.read is None:
        event("no current writer")
        return
    expected = _reference(data, writer.schema, writer.walk)
    event("refused" if expected is None else "read")
    assert _compiled(data, writer.read) == expected


@CHECK
@given(data=valid_encodings())
def test_valid_encodings_read_the_same(data: bytes) -> None:
    writer = CODEC._by_fingerprint[data[2:HEADER_LEN]]
    assert writer.read is not None  # every current schema has a compiled reader
    assert _compiled(data, writer.read) is not None
    _same_either_way(data)


@CHECK
@given(data=mutated())
def test_mutations_are_refused_or_read_the_same(data: bytes) -> None:
    _same_either_way(data)


RICH = avro.parse(
    {
        "type": "record",
        "name": "t.Rich",
        "fields": [
            {"name": "flag", "type": "boolean"},
            {"name": "n", "type": "int"},
            {"name": "ratio", "type": "float"},
            {"name": "raw", "type": "bytes"},
            {"name": "color", "type": {"type": "enum", "name": "t.Color", "symbols": ["R", "G"]}},
            {"name": "id", "type": {"type": "fixed", "name": "t.Id", "size": 4}},
            {"name": "tags", "type": {"type": "map", "values": "t.Color"}},
            {"name": "ids", "type": {"type": "array", "items": ["null", "t.Id"]}},
            {"name": "next", "type": ["null", "t.Rich"], "default": None},
        ],
    }
)


@st.composite
def rich_records(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    return {
        "flag": draw(st.booleans()),
        "n": draw(st.integers(-(2**31), 2**31 - 1)),
        "ratio": draw(st.floats(width=32, allow_nan=False, allow_infinity=False)),
        "raw": draw(st.binary(max_size=8)),
        "color": draw(st.sampled_from(["R", "G"])),
        "id": draw(st.binary(min_size=4, max_size=4)),
        "tags": draw(st.dictionaries(st.text(max_size=4), st.sampled_from(["R", "G"]))),
        "ids": draw(st.lists(st.none() | st.binary(min_size=4, max_size=4), max_size=3)),
        "next": draw(st.none() | rich_records(depth + 1)) if depth < 2 else None,
    }


@CHECK
@given(record=rich_records(), flips=st.lists(st.tuples(st.integers(0), st.integers(0, 7))))
def test_every_avro_type_reads_as_fastavro_reads_it(
    record: dict[str, Any], flips: list[tuple[int, int]]
) -> None:
    """Types our schemas do not use today (enum, fixed, map, float, recursion) too."""
    data = bytearray(b"\0" * HEADER_LEN + avro.write(RICH, record))
    for at, bit in flips:
        data[HEADER_LEN + at % (len(data) - HEADER_LEN)] ^= 1 << bit
    expected = _reference(bytes(data), RICH, compile_walk(RICH.parsed))
    assert _compiled(bytes(data), compile_reader(RICH.parsed)) == expected
    if not flips:
        assert expected is not None


TIMED = [
    avro.parse(
        {
            "type": "record",
            "name": "t.Timed",
            "fields": [
                {"name": "at_us", "type": "long"},
                {"name": "tail", "type": "string"},
            ],
        }
    ),
    avro.parse(  # the time last: its 8-byte read must not run past the end
        {
            "type": "record",
            "name": "t.TimedLast",
            "fields": [{"name": "n", "type": "int"}, {"name": "at_us", "type": "long"}],
        }
    ),
]
# Varint bytes as a hostile writer would choose them: mostly continued, some not.
VARINT_BYTES = st.lists(
    st.sampled_from([0x00, 0x01, 0x02, 0x7F, 0x80, 0x81, 0xFE, 0xFF]) | st.integers(0, 255),
    max_size=12,
).map(bytes)


@settings(CHECK, max_examples=2000)
@given(
    schema=st.sampled_from(TIMED),
    value=st.integers(-(2**63), 2**63 - 1) | st.integers(2**48, 2**55),
    raw=st.none() | VARINT_BYTES,
    rest=st.binary(max_size=10) | st.just(b"\x04ok"),
)
def test_a_time_reads_and_is_refused_as_fastavro_and_the_walk_do(
    schema: avro.AvroSchema, value: int, raw: bytes | None, rest: bytes
) -> None:
    """A `_us` field's 8-byte fast path (one 64-bit read) against the reference, on valid
    times, negative ones, and arbitrary bytes: 9- and 10-byte varints, ones cut short."""
    lead = b"" if schema is TIMED[0] else b"\x02"
    data = b"\0" * HEADER_LEN + lead + (_zigzag(value) if raw is None else raw) + rest
    expected = _reference(data, schema, compile_walk(schema.parsed))
    assert _compiled(data, compile_reader(schema.parsed)) == expected


def _strict(text: str) -> Any:
    """The standard parser's answer, as `loads` gave it before the fast path."""
    try:
        return ("ok", json.loads(text, parse_constant=lambda c: 1 / 0))
    except (ValueError, ZeroDivisionError, RecursionError):
        return "refused"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@CHECK
@given(value=JSON_VALUES, cut=st.integers(0, 40), noise=st.text(max_size=3))
def test_loads_reads_what_the_standard_parser_reads(value: Any, cut: int, noise: str) -> None:
    text = json.dumps(value)  # may spell NaN and Infinity: both parsers must refuse them
    for candidate in (text, text[:cut] + noise + text[cut:]):
        try:
            got: Any = ("ok", loads(candidate))
        except JsonRefused:
            got = "refused"
        expected = _strict(candidate)
        if expected != "refused" and got == "refused":
            event("refused by a strict rule the standard parser lacks")
            continue  # lone surrogates, overflowing numbers: `loads` is stricter by design
        assert got == expected
        if got != "refused":  # the same types too: 1 and 1.0 are equal, not the same JSON
            assert canonical_json(got[1]) == canonical_json(expected[1])
