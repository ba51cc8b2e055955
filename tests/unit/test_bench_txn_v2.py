"""The transactions v2 requests of bench/txn_v2.py: their bytes, their answers, their refusals."""

from __future__ import annotations

import struct

import pytest

from bench import txn_v2


def compact(text: str) -> bytes:
    return bytes([len(text) + 1]) + text.encode()


def test_end_txn_v5_is_the_bytes_kafka_defines() -> None:
    built = txn_v2.EndTxnV5("t-1", (7, 3), True).prepare({26: (0, 5)})
    assert type(built) is txn_v2.EndTxnRequest_v5
    expected = compact("t-1") + struct.pack(">qh?", 7, 3, True) + b"\x00"
    assert built.encode() == expected
    header = built.build_request_header(correlation_id=9, client_id="c").encode()
    # Header v2: key, version, correlation id, client id (int16 length), then no tags.
    assert header == struct.pack(">hhih", 26, 5, 9, 1) + b"c" + b"\x00"


@pytest.mark.parametrize(
    "request_",
    [
        txn_v2.InitProducerIdV5("t-1", 60_000),
        txn_v2.ProduceV12("t-1", "runs", 3, b"\x01batch\x02"),
        txn_v2.TxnOffsetCommitV5("t-1", "workers", (7, 3), ("commands", 2, 41)),
        txn_v2.EndTxnV5("t-1", (7, 3), False),
        txn_v2.ApiVersionsV3(),
    ],
    ids=lambda request: type(request).__name__,
)
def test_each_request_decodes_to_what_was_built(request_: txn_v2.Request) -> None:
    built = request_.prepare({0: (0, 13), 18: (0, 4), 22: (0, 5), 26: (0, 5), 28: (0, 5)})
    again = type(built).decode(built.encode())
    assert again.to_object() == built.to_object()
    assert built.FLEXIBLE_VERSION


def test_a_broker_without_the_version_is_refused_before_sending() -> None:
    with pytest.raises(NotImplementedError):
        txn_v2.EndTxnV5("t-1", (7, 3), True).prepare({26: (0, 4)})  # Kafka 3.9
    with pytest.raises(Exception, match="API version is unknown"):
        txn_v2.ProduceV12("t-1", "runs", 0, b"").prepare({})


def test_end_txn_answer_carries_the_next_producer_epoch() -> None:
    answer = struct.pack(">ihqh", 0, 0, 7, 4) + b"\x00"
    decoded = txn_v2.EndTxnResponse_v5.decode(answer)
    assert (decoded.producer_id, decoded.producer_epoch) == (7, 4)
    assert txn_v2.error_codes(decoded) == []


def test_error_codes_are_found_at_any_depth() -> None:
    partition = (0, 53, -1, -1, -1, [(0, "bad", {})], "fenced", {})
    answer = txn_v2.ProduceResponse_v12([("runs", [partition], {})], 0, {})
    decoded = txn_v2.ProduceResponse_v12.decode(answer.encode())
    assert txn_v2.error_codes(decoded) == [53]
    fine = txn_v2.TxnOffsetCommitResponse_v5(0, [("commands", [(2, 0, {})], {})], {})
    assert txn_v2.error_codes(fine) == []


def features_tag(*entries: tuple[str, int]) -> bytes:
    body = b"".join(
        compact(name) + struct.pack(">hh", level, 0) + b"\x00" for name, level in entries
    )
    return bytes([len(entries) + 1]) + body


def api_versions_answer(tags: dict[int, bytes]) -> bytes:
    keys = bytes([2]) + struct.pack(">hhh", 26, 0, 5) + b"\x00"
    encoded_tags = bytes([len(tags)]) + b"".join(
        bytes([tag, len(raw)]) + raw for tag, raw in sorted(tags.items())
    )
    return struct.pack(">h", 0) + keys + struct.pack(">i", 0) + encoded_tags


def test_finalized_features_are_read_from_the_api_versions_answer() -> None:
    raw = features_tag(("metadata.version", 27), ("transaction.version", 2))
    answer = txn_v2.ApiVersionsResponse_v3.decode(api_versions_answer({2: raw}))
    assert txn_v2.finalized_features(answer) == {"metadata.version": 27, "transaction.version": 2}
    assert txn_v2.max_versions(answer) == {26: 5}
    bare = txn_v2.ApiVersionsResponse_v3.decode(api_versions_answer({}))
    assert txn_v2.finalized_features(bare) == {}


def test_a_truncated_features_field_is_refused_not_guessed() -> None:
    raw = features_tag(("transaction.version", 2))[:-4]
    answer = txn_v2.ApiVersionsResponse_v3.decode(api_versions_answer({2: raw}))
    with pytest.raises((ValueError, struct.error)):
        txn_v2.finalized_features(answer)


def test_api_versions_answer_header_has_no_tags() -> None:
    # Kafka answers ApiVersions with header v0 whatever the version: a correlation id only.
    built = txn_v2.ApiVersionsV3().prepare({18: (0, 4)})
    header = built.parse_response_header(struct.pack(">i", 12) + b"\x7f")
    assert header.correlation_id == 12
