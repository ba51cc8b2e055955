"""The Avro codec: round trips, the single-object header, and bounded, poison-safe decoding."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import struct
import time
import types
import typing
from typing import Any

import fastavro  # noqa: TID251  (an independent oracle for fingerprints and canonical forms)
import fastavro.schema  # noqa: TID251  (same)
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.approval import ApprovalRequest
from events.catalog import load_schema_files, rabin_fingerprint
from events.codec import MAGIC, Codec, Message
from events.commands import COMMAND_TYPES, CancelRun, StartRun
from events.envelope import EventEnvelope
from events.errors import DecodeError, MessageTooLarge, UnknownSchema
from events.fields import is_json_field
from events.notices import NOTICE_TYPES, ApprovalRequested
from events.run_events import (
    RUN_EVENT_TYPES,
    InterruptEscalated,
    InterruptRaised,
    RunCompleted,
    RunFailed,
)
from tests.strategies import envelope_strategy, message_strategy, zigzag

CODEC = Codec()


def _envelope(payload: Any, **meta: Any) -> EventEnvelope:
    defaults: dict[str, Any] = {
        "event_id": "evt-1",
        "run_id": "run-1",
        "seq": 0,
        "occurred_at_us": 1_700_000_000_000_000,
        "agent": "refund",
        "agent_version": "1",
        "causation_id": "cmd-1",
        "correlation_id": "run-1",
        "prev_hash": "",
    }
    return EventEnvelope(payload=payload, **{**defaults, **meta})


FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", RUN_EVENT_TYPES, ids=lambda c: c.__name__)
@FAST
@given(data=st.data())
def test_every_run_event_round_trips_in_its_envelope(cls: type[Any], data: st.DataObject) -> None:
    envelope = data.draw(envelope_strategy(cls))

    decoded = CODEC.decode(CODEC.encode(envelope))

    assert decoded == envelope
    assert isinstance(decoded, EventEnvelope)
    assert type(decoded.payload) is cls
    assert CODEC.decode_event(CODEC.encode(envelope)) == envelope


@pytest.mark.parametrize("cls", COMMAND_TYPES, ids=lambda c: c.__name__)
@FAST
@given(data=st.data())
def test_every_command_round_trips(cls: type[Any], data: st.DataObject) -> None:
    command = data.draw(message_strategy(cls))

    assert CODEC.decode_command(CODEC.encode(command)) == command


@pytest.mark.parametrize("cls", NOTICE_TYPES, ids=lambda c: c.__name__)
@FAST
@given(data=st.data())
def test_every_notice_round_trips(cls: type[Any], data: st.DataObject) -> None:
    notice = data.draw(message_strategy(cls))

    assert CODEC.decode_notice(CODEC.encode(notice)) == notice


def test_decoded_tuples_stay_tuples_and_json_keeps_its_types() -> None:
    request = ApprovalRequest(
        kind="tool",
        title="t",
        args={"n": 1, "f": 1.0, "b": True, "s": "é✓", "l": [None, {}]},
        allowed=("approve", "edit"),
        approvers=("a", "b"),
    )
    event = _envelope(InterruptRaised(call=1, interrupt_id="i", request=request))

    decoded = CODEC.decode_event(CODEC.encode(event))

    assert isinstance(decoded.payload, InterruptRaised)
    assert decoded.payload.request.allowed == ("approve", "edit")
    assert isinstance(decoded.payload.request.approvers, tuple)
    args = decoded.payload.request.args
    assert args is not None
    assert type(args["n"]) is int
    assert type(args["f"]) is float
    assert type(args["b"]) is bool


def test_decode_of_the_wrong_family_is_refused() -> None:
    command = CancelRun(command_id="c", run_id="r", cancelled_by="x", issued_at_us=1)
    event = _envelope(RunCompleted(output=None))

    with pytest.raises(DecodeError, match="expected a run event"):
        CODEC.decode_event(CODEC.encode(command))
    with pytest.raises(DecodeError, match="expected a command"):
        CODEC.decode_command(CODEC.encode(event))
    with pytest.raises(DecodeError, match="approvals-topic"):
        CODEC.decode_notice(CODEC.encode(command))


# -- header and fingerprints --------------------------------------------------------------------

# (input schema, parsing canonical form, fingerprint as Java's signed long), from the Avro
# project's share/test/data/schema-tests.txt, whose values the Java implementation cross-checks.
# (Vector 026's default "true" is written `true` here: fastavro validates defaults.)
AVRO_VECTORS = [
    ('"null"', '"null"', 7195948357588979594),
    ('"boolean"', '"boolean"', -6970731678124411036),
    ('"string"', '"string"', -8142146995180207161),
    (
        '{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}',
        '{"name":"x.y.foo","type":"record","fields":[]}',
        5916914534497305771,
    ),
    (
        '{ "fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":true},'
        '{"order":"descending","name":"f2","doc":"Hello","type":"int"}],'
        '"type":"record", "name":"foo"}',
        '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},'
        '{"name":"f2","type":"int"}]}',
        -4860222112080293046,
    ),
    (
        '{ "items":{"type":"null"}, "type":"array"}',
        '{"type":"array","items":"null"}',
        -589620603366471059,
    ),
]


@pytest.mark.parametrize(("schema", "canonical", "java_fp"), AVRO_VECTORS)
def test_rabin_fingerprint_matches_the_avro_test_vectors(
    schema: str, canonical: str, java_fp: int
) -> None:
    # Java's single-object encoding writes the 64-bit fingerprint little-endian.
    expected = struct.pack("<q", java_fp)
    parsed = fastavro.parse_schema(json.loads(schema))

    assert fastavro.schema.to_parsing_canonical_form(parsed) == canonical
    assert rabin_fingerprint(canonical.encode()) == expected
    # fastavro gives the same bytes, as hex, in the same (little-endian) order.
    assert bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO")) == expected


def _spec_fingerprints() -> dict[str, bytes]:
    """CRC-64-AVRO of each schema's parsing canonical form, named types written out in full
    (as the Avro spec and Java's SchemaNormalization do), computed without the codec."""
    files = load_schema_files()
    named: dict[str, Any] = {}
    fastavro.parse_schema(files["countersign.events.ApprovalRequest"].raw, named_schemas=named)
    out = {}
    for full_name, schema_file in files.items():
        parsed = fastavro.parse_schema(schema_file.raw, named_schemas=dict(named))
        canonical = fastavro.schema.to_parsing_canonical_form(fastavro.schema.expand_schema(parsed))
        out[full_name] = bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))
    return out


SPEC_FINGERPRINTS = _spec_fingerprints()
_NAMESPACE: dict[type[Any], str] = {
    **{cls: "countersign.events" for cls in RUN_EVENT_TYPES},
    **{cls: "countersign.commands" for cls in COMMAND_TYPES},
    **{cls: "countersign.approvals" for cls in NOTICE_TYPES},
}


@pytest.mark.parametrize(
    "cls",
    [pytest.param(cls, id=cls.__name__) for cls in _NAMESPACE],
)
def test_header_is_magic_and_the_spec_fingerprint(cls: type[Any]) -> None:
    message = _sample(cls)
    encoded = CODEC.encode(_envelope(message) if cls in RUN_EVENT_TYPES else message)

    assert encoded[:2] == MAGIC == b"\xc3\x01"
    assert encoded[2:10] == CODEC.fingerprint_of(cls)
    assert CODEC.fingerprint_of(cls) == SPEC_FINGERPRINTS[f"{_NAMESPACE[cls]}.{cls.__name__}"]


def test_fingerprints_are_distinct() -> None:
    fingerprints = [CODEC.fingerprint_of(cls) for cls in _NAMESPACE]
    assert len(set(fingerprints)) == len(fingerprints)


def _sample(cls: type[Any]) -> Any:
    """A fixed instance of `cls`: every field gets a plain value of its type."""
    module_globals = vars(__import__(cls.__module__, fromlist=["_"]))
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if is_json_field(field):
            kwargs[field.name] = {"k": [1, 2.5, None]}
            continue
        hint = eval(str(field.type), module_globals)
        kwargs[field.name] = _plain(hint)
    return cls(**kwargs)


def _plain(hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if hint is ApprovalRequest:
        return _sample(ApprovalRequest)
    if origin is typing.Literal:
        return typing.get_args(hint)[0]
    if origin in (typing.Union, types.UnionType):
        return _plain(typing.get_args(hint)[0])
    if origin is tuple:
        return (_plain(typing.get_args(hint)[0]),)
    return {str: "s", int: 7, float: 2.5, bool: True, bytes: b"\x00"}[hint]


# -- refusals -----------------------------------------------------------------------------------


def _failed(error: str = "boom") -> bytes:
    return CODEC.encode(_envelope(RunFailed(error_type="ValueError", error=error)))


def test_message_over_the_size_limit_is_refused_before_reading() -> None:
    small = Codec(max_message_bytes=64)
    encoded = _failed("x" * 100)

    with pytest.raises(MessageTooLarge):
        small.decode(encoded)
    with pytest.raises(MessageTooLarge):
        small.decode(b"\x00" * 65)  # refused on size alone, before the header is looked at


def test_message_at_the_size_limit_is_read() -> None:
    encoded = _failed("x" * 100)
    assert Codec(max_message_bytes=len(encoded)).decode(encoded) == CODEC.decode(encoded)


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc3", b"\xc3\x01\x00", b"\xc3\x02" + b"\x00" * 20, b"\x00\x01" + b"\x00" * 20, b"{}"],
)
def test_wrong_or_missing_magic_is_refused(data: bytes) -> None:
    with pytest.raises(DecodeError) as refused:
        CODEC.decode(data)
    assert not isinstance(refused.value, UnknownSchema)


def test_wrong_magic_on_a_valid_body_is_refused() -> None:
    encoded = _failed()
    with pytest.raises(DecodeError, match="C3 01"):
        CODEC.decode(b"\xc3\x00" + encoded[2:])


def test_unknown_fingerprint_is_refused() -> None:
    encoded = _failed()
    with pytest.raises(UnknownSchema):
        CODEC.decode(MAGIC + b"\x01" * 8 + encoded[10:])


def test_every_truncation_is_refused() -> None:
    request = ApprovalRequest(kind="tool", title="t", args={"a": [1, 2]}, approvers=("x", "y"))
    messages: list[Message] = [
        _envelope(InterruptRaised(call=1, interrupt_id="i", request=request)),
        _envelope(InterruptEscalated(interrupt_id="i", level=2, approvers=("a", "b"), reason="r")),
        StartRun(
            command_id="c",
            run_id="r",
            agent="a",
            input={"k": "v"},
            requested_by="u",
            issued_at_us=5,
        ),
    ]
    for message in messages:
        encoded = CODEC.encode(message)
        for end in range(len(encoded)):
            with pytest.raises(DecodeError):
                CODEC.decode(encoded[:end])


@pytest.mark.parametrize("extra", [b"\x00", b"\x02ab", b"\xff" * 10])
def test_trailing_bytes_are_refused(extra: bytes) -> None:
    with pytest.raises(DecodeError, match="trailing"):
        CODEC.decode(_failed() + extra)


def _approval_requested_with_allowed_count(count: bytes) -> bytes:
    """An ApprovalRequested whose `request.allowed` array declares `count` items, then ends."""
    notice = ApprovalRequested(
        run_id="r",
        interrupt_id="i",
        agent="a",
        agent_version="1",
        requested_by="u",
        requested_at_us=1,
        request=ApprovalRequest(kind="tool", title="t", allowed=(), approvers=()),
    )
    encoded = CODEC.encode(notice)
    tail = b"\x00" + b"\x00" + b"\x08null" + b"\x00"  # allowed=[], approvers=[], "null", ""
    # then rule="", level=1, levels=1, quorum=1, excluded=[], escalate_to=[], escalation=0,
    # timeout_s=null, args_schema="null", confidence=null
    tail += b"\x00\x02\x02\x02\x00\x00\x00\x00\x08null\x00"
    assert encoded.endswith(tail)
    return encoded[: -len(tail)] + count


@pytest.mark.parametrize(
    "count",
    [zigzag(2**40), zigzag(-(2**40)) + zigzag(3), zigzag(2**62)],
    ids=["pos", "neg", "huge"],
)
def test_a_huge_array_block_count_is_refused_quickly(count: bytes) -> None:
    crafted = _approval_requested_with_allowed_count(count)

    started = time.perf_counter()
    with pytest.raises(DecodeError):
        CODEC.decode(crafted)
    assert time.perf_counter() - started < 0.5


def _forbid_fastavro_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("fastavro was asked to read a message the bounds check must refuse")

    monkeypatch.setattr(fastavro, "schemaless_reader", forbidden)  # what events.codec calls


def test_a_huge_array_block_count_is_refused_before_fastavro_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    event = _envelope(InterruptEscalated(interrupt_id="i", level=1, approvers=(), reason=""))
    encoded = CODEC.encode(event)
    tail = b"\x00" + b"\x00" + b"\x00"  # approvers=[], reason="", deadline_us=null
    assert encoded.endswith(tail)
    crafted = encoded[: -len(tail)] + zigzag(2**40)
    _forbid_fastavro_reads(monkeypatch)

    with pytest.raises(DecodeError, match="array block declares"):
        CODEC.decode(crafted)


def test_a_huge_array_block_inside_a_nested_request_is_refused_before_fastavro_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crafted = _approval_requested_with_allowed_count(zigzag(2**40))
    _forbid_fastavro_reads(monkeypatch)

    with pytest.raises(DecodeError, match="array block declares"):
        CODEC.decode(crafted)


def test_invalid_utf8_in_a_string_is_refused() -> None:
    encoded = _failed("zz")
    assert encoded.count(b"zz") == 1
    with pytest.raises(DecodeError):
        CODEC.decode(encoded.replace(b"zz", b"\xff\xfe"))


@pytest.mark.parametrize("bad", [b"{nope}", b"[1,2,3", b"\x00\x00\x00\x00\x00\x00", b"'zzzz'"])
def test_a_json_field_holding_non_json_text_is_refused(bad: bytes) -> None:
    encoded = CODEC.encode(_envelope(RunCompleted(output="zzzz")))
    assert encoded.count(b'"zzzz"') == 1
    with pytest.raises(DecodeError, match="JSON"):
        CODEC.decode(encoded.replace(b'"zzzz"', bad))


@pytest.mark.parametrize("bad", [b"NaN", b"-Infinity", b'{"a":NaN}'])
def test_a_json_field_holding_nan_or_infinity_is_refused(bad: bytes) -> None:
    marker = "z" * (len(bad) - 2)  # same length once quoted, so the body stays well-formed
    encoded = CODEC.encode(_envelope(RunCompleted(output=marker)))
    assert encoded.count(f'"{marker}"'.encode()) == 1
    with pytest.raises(DecodeError, match="JSON"):
        CODEC.decode(encoded.replace(f'"{marker}"'.encode(), bad))


def test_an_empty_json_field_is_refused() -> None:
    encoded = CODEC.encode(_envelope(RunCompleted(output=None)))
    assert encoded.endswith(b"\x08null")
    with pytest.raises(DecodeError, match="JSON"):
        CODEC.decode(encoded[:-5] + b"\x00")


# -- fuzz -----------------------------------------------------------------------------------------

FINGERPRINTS = sorted(CODEC.fingerprint_of(cls) for cls in _NAMESPACE)


@settings(max_examples=400, deadline=None)
@given(fingerprint=st.sampled_from(FINGERPRINTS), body=st.binary(max_size=300))
def test_random_bytes_after_a_valid_header_only_raise_decode_error(
    fingerprint: bytes, body: bytes
) -> None:
    with contextlib.suppress(DecodeError):
        CODEC.decode(MAGIC + fingerprint + body)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_valid_messages_only_raise_decode_error(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from(list(_NAMESPACE)))
    message = data.draw(message_strategy(cls))
    encoded = bytearray(CODEC.encode(_envelope(message) if cls in RUN_EVENT_TYPES else message))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(10, len(encoded) - 1))
        encoded[at] = data.draw(st.integers(0, 255))
    with contextlib.suppress(DecodeError):
        CODEC.decode(bytes(encoded))
