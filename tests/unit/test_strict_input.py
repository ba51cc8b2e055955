"""Strict input at the codec boundary: hostile but well-formed messages are refused with a
DecodeError that says why, and the codec never writes what it would refuse to read."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from events.approval import ApprovalRequest
from events.codec import MAGIC, Codec
from events.commands import CancelRun, StartRun, SubmitDecision
from events.envelope import EventEnvelope
from events.errors import DecodeError, EncodeError, InvalidField, MessageTooLarge
from events.json import JsonRefused, check_depth, loads
from events.limits import (
    COMMAND_STRING_CAPS,
    MAX_COMMAND_JSON_CHARS,
    MAX_JSON_DEPTH,
    MAX_KIND_CHARS,
    clip,
)
from events.run_events import (
    InterruptRaised,
    RunCompleted,
    RunFailed,
    ToolCallCompleted,
    ToolCallScheduled,
)
from tests.strategies import zigzag

CODEC = Codec()


def _decision(**changes: Any) -> SubmitDecision:
    fields: dict[str, Any] = {
        "decision_id": "dec-1",
        "run_id": "run-1",
        "interrupt_id": "int-1",
        "kind": "approve",
        "decided_by": "bob",
        "issued_at_us": 5,
        "response": "zzzz",
    }
    return SubmitDecision(**{**fields, **changes})


def _envelope(payload: Any, **meta: Any) -> EventEnvelope:
    fields: dict[str, Any] = {
        "event_id": "e",
        "run_id": "r",
        "seq": 3,
        "occurred_at_us": 1_700_000_000_000_000,
        "agent": "a",
        "agent_version": "1",
        "causation_id": "c",
        "correlation_id": "r",
        "prev_hash": "",
    }
    return EventEnvelope(payload=payload, **{**fields, **meta})


def _with_json(message: Any, marker: str, replacement: bytes) -> bytes:
    """`message` encoded, with the JSON text `"marker"` swapped for `replacement` (and the
    string's length prefix fixed), as a hostile writer would send it."""
    encoded = CODEC.encode(message)
    quoted = f'"{marker}"'.encode()
    assert encoded.count(quoted) == 1
    at = encoded.index(quoted)
    prefix = zigzag(len(quoted))
    assert encoded[at - len(prefix) : at] == prefix
    return (
        encoded[: at - len(prefix)]
        + zigzag(len(replacement))
        + replacement
        + encoded[at + len(quoted) :]
    )


# -- JSON fields ---------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 3_000, 100_000])
def test_json_nested_deeper_than_the_limit_is_refused_without_recursion(depth: int) -> None:
    hostile = ("[" * depth + "]" * depth).encode()

    with pytest.raises(InvalidField, match=r"SubmitDecision\.response.*deeper than 64"):
        CODEC.decode_command(_with_json(_decision(), "zzzz", hostile))


def test_json_at_the_depth_limit_is_read() -> None:
    nested = ("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH).encode()

    decoded = CODEC.decode_command(_with_json(_decision(), "zzzz", nested))

    assert isinstance(decoded, SubmitDecision)
    assert decoded.response == _nest(MAX_JSON_DEPTH)


def _nest(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_brackets_inside_json_strings_do_not_count_as_nesting() -> None:
    text = '{"a":"' + "[" * 500 + '\\"[[[","b":[1]}'

    check_depth(text)
    assert loads(text) == {"a": "[" * 500 + '"[[[', "b": [1]}


@pytest.mark.parametrize(
    "number", [b"1e400", b"-1e400", b"[1,2e308]", b'{"a":' + b"9" * 400 + b".0}", b"1E999"]
)
def test_json_numbers_that_overflow_a_double_are_refused(number: bytes) -> None:
    with pytest.raises(InvalidField, match="out of range"):
        CODEC.decode_command(_with_json(_decision(), "zzzz", number))


@pytest.mark.parametrize("text", [b'"\\ud800"', b'{"\\udfff":1}', b'["a\\uDBFFz"]'])
def test_json_with_an_escaped_lone_surrogate_is_refused(text: bytes) -> None:
    with pytest.raises(InvalidField, match="surrogate"):
        CODEC.decode_command(_with_json(_decision(), "zzzz", text))


def test_json_with_an_escaped_surrogate_pair_is_one_character_and_is_read() -> None:
    decoded = CODEC.decode_command(_with_json(_decision(), "zzzz", b'"\\ud83d\\ude00"'))

    assert isinstance(decoded, SubmitDecision)
    assert decoded.response == "\U0001f600"


def test_a_command_json_field_over_its_cap_is_refused_and_named() -> None:
    big = b'"' + b"x" * MAX_COMMAND_JSON_CHARS + b'"'

    with pytest.raises(InvalidField, match=r"SubmitDecision\.response.*262144") as refused:
        CODEC.decode_command(_with_json(_decision(), "zzzz", big))
    assert refused.value.field == "SubmitDecision.response"


def test_an_event_json_field_may_be_larger_than_a_command_one() -> None:
    result = "x" * (MAX_COMMAND_JSON_CHARS + 10)
    event = _envelope(ToolCallCompleted(call=1, result=result))

    assert CODEC.decode_event(CODEC.encode(event)) == event


def test_loads_refuses_with_a_value_error_subclass() -> None:
    with pytest.raises(JsonRefused):
        loads("[" * 100)
    with pytest.raises(ValueError, match="out of range"):
        loads("1e400")
    assert math.isfinite(loads("1.7976931348623157e308"))  # type: ignore[arg-type]


# -- string caps of commands ---------------------------------------------------------------------


@pytest.mark.parametrize("field", ["kind", "decided_by", "reason", "run_id", "digest"])
def test_an_over_long_command_string_is_refused_naming_the_field(field: str) -> None:
    cap = COMMAND_STRING_CAPS[field]
    at_cap = _decision(**{field: "k" * cap})
    over = _decision(**{field: "k" * (cap + 1)})
    forged = CODEC.encode(at_cap).replace(
        zigzag(cap) + b"k" * cap, zigzag(cap + 1) + b"k" * (cap + 1)
    )

    assert CODEC.decode_command(CODEC.encode(at_cap)) == at_cap
    with pytest.raises(InvalidField, match=f"SubmitDecision.{field}: {cap + 1} characters"):
        CODEC.decode_command(forged)
    with pytest.raises(EncodeError, match=f"SubmitDecision.{field}"):
        CODEC.encode(over)


def test_a_600_kb_kind_is_refused_at_decode() -> None:
    huge = "approve" + "x" * 600_000
    encoded = CODEC.encode(_decision(kind="k" * MAX_KIND_CHARS))
    forged = encoded.replace(
        zigzag(MAX_KIND_CHARS) + b"k" * MAX_KIND_CHARS, zigzag(len(huge)) + huge.encode()
    )

    with pytest.raises(InvalidField, match="kind"):
        CODEC.decode_command(forged)


def test_every_string_field_of_every_command_has_a_cap() -> None:
    for cls in (StartRun, SubmitDecision, CancelRun):
        for field in dataclasses.fields(cls):
            if field.type == "str":
                assert field.name in COMMAND_STRING_CAPS, f"{cls.__name__}.{field.name}"


# -- numbers in the Avro body --------------------------------------------------------------------


def _failed_with_seq(seq_bytes: bytes) -> bytes:
    """A RunFailed (a schema without arrays) whose `seq` varint is replaced by `seq_bytes`."""
    encoded = CODEC.encode(
        _envelope(RunFailed(error_type="E", error="x"), event_id="", run_id="", seq=0)
    )
    # header, event_id "", run_id "", then seq
    assert encoded[10:13] == b"\x00\x00\x00"
    return encoded[:12] + seq_bytes + encoded[13:]


def test_a_varint_longer_than_ten_bytes_is_refused_in_every_schema() -> None:
    with pytest.raises(DecodeError, match="varint"):
        CODEC.decode(_failed_with_seq(b"\x80" * 10 + b"\x00"))


def test_a_ten_byte_varint_over_64_bits_is_refused() -> None:
    with pytest.raises(DecodeError, match="64 bits"):
        CODEC.decode(_failed_with_seq(b"\xfe" + b"\xff" * 8 + b"\x03"))


def test_the_largest_long_in_ten_bytes_is_read() -> None:
    decoded = CODEC.decode_event(_failed_with_seq(b"\xfe" + b"\xff" * 8 + b"\x01"))
    assert decoded.seq == 2**63 - 1


@pytest.mark.parametrize(
    "meta", [{"seq": -1}, {"occurred_at_us": -5}], ids=["seq", "occurred_at_us"]
)
def test_negative_positions_and_times_are_refused_both_ways(meta: dict[str, int]) -> None:
    good = _envelope(RunCompleted(output=None))
    bad = _envelope(RunCompleted(output=None), **meta)
    field = next(iter(meta))
    forged = CODEC.encode(good).replace(zigzag(getattr(good, field)), zigzag(meta[field]), 1)

    with pytest.raises(DecodeError, match="negative"):
        CODEC.decode(forged)
    with pytest.raises(EncodeError, match="negative"):
        CODEC.encode(bad)


def test_a_negative_deadline_inside_a_nested_request_is_refused() -> None:
    request = ApprovalRequest(kind="tool", title="t", deadline_us=-10)
    with pytest.raises(EncodeError, match="negative"):
        CODEC.encode(_envelope(InterruptRaised(call=1, interrupt_id="i", request=request)))


def test_a_boolean_byte_other_than_0_or_1_is_refused() -> None:
    event = _envelope(
        ToolCallScheduled(
            call=1, tool="t", args={}, args_digest="d", idempotency_key="k", idempotent=True
        )
    )
    encoded = CODEC.encode(event)
    assert encoded.endswith(b"\x02k\x01")
    with pytest.raises(DecodeError, match="boolean"):
        CODEC.decode(encoded[:-1] + b"\x07")


def test_a_nan_double_is_refused() -> None:
    request = ApprovalRequest(kind="tool", title="t", amount=1.5)
    encoded = CODEC.encode(_envelope(InterruptRaised(call=1, interrupt_id="i", request=request)))
    one_and_half = b"\x00\x00\x00\x00\x00\x00\xf8\x3f"
    assert encoded.count(one_and_half) == 1

    with pytest.raises(DecodeError, match="NaN"):
        CODEC.decode(encoded.replace(one_and_half, b"\x00\x00\x00\x00\x00\x00\xf8\x7f"))
    with pytest.raises(EncodeError):
        CODEC.encode(
            _envelope(
                InterruptRaised(
                    call=1,
                    interrupt_id="i",
                    request=ApprovalRequest(kind="tool", title="t", amount=math.inf),
                )
            )
        )


# -- encode never raises anything else ----------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"a": math.nan},
        "\ud800",
        {"k": {1, 2}},
        _nest(5_000),
        object(),
        {"a": 10**5000},
        b"bytes",
    ],
    ids=["nan", "surrogate", "set", "deep", "object", "huge-int", "bytes"],
)
def test_encode_refuses_unwritable_json_with_encode_error(value: Any) -> None:
    with pytest.raises(EncodeError):
        CODEC.encode(_envelope(RunCompleted(output=value)))


@pytest.mark.parametrize(
    "message",
    [
        object(),
        None,
        "text",
        RunCompleted(output=None),  # a payload outside its envelope
        ApprovalRequest(kind="tool", title="t"),  # not a message on its own
        _envelope(RunFailed(error_type="E", error="\udcff")),
        _envelope(RunFailed(error_type=7, error="x")),  # type: ignore[arg-type]
        _decision(issued_at_us=2**64),
        _decision(decided_by=None),  # type: ignore[arg-type]
    ],
    ids=lambda m: type(m).__name__,
)
def test_encode_raises_only_encode_error_for_any_value(message: Any) -> None:
    with pytest.raises(EncodeError):
        CODEC.encode(message)


def test_encode_over_the_record_limit_is_message_too_large() -> None:
    with pytest.raises(MessageTooLarge):
        Codec(max_message_bytes=200).encode(_envelope(RunFailed(error_type="E", error="x" * 300)))


def test_not_avro_at_all_is_refused() -> None:
    with pytest.raises(DecodeError, match="C3 01"):
        CODEC.decode(b"\x00\x00\x00\x00\x01" + b"\x00" * 20)  # registry framing, not enabled
    assert MAGIC == b"\xc3\x01"


# -- clip -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [0, 1, 5, 12, 13, 20, 200])
@pytest.mark.parametrize("length", [0, 1, 12, 13, 50, 10_000, 600_000])
def test_clip_never_exceeds_its_limit_and_keeps_what_fits(limit: int, length: int) -> None:
    text = "".join(chr(0x61 + i % 26) for i in range(length))

    clipped = clip(text, limit)

    assert len(clipped) <= limit
    if length <= limit:
        assert clipped == text
    else:
        kept = clipped.split("…[")[0]
        assert text.startswith(kept)
        if "…[" in clipped:
            assert clipped.endswith(f"…[{length - len(kept)} more]")
