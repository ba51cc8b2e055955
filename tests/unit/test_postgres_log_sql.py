"""The pure helpers of the PostgreSQL event log: header encoding and channel names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import LogError
from engine.log.postgres_sql import decode_headers, encode_headers, notify_channel

headers = st.lists(st.tuples(st.text(max_size=40), st.binary(max_size=200)), max_size=6).map(tuple)


@given(headers)
def test_headers_round_trip(value: tuple[tuple[str, bytes], ...]) -> None:
    assert decode_headers(encode_headers(value)) == value


def test_no_headers_are_stored_as_null() -> None:
    assert encode_headers(()) is None
    assert decode_headers(None) == ()


@pytest.mark.parametrize("data", [b"\x00\x05ab", b"\x00\x01k\x00\x00\x00\x09short", b"\x00"])
def test_corrupt_headers_are_a_log_error(data: bytes) -> None:
    with pytest.raises(LogError, match="corrupt"):
        decode_headers(data)


def test_channels_are_readable_when_short_and_bounded_when_long() -> None:
    assert notify_channel("t", "public", "countersign.runs") == "cs_log:t:public:countersign.runs"
    long = notify_channel("g", "public", "g" * 80, "countersign.commands")
    assert len(long.encode()) <= 63
    assert long != notify_channel("g", "public", "g" * 81, "countersign.commands")
