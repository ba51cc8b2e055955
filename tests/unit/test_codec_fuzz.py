"""Structured fuzzing of the codec boundary: mutations of valid encodings of every message type.

The property: `Codec.decode` either returns a message or raises a `DecodeError` (nothing else
escapes), and whatever it returns can be encoded again (a value that decodes but cannot be
written back is how a hostile command used to kill the worker that echoed it).

Short budget in `make test`; `make fuzz` runs the long one (COUNTERSIGN_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from events.catalog import MESSAGE_TYPES
from events.codec import HEADER_LEN, Codec
from events.envelope import EventEnvelope
from events.errors import DecodeError
from events.fields import is_json_field
from events.json import canonical_json
from events.run_events import RUN_EVENT_TYPES
from events.schema_header import SCHEMA_HEADER
from tests.strategies import envelope_strategy, message_strategy, zigzag

CODEC = Codec()
REGISTRY_CODEC = Codec(registry_format=True)
REGISTRY_IDS = {}
for _id, _version in enumerate(CODEC.catalog.versions, start=1):
    REGISTRY_CODEC.learn(_id, json.dumps(_version.raw))  # as a registry would serve ours
    REGISTRY_IDS[_version.fingerprint] = _id
EXAMPLES = int(os.environ.get("COUNTERSIGN_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CLASSES = sorted(MESSAGE_TYPES.values(), key=lambda cls: cls.__name__)


HOSTILE_JSON = st.sampled_from(
    [
        b"[" * 5_000 + b"]" * 5_000,
        b'{"a":' * 3_000 + b"1" + b"}" * 3_000,
        b"[" * 65 + b"]" * 65,
        b"1e400",
        b"-1e999",
        b"[" + b"9" * 400 + b".5]",
        b"1" * 5_000,
        b'"\\ud800"',
        b'{"\\udc00x":1}',
        b'"\\ud83d\\ude00"',
        b"NaN",
        b"[Infinity]",
        b'{"a":1,"a":2}',
        b"",
        b"\xff\xfe",
        b'"' + b"x" * 300_000 + b'"',
    ]
)


@st.composite
def valid_encodings(draw: st.DrawFn) -> bytes:
    cls = draw(st.sampled_from(CLASSES))
    if cls in RUN_EVENT_TYPES:
        message: Any = draw(envelope_strategy(cls))
    else:
        message = draw(message_strategy(cls))
    return CODEC.encode(message)


def _flip(draw: st.DrawFn, data: bytearray) -> None:
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] ^= 1 << draw(st.integers(0, 7))


def _truncate(draw: st.DrawFn, data: bytearray) -> None:
    del data[draw(st.integers(0, len(data) - 1)) :]


def _at(draw: st.DrawFn, data: bytearray, *, end: int = 0) -> int:
    """A position in the body (in the header when a truncation left nothing else)."""
    last = len(data) - 1 + end
    return draw(st.integers(min(HEADER_LEN, last), last))


def _insert(draw: st.DrawFn, data: bytearray) -> None:
    at = _at(draw, data, end=1)
    data[at:at] = draw(st.binary(min_size=1, max_size=16))


def _stretch_varint(draw: st.DrawFn, data: bytearray) -> None:
    """Re-spell the byte at a position as a longer varint: continuation bytes, then a last
    byte that may carry bits past the 64th (a 10-byte varint's last byte must be 0 or 1)."""
    at = _at(draw, data)
    extra = draw(st.integers(1, 12))
    middle = bytes(0x80 | draw(st.integers(0, 0x7F)) for _ in range(extra - 1))
    last = draw(st.sampled_from([0x00, 0x01, 0x02, 0x40, 0x7F]))
    data[at : at + 1] = bytes([data[at] | 0x80]) + middle + bytes([last])


def _huge_length(draw: st.DrawFn, data: bytearray) -> None:
    at = _at(draw, data, end=1)
    n = draw(st.sampled_from([2**31, 2**40, 2**62, 2**63 - 1, -(2**40), -1, len(data) * 4]))
    data[at:at] = zigzag(n)


def _json_swap(draw: st.DrawFn, data: bytearray) -> None:
    """Replace a JSON field's text (and its length prefix) with hostile JSON text."""
    texts = _json_texts(data)
    if not texts:
        return
    old = draw(st.sampled_from(texts))
    spelled = zigzag(len(old)) + old
    at = data.find(spelled, HEADER_LEN)
    if at >= 0:
        new = draw(HOSTILE_JSON)
        data[at : at + len(spelled)] = zigzag(len(new)) + new


def _json_texts(data: bytearray) -> list[bytes]:
    """The canonical JSON texts of the message's JSON fields (while it still decodes)."""
    try:
        message = CODEC.decode(bytes(data))
    except DecodeError:
        return []
    values = [message, message.payload] if isinstance(message, EventEnvelope) else [message]
    request = getattr(values[-1], "request", None)
    if dataclasses.is_dataclass(request):
        values.append(request)
    return [
        canonical_json(getattr(value, field.name)).encode()
        for value in values
        for field in dataclasses.fields(value)
        if is_json_field(field)
    ]


MUTATIONS = [_flip, _truncate, _insert, _stretch_varint, _huge_length, _json_swap]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(valid_encodings()))
    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3)):
        if data:
            mutation(draw, data)
    return bytes(data)


def _decodes_or_refuses(codec: Codec, data: bytes, headers: Any = ()) -> None:
    try:
        message = codec.decode(data, headers)
    except DecodeError as exc:
        event(f"refused: {type(exc).__name__}")
        return
    event("decoded")
    assert isinstance(message, (EventEnvelope, *MESSAGE_TYPES.values()))
    _check_numbers(message)
    assert CODEC.decode(CODEC.encode(message)) == message  # what decodes can be written back


def _check_numbers(value: Any) -> None:
    """Every position and time a decoded message holds is a non-negative 64-bit integer. A
    JSON field holds what its sender wrote, an integer past 64 bits included (bounded by the
    field's size, and written back exactly: the round trip above)."""
    for field in dataclasses.fields(value):
        if is_json_field(field):
            continue
        item = getattr(value, field.name)
        if dataclasses.is_dataclass(item):
            _check_numbers(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            assert -(2**63) <= item < 2**63, field.name
            if field.name == "seq" or field.name.endswith("_us"):
                assert item >= 0, field.name


@FUZZ
@given(data=mutated())
def test_mutated_encodings_decode_or_raise_decode_error(data: bytes) -> None:
    _decodes_or_refuses(CODEC, data)


@FUZZ
@given(data=mutated(), pick=st.integers(0, 3), other_id=st.integers(0, 2**32 - 1))
@example(  # an approval request whose args_schema (a JSON field) is the integer 2**63
    data=b"\xc2\x01t\xc1\x9a`9\xc0\xf7*" + bytes(11) + b"\x08tool\x00\x02\x00\x08null\x00\x00"
    b"\x08null\x00\x06low\x02"
    + bytes(9)
    + b"\x0creject\x00\x00\x08null"
    + bytes(8)
    + b"\x02"
    + bytes(8)
    + b"&9223372036854775808\x00",
    pick=1,
    other_id=0,
)
def test_registry_framed_mutations_decode_or_raise_decode_error(
    data: bytes, pick: int, other_id: int
) -> None:
    """Framed with the id the registry gave the schema that wrote it (3 in 4), or any id."""
    schema_id = REGISTRY_IDS.get(data[2:HEADER_LEN], 0) if pick else other_id
    framed = b"\x00" + schema_id.to_bytes(4, "big") + data[HEADER_LEN:]
    _decodes_or_refuses(REGISTRY_CODEC, framed)


@FUZZ
@given(data=mutated(), claim=st.binary(max_size=120))
def test_forged_schema_headers_never_escape(data: bytes, claim: bytes) -> None:
    _decodes_or_refuses(CODEC, data, [(SCHEMA_HEADER, claim)])
