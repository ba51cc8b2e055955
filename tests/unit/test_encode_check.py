"""The encoder's cheap check refuses exactly what decoding its output would refuse.

`Codec.encode` used to prove "a reader takes what I write" by decoding every message it
wrote; it now walks the bytes and checks the written record's fields. The property: for any
message, hostile values included, the new check raises `EncodeError` exactly when writing the
bytes unchecked and decoding them raises `DecodeError`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from events import avro
from events.catalog import MESSAGE_TYPES
from events.codec import MAGIC, Codec
from events.errors import DecodeError, EncodeError, MessageTooLarge
from events.limits import MAX_COMMAND_JSON_CHARS, MAX_JSON_DEPTH
from events.run_events import RUN_EVENT_TYPES
from tests.strategies import envelope_strategy, message_strategy

CODEC = Codec()
CLASSES = sorted(MESSAGE_TYPES.values(), key=lambda cls: cls.__name__)

_DEEP: Any = [0]
for _ in range(MAX_JSON_DEPTH):
    _DEEP = [_DEEP]

# Hostile values by the type of the value they replace (so the Avro write takes them, and
# the check after it is what decides), and a pool for JSON fields and optional ones.
HOSTILE: dict[type[Any], list[Any]] = {
    int: [-1, -(2**63), -(2**31) - 1, 2**31, 2**63 - 1],
    float: [float("nan"), float("inf"), -float("inf")],
    str: ["x" * 5_000, "\ud800", ""],
    bool: [True],
}
HOSTILE_JSON = [_DEEP, _DEEP[0], ["[" * 10], 10**5_000, {"k": "v" * (MAX_COMMAND_JSON_CHARS + 1)}]


def _hostile(current: Any) -> st.SearchStrategy[Any]:
    pool = HOSTILE.get(type(current))
    return st.sampled_from(pool) if pool else st.sampled_from(HOSTILE_JSON + HOSTILE[str])


def _reference(message: Any) -> bool:
    """The old check: write without checking, then decode what was written."""
    try:
        target, _mapper, record = CODEC._record_of(message)
        encoded = MAGIC + target.version.fingerprint + avro.write(target.schema, record)
    except Exception:  # the write itself refuses: so does encode, before any check
        return False
    if len(encoded) > CODEC.max_message_bytes:
        return False
    try:
        CODEC.decode(encoded)
    except DecodeError:
        return False
    return True


def _encodes(message: Any) -> bool:
    try:
        CODEC.encode(message)
    except (EncodeError, MessageTooLarge):
        return False
    return True


def _spoil(message: Any, data: st.DataObject) -> Any:
    fields = [f.name for f in dataclasses.fields(message)]
    name = data.draw(st.sampled_from(fields))
    if name == "payload":
        return dataclasses.replace(message, payload=_spoil(message.payload, data))
    return dataclasses.replace(message, **{name: data.draw(_hostile(getattr(message, name)))})


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), cls=st.sampled_from(CLASSES))
def test_encode_refuses_exactly_what_a_reader_would(data: st.DataObject, cls: type[Any]) -> None:
    strategy = envelope_strategy(cls) if cls in RUN_EVENT_TYPES else message_strategy(cls)
    message = data.draw(strategy)
    # valid values go through both ways
    assert _encodes(message)
    assert _reference(message)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        try:
            message = _spoil(message, data)
        except (TypeError, ValueError):  # a class that checks its fields refused the value
            return
    accepted = _encodes(message)
    event("accepted" if accepted else "refused")
    assert accepted == _reference(message)
