"""`read_long` reads and refuses exactly what the plain loop over a varint's bytes did: the
same value and end, IndexError past the end of the bytes, a refusal past 10 bytes or 64 bits."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from events.bounds import read_long
from events.errors import DecodeError


def _loop(data: bytes, pos: int) -> tuple[int, int]:
    """The loop `read_long` was, kept as the reference."""
    byte = data[pos]
    if byte < 0x80:
        return (byte >> 1) ^ -(byte & 1), pos + 1
    acc, shift = byte & 0x7F, 7
    pos += 1
    while True:
        byte = data[pos]
        pos += 1
        if shift == 63:
            if byte > 1:
                raise DecodeError("varint longer than 10 bytes or over 64 bits")
            acc |= byte << 63
            break
        acc |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
    return (acc >> 1) ^ -(acc & 1), pos


def _outcome(data: bytes, pos: int, read: object) -> object:
    try:
        return read(data, pos)  # type: ignore[operator]
    except (IndexError, DecodeError) as exc:
        return type(exc), str(exc) if isinstance(exc, DecodeError) else ""


def _zigzag(value: int) -> bytes:
    rest, out = (value << 1) ^ (value >> 63), bytearray()
    while rest >= 0x80:
        out.append(rest & 0x7F | 0x80)
        rest >>= 7
    return bytes([*out, rest])


BYTES = st.binary(min_size=1, max_size=14) | st.lists(
    st.sampled_from([0x00, 0x01, 0x02, 0x7F, 0x80, 0x81, 0xFF]), min_size=1, max_size=14
).map(bytes)


@settings(max_examples=2000)
@given(data=BYTES, at=st.integers(0, 13))
def test_any_bytes_read_as_the_loop_read_them(data: bytes, at: int) -> None:
    pos = at % len(data)
    assert _outcome(data, pos, read_long) == _outcome(data, pos, _loop)


@settings(max_examples=1000)
@given(value=st.integers(-(2**63), 2**63 - 1), cut=st.integers(0, 10))
def test_every_long_reads_back_and_a_cut_one_is_refused(value: int, cut: int) -> None:
    encoded = _zigzag(value)
    assert read_long(encoded + b"\x05", 0) == (value, len(encoded))
    if cut < len(encoded):
        assert _outcome(encoded[:cut] or b"\x80", 0, read_long) == (IndexError, "")
