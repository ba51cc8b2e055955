"""Helpers for the replay tooling's tests: a run's events as a log would hold them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from events.codec import Codec
from events.envelope import GENESIS_HASH, EventEnvelope, hash_encoded


def chained(codec: Codec, envelopes: Sequence[EventEnvelope]) -> list[bytes]:
    """`envelopes` encoded as a worker writes them: each carries the hash of the one before."""
    raws: list[bytes] = []
    previous = GENESIS_HASH
    for envelope in envelopes:
        raw = codec.encode(replace(envelope, prev_hash=previous))
        raws.append(raw)
        previous = hash_encoded(raw)
    return raws
