"""Bytes a hostile or foreign writer could send, which our codec refuses to write itself."""

from __future__ import annotations

from typing import Any

from events.codec import Codec
from tests.strategies import zigzag


def forge(codec: Codec, message: Any, **swaps: str) -> bytes:
    """`message` encoded, then each placeholder string value (the keys' current values in
    `message`) swapped for the given text, length prefixes fixed. Placeholders must be
    distinct and appear once in the encoding."""
    data = codec.encode(message)
    for field, text in swaps.items():
        old = getattr(message, field).encode()
        spelled = zigzag(len(old)) + old
        assert data.count(spelled) == 1, f"{field}: placeholder not unique"
        new = text.encode("utf-8", "surrogatepass")
        data = data.replace(spelled, zigzag(len(new)) + new)
    return data
