"""Kafka's transactions v2 requests (KIP-890 part 2), which aiokafka 0.14 lacks. Pure.

Kafka 4.0+ with the `transaction.version=2` feature finalized adds a transaction's
partitions itself: a Produce v12 or TxnOffsetCommit v5 of a transactional producer
registers its partition with the transaction coordinator (no AddPartitionsToTxn, no
AddOffsetsToTxn), and EndTxn v5 answers with the producer id and epoch the next
transaction must use (the coordinator bumps the epoch at every end). Each request here is
an aiokafka `Request` with one flexible version, so aiokafka's client sends it and decodes
the answer; a broker without that version makes aiokafka refuse it before sending.

The schemas follow Kafka's message definitions (clients/src/main/resources/common/message/
*.json) at these versions; unknown tagged fields are kept as bytes, never interpreted.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from aiokafka.protocol.api import Request, RequestStruct, Response, ResponseHeader_v0
from aiokafka.protocol.types import (
    Boolean,
    CompactArray,
    CompactBytes,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)

TAGS = ("tags", TaggedFields)
NAME = CompactString("utf-8")
TRANSACTION_VERSION = "transaction.version"
_FINALIZED_FEATURES_TAG = 2  # ApiVersionsResponse's FinalizedFeatures (a tagged field)
_FINALIZED_FEATURE = CompactArray(
    ("name", NAME), ("max_version_level", Int16), ("min_version_level", Int16), TAGS
)


# -- ApiVersions v3: which versions the broker speaks, and its finalized features


class ApiVersionsResponse_v3(Response):
    API_KEY = 18
    API_VERSION = 3
    SCHEMA = Schema(
        ("error_code", Int16),
        ("api_keys", CompactArray(("api_key", Int16), ("min", Int16), ("max", Int16), TAGS)),
        ("throttle_time_ms", Int32),
        TAGS,
    )


class ApiVersionsRequest_v3(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 18
    API_VERSION = 3
    RESPONSE_TYPE = ApiVersionsResponse_v3
    SCHEMA = Schema(("client_software_name", NAME), ("client_software_version", NAME), TAGS)

    def parse_response_header(self, read_buffer: BytesIO | bytes) -> ResponseHeader_v0:
        # Kafka answers ApiVersions with header v0 at every version, so that a client
        # can read the answer before it knows which versions the broker speaks.
        return ResponseHeader_v0.decode(read_buffer)


class ApiVersionsV3(Request[ApiVersionsRequest_v3]):
    API_KEY = 18

    def build(self, request_struct_class: type[ApiVersionsRequest_v3]) -> ApiVersionsRequest_v3:
        return request_struct_class("countersign-bench", "0", {})


def finalized_features(response: Any) -> dict[str, int]:
    """Feature name → finalized level, from an ApiVersions v3 answer (empty if none)."""
    raw = response.tags.get(_FINALIZED_FEATURES_TAG)
    if raw is None:
        return {}
    entries = _FINALIZED_FEATURE.decode(BytesIO(raw)) or []
    return {str(name): int(level) for name, level, _min, _tags in entries}


def max_versions(response: Any) -> dict[int, int]:
    return {int(key): int(high) for key, _low, high, _tags in response.api_keys}


# -- InitProducerId v5


class InitProducerIdResponse_v5(Response):
    API_KEY = 22
    API_VERSION = 5
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("producer_id", Int64),
        ("producer_epoch", Int16),
        TAGS,
    )


class InitProducerIdRequest_v5(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 22
    API_VERSION = 5
    RESPONSE_TYPE = InitProducerIdResponse_v5
    SCHEMA = Schema(
        ("transactional_id", NAME),
        ("transaction_timeout_ms", Int32),
        ("producer_id", Int64),
        ("producer_epoch", Int16),
        TAGS,
    )


class InitProducerIdV5(Request[InitProducerIdRequest_v5]):
    API_KEY = 22

    def __init__(self, transactional_id: str, timeout_ms: int) -> None:
        self.transactional_id, self.timeout_ms = transactional_id, timeout_ms

    def build(
        self, request_struct_class: type[InitProducerIdRequest_v5]
    ) -> InitProducerIdRequest_v5:
        # No producer id yet (-1, -1): a new producer, which fences any older one.
        return request_struct_class(self.transactional_id, self.timeout_ms, -1, -1, {})


# -- Produce v12: the first version that adds its partition to the transaction


class ProduceResponse_v12(Response):
    API_KEY = 0
    API_VERSION = 12
    SCHEMA = Schema(
        (
            "responses",
            CompactArray(
                ("topic", NAME),
                (
                    "partitions",
                    CompactArray(
                        ("partition", Int32),
                        ("error_code", Int16),
                        ("base_offset", Int64),
                        ("log_append_time_ms", Int64),
                        ("log_start_offset", Int64),
                        (
                            "record_errors",
                            CompactArray(("batch_index", Int32), ("message", NAME), TAGS),
                        ),
                        ("error_message", NAME),
                        TAGS,
                    ),
                ),
                TAGS,
            ),
        ),
        ("throttle_time_ms", Int32),
        TAGS,
    )


class ProduceRequest_v12(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 0
    API_VERSION = 12
    RESPONSE_TYPE = ProduceResponse_v12
    SCHEMA = Schema(
        ("transactional_id", NAME),
        ("acks", Int16),
        ("timeout_ms", Int32),
        (
            "topics",
            CompactArray(
                ("topic", NAME),
                ("partitions", CompactArray(("partition", Int32), ("records", CompactBytes), TAGS)),
                TAGS,
            ),
        ),
        TAGS,
    )


class ProduceV12(Request[ProduceRequest_v12]):
    API_KEY = 0

    def __init__(self, transactional_id: str, topic: str, partition: int, batch: bytes) -> None:
        self.transactional_id, self.topic = transactional_id, topic
        self.partition, self.batch = partition, batch

    def build(self, request_struct_class: type[ProduceRequest_v12]) -> ProduceRequest_v12:
        topics = [(self.topic, [(self.partition, self.batch, {})], {})]
        return request_struct_class(self.transactional_id, -1, 30_000, topics, {})  # acks all


# -- TxnOffsetCommit v5: the first version that adds the offsets' partition itself


class TxnOffsetCommitResponse_v5(Response):
    API_KEY = 28
    API_VERSION = 5
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "topics",
            CompactArray(
                ("topic", NAME),
                ("partitions", CompactArray(("partition", Int32), ("error_code", Int16), TAGS)),
                TAGS,
            ),
        ),
        TAGS,
    )


class TxnOffsetCommitRequest_v5(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 28
    API_VERSION = 5
    RESPONSE_TYPE = TxnOffsetCommitResponse_v5
    SCHEMA = Schema(
        ("transactional_id", NAME),
        ("group_id", NAME),
        ("producer_id", Int64),
        ("producer_epoch", Int16),
        ("generation_id", Int32),
        ("member_id", NAME),
        ("group_instance_id", NAME),
        (
            "topics",
            CompactArray(
                ("topic", NAME),
                (
                    "partitions",
                    CompactArray(
                        ("partition", Int32),
                        ("offset", Int64),
                        ("leader_epoch", Int32),
                        ("metadata", NAME),
                        TAGS,
                    ),
                ),
                TAGS,
            ),
        ),
        TAGS,
    )


class TxnOffsetCommitV5(Request[TxnOffsetCommitRequest_v5]):
    API_KEY = 28

    def __init__(
        self,
        transactional_id: str,
        group: str,
        producer: tuple[int, int],
        offset: tuple[str, int, int],
    ) -> None:
        self.transactional_id, self.group = transactional_id, group
        self.producer, self.offset = producer, offset

    def build(
        self, request_struct_class: type[TxnOffsetCommitRequest_v5]
    ) -> TxnOffsetCommitRequest_v5:
        topic, partition, offset = self.offset
        producer_id, epoch = self.producer
        # Generation -1, no member: the group coordinator checks no membership (as
        # aiokafka's send_offsets_to_transaction, which sends v0).
        topics = [(topic, [(partition, offset, -1, "", {})], {})]
        return request_struct_class(
            self.transactional_id, self.group, producer_id, epoch, -1, "", None, topics, {}
        )


# -- EndTxn v5: answers with the producer id and epoch of the next transaction


class EndTxnResponse_v5(Response):
    API_KEY = 26
    API_VERSION = 5
    SCHEMA = InitProducerIdResponse_v5.SCHEMA  # the same fields: the next id and epoch


class EndTxnRequest_v5(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 26
    API_VERSION = 5
    RESPONSE_TYPE = EndTxnResponse_v5
    SCHEMA = Schema(
        ("transactional_id", NAME),
        ("producer_id", Int64),
        ("producer_epoch", Int16),
        ("committed", Boolean),
        TAGS,
    )


class EndTxnV5(Request[EndTxnRequest_v5]):
    API_KEY = 26

    def __init__(self, transactional_id: str, producer: tuple[int, int], commit: bool) -> None:
        self.transactional_id, self.producer, self.commit = transactional_id, producer, commit

    def build(self, request_struct_class: type[EndTxnRequest_v5]) -> EndTxnRequest_v5:
        producer_id, epoch = self.producer
        return request_struct_class(self.transactional_id, producer_id, epoch, self.commit, {})


def error_codes(response: Any) -> list[int]:
    """Every non-zero error code an answer carries, at any depth."""
    found: list[int] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "error_code" and isinstance(item, int) and item:
                    found.append(item)
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(response.to_object())
    return found
