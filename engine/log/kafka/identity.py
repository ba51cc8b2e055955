"""Who a topic is: `kafka:<cluster id>:<topic id>`, from a Metadata v10 request (I/O).

aiokafka's own Metadata request stops at v5, before topic ids (KIP-516), so v10 is spelled
out here field by field as in Kafka's MetadataRequest.json, and sent through the admin
client's `_send_request` (one aiokafka internal, touched here only).
"""

from __future__ import annotations

import base64
import struct

from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Boolean,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)

from engine.log.kafka.admin import _admin
from engine.log.kafka.connection import Connection

__all__ = ["UnknownTopicError", "topic_identity"]

_ERROR_NONE = 0


class UnknownTopicError(LookupError):
    """The cluster has no topic of that name."""


async def topic_identity(target: str | Connection, topic: str) -> str:
    """Who `topic` is: `kafka:<cluster id>:<topic id>`, both as the broker names them.

    A topic id is given to a topic when it is created, so a topic deleted and created again
    under the same name (its offsets starting over) has another identity, as has the same
    name on another cluster. Brokers before Kafka 2.8 have no topic ids: there the name
    stands in for it (`kafka:<cluster id>:name:<topic>`). An unknown topic raises
    :class:`UnknownTopicError` (the request never creates one).
    """
    async with _admin(Connection.of(target)) as admin:
        try:
            response = await admin._send_request(_MetadataV10(topic))
        except NotImplementedError:  # the broker cannot answer Metadata v10
            cluster = await admin.describe_cluster()
            return f"kafka:{cluster['cluster_id']}:name:{topic}"
    ((error_code, _name, (high, low), *_),) = response.topics
    if error_code != _ERROR_NONE:
        raise UnknownTopicError(f"topic {topic!r} does not exist (Kafka error {error_code})")
    topic_id = base64.urlsafe_b64encode(struct.pack(">qq", high, low)).rstrip(b"=").decode()
    return f"kafka:{response.cluster_id}:{topic_id}"


# Metadata v10 (KIP-516) is the first version naming topic ids; aiokafka stops at v5, so the
# request is spelled out here, field by field as in Kafka's MetadataRequest.json.
_UUID = Schema(("high", Int64), ("low", Int64))
_ZERO_UUID = (0, 0)


class _MetadataResponseV10(Response):  # type: ignore[misc]  # aiokafka is untyped
    API_KEY = 3
    API_VERSION = 10
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "brokers",
            CompactArray(
                ("node_id", Int32),
                ("host", CompactString("utf-8")),
                ("port", Int32),
                ("rack", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("cluster_id", CompactString("utf-8")),
        ("controller_id", Int32),
        (
            "topics",
            CompactArray(
                ("error_code", Int16),
                ("name", CompactString("utf-8")),
                ("topic_id", _UUID),
                ("is_internal", Boolean),
                (
                    "partitions",
                    CompactArray(
                        ("error_code", Int16),
                        ("partition_index", Int32),
                        ("leader_id", Int32),
                        ("leader_epoch", Int32),
                        ("replica_nodes", CompactArray(Int32)),
                        ("isr_nodes", CompactArray(Int32)),
                        ("offline_replicas", CompactArray(Int32)),
                        ("tags", TaggedFields),
                    ),
                ),
                ("topic_authorized_operations", Int32),
                ("tags", TaggedFields),
            ),
        ),
        ("cluster_authorized_operations", Int32),
        ("tags", TaggedFields),
    )


class _MetadataRequestV10(RequestStruct):  # type: ignore[misc]  # aiokafka is untyped
    FLEXIBLE_VERSION = True
    API_KEY = 3
    API_VERSION = 10
    RESPONSE_TYPE = _MetadataResponseV10
    SCHEMA = Schema(
        (
            "topics",
            CompactArray(
                ("topic_id", _UUID), ("name", CompactString("utf-8")), ("tags", TaggedFields)
            ),
        ),
        ("allow_auto_topic_creation", Boolean),
        ("include_cluster_authorized_operations", Boolean),
        ("include_topic_authorized_operations", Boolean),
        ("tags", TaggedFields),
    )


class _MetadataV10(Request[_MetadataRequestV10]):  # type: ignore[misc]  # untyped
    """Metadata of one named topic; never creates it."""

    API_KEY = 3

    def __init__(self, topic: str) -> None:
        self._topic = topic

    def build(self, request_struct_class: type[_MetadataRequestV10]) -> _MetadataRequestV10:
        return request_struct_class([(_ZERO_UUID, self._topic, {})], False, False, False, {})
