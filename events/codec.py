"""The codec: every message we write or read, through one bounded, strict boundary. Pure.

Wire formats:
- Avro single-object encoding (what Countersign writes): 0xC3 0x01, the 8-byte little-endian
  CRC-64-AVRO fingerprint of the writer schema's parsing canonical form, the Avro body. The
  fingerprint names the type and the released version that wrote it (`events.catalog`).
- Confluent's schema-registry framing (what registry clients write; accepted when enabled):
  0x00, a 4-byte big-endian schema id, the Avro body. The codec stays pure: the writer
  schema for an id is looked up by an I/O adapter and handed to `learn` before decoding.

Decoding, in order: size limit; header; the writer schema (unknown → `UnknownSchema`, or
`NewerSchema` when the record's `countersign-schema` header proves a newer release wrote it);
the bounds walk over the body following the *writer* schema (`events.bounds`); no trailing
bytes; fastavro resolves writer → today's reader (or upcasters carry a retired shape to a
current one); fields are checked (strict JSON, command string caps) as the dataclass is built.
Every failure is a `DecodeError`. Encoding refuses what decoding would refuse.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from events import avro
from events.bounds import walk
from events.catalog import Catalog
from events.checkpoints import Checkpoint
from events.commands import COMMAND_TYPES, Command
from events.envelope import EventEnvelope
from events.errors import DecodeError, EncodeError, MessageTooLarge, UnknownSchema
from events.notices import NOTICE_TYPES, Notice
from events.readers import MessageType, Writer, index_classes, mapper_for, message_types, writer_for
from events.reading import read
from events.records import RecordMapper
from events.registry import AgentRegistered
from events.registry_schemas import RegistrySchemas
from events.schema_header import SCHEMA_HEADER, SchemaClaim, newer_or_unknown

MAGIC = b"\xc3\x01"
HEADER_LEN = 10
REGISTRY_MAGIC = 0
REGISTRY_HEADER_LEN = 5
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576

_ENVELOPE_FIELDS = tuple(f.name for f in dataclasses.fields(EventEnvelope) if f.name != "payload")

Message = EventEnvelope | Command | Notice | Checkpoint | AgentRegistered
Headers = Sequence[tuple[str, bytes]]


class Codec:
    """Encodes and decodes every message type of one release (its `Catalog`); schemas are
    parsed once, at construction. `registry_format=True` also reads Confluent-framed records
    whose writer schema was handed to `learn` (see `registry_ids`)."""

    def __init__(
        self,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        catalog: Catalog | None = None,
        registry_format: bool = False,
    ) -> None:
        self.max_message_bytes = max_message_bytes
        catalog = catalog or Catalog()
        self.catalog = catalog
        self.release = catalog.release
        self._types = message_types(catalog)
        self._by_class = index_classes(self._types.values())
        self._encoders: dict[type[Any], tuple[MessageType, RecordMapper]] = {}
        self._by_fingerprint = {
            v.fingerprint: writer_for(catalog, self._types, v) for v in catalog.versions
        }
        self._claims: dict[bytes, tuple[str, bytes]] = {}
        self.registry: RegistrySchemas | None = (
            RegistrySchemas(self._types, self._by_fingerprint) if registry_format else None
        )

    def fingerprint_of(self, cls: type[Any]) -> bytes:
        return self._by_class[cls].version.fingerprint

    def writer_schema(self, fingerprint: bytes) -> Mapping[str, Any] | None:
        """The released schema (self-contained) that `fingerprint` names, if this release
        reads it: what a file of exported events embeds (`events.history_file`)."""
        writer = self._by_fingerprint.get(bytes(fingerprint))
        return None if writer is None else writer.schema.raw

    # -- encoding -----------------------------------------------------------------------------

    def encode(self, message: Message) -> bytes:
        """Encode; raises `EncodeError` for any value the schema cannot carry or a reader would
        refuse (NaN, a lone surrogate, JSON nested too deep, a negative time, an over-long
        command field), `MessageTooLarge` over the record limit, and nothing else."""
        try:
            target, mapper, record = self._record_of(message)
            encoded = MAGIC + target.version.fingerprint + avro.write(target.schema, record)
        except EncodeError:
            raise
        except Exception as exc:  # fastavro and the JSON encoder raise many types; all mean "no"
            raise EncodeError(f"cannot encode {type(message).__name__}: {exc}") from exc
        if len(encoded) > self.max_message_bytes:
            raise MessageTooLarge(
                f"{type(message).__name__} of {len(encoded)} bytes is over the "
                f"{self.max_message_bytes}-byte limit its readers enforce"
            )
        try:  # never write what a reader (ours, later) would refuse
            self._check_written(target, mapper, record, encoded)
        except DecodeError as exc:
            raise EncodeError(f"cannot encode {type(message).__name__}: {exc}") from exc
        return encoded

    def _check_written(
        self, target: MessageType, mapper: RecordMapper, record: dict[str, Any], encoded: bytes
    ) -> None:
        """What `decode` would refuse in `encoded`, at a third of its cost: the bounds walk
        over the bytes (every rule on them: negative times, 32-bit ints, finite doubles), then
        the field rules on the record just written, which fastavro reads back unchanged from
        its own writing with the same schema. A base class's instance (a later release's type
        registered over it) is checked by decoding: its record lacks the fields Avro defaults."""
        writer = self._by_fingerprint[target.version.fingerprint]
        if mapper is not target.mapper:
            self.decode(encoded)
            return
        walk(writer.walk, encoded, HEADER_LEN)
        mapper.accept(record)

    def _record_of(self, message: Message) -> tuple[MessageType, RecordMapper, dict[str, Any]]:
        if isinstance(message, EventEnvelope):
            target, mapper = self._encoder(type(message.payload))
            record = {name: getattr(message, name) for name in _ENVELOPE_FIELDS}
            record.update(mapper.to_avro(message.payload))
            return target, mapper, record
        target, mapper = self._encoder(type(message))
        if target.envelope:
            raise EncodeError(f"a {type(message).__name__} travels inside an EventEnvelope")
        return target, mapper, mapper.to_avro(message)

    def _encoder(self, cls: type[Any]) -> tuple[MessageType, RecordMapper]:
        found = self._encoders.get(cls)
        if found is None:
            target = self._by_class.get(cls)
            if target is None:
                raise EncodeError(f"{cls.__name__} is not a message type of this release")
            mapper = target.mapper if target.cls is cls else mapper_for(cls, target.name)
            found = self._encoders[cls] = (target, mapper)
        return found

    def schema_header(self, encoded: bytes) -> tuple[str, bytes]:
        """The record header to write beside `encoded` (`countersign-schema`): which schema,
        version and release wrote it, so an older release can tell "newer" from "corrupt"."""
        fingerprint = bytes(encoded[2:HEADER_LEN])
        header = self._claims.get(fingerprint)
        if header is None:  # made once a schema: every record of a step carries one
            writer = self._by_fingerprint[fingerprint]
            claim = SchemaClaim(writer.name, writer.version, writer.release, fingerprint)
            header = self._claims[fingerprint] = (SCHEMA_HEADER, claim.encode())
        return header

    # -- decoding -----------------------------------------------------------------------------

    def decode(self, data: bytes, headers: Headers = ()) -> Message:
        """Decode any message; raises `DecodeError` (dead-letter it) for anything unreadable,
        `NewerSchema` (a DecodeError) for a message a newer release wrote."""
        # The usual message inline (today's schema, read in one pass): the general path's
        # steps, without its five calls. Anything else, or anything wrong, takes the general
        # path, which says what is wrong.
        if type(data) is bytes and data[:2] == MAGIC and len(data) <= self.max_message_bytes:
            usual = self._by_fingerprint.get(data[2:HEADER_LEN])
            if usual is not None and usual.fused is not None:
                values, end = read(usual.fused[0], data, HEADER_LEN)
                if end == len(data):
                    try:
                        built: Message = usual.fused[1](values)
                        return built
                    except (KeyError, TypeError, ValueError):
                        pass
        writer, start = self._writer_of(data, headers)
        record, end = self._body(writer, data, start)
        if end != len(data):
            raise DecodeError(f"{len(data) - end} trailing bytes after a {writer.name} record")
        return self._message(writer, record)

    def decode_event_body(
        self, fingerprint: bytes, data: bytes, start: int
    ) -> tuple[EventEnvelope, int]:
        """A run event whose Avro body, written with `fingerprint`'s schema, starts at `start`
        in `data` (one of many records, as in a history file): the event, checked as `decode`
        checks it, and where its body ends. `UnknownSchema` for a fingerprint this release
        does not read."""
        writer = self._by_fingerprint.get(bytes(fingerprint))
        if writer is None:
            raise UnknownSchema(f"no schema with fingerprint {bytes(fingerprint).hex()}")
        record, end = self._body(writer, data, start)
        if HEADER_LEN + end - start > self.max_message_bytes:
            raise MessageTooLarge(f"a record of {end - start} bytes is over the record limit")
        message = self._message(writer, record)
        if not isinstance(message, EventEnvelope):
            raise DecodeError(f"expected a run event, got {writer.name}")
        return message, end

    def _message(self, writer: Writer, record: dict[str, Any] | tuple[Any, ...]) -> Message:
        target = writer.target
        try:
            if isinstance(record, tuple):  # the values `_body` read for the writer's builder
                assert writer.fused is not None
                built: Message = writer.fused[1](record)
                return built
            if not target.envelope:
                message: Message = target.mapper.from_avro(record)
                return message
            payload = target.mapper.from_avro(record)
            meta = {name: record[name] for name in _ENVELOPE_FIELDS}
            return EventEnvelope(payload=payload, **meta)
        except (KeyError, TypeError, ValueError) as exc:  # an upcaster's record that lacks a field
            raise DecodeError(f"{writer.name}: {type(exc).__name__}: {exc}") from exc

    def decode_event(self, data: bytes, headers: Headers = ()) -> EventEnvelope:
        message = self.decode(data, headers)
        if not isinstance(message, EventEnvelope):
            raise DecodeError(f"expected a run event, got {type(message).__name__}")
        return message

    def decode_command(self, data: bytes, headers: Headers = ()) -> Command:
        message = self.decode(data, headers)
        if not isinstance(message, COMMAND_TYPES):
            raise DecodeError(f"expected a command, got {type(message).__name__}")
        return message

    def decode_notice(self, data: bytes, headers: Headers = ()) -> Notice:
        message = self.decode(data, headers)
        if not isinstance(message, NOTICE_TYPES):
            raise DecodeError(f"expected an approvals-topic message, got {type(message).__name__}")
        return message

    def decode_checkpoint(self, data: bytes, headers: Headers = ()) -> Checkpoint:
        message = self.decode(data, headers)
        if not isinstance(message, Checkpoint):
            raise DecodeError(f"expected a checkpoint, got {type(message).__name__}")
        return message

    def decode_registration(self, data: bytes, headers: Headers = ()) -> AgentRegistered:
        message = self.decode(data, headers)
        if not isinstance(message, AgentRegistered):
            raise DecodeError(f"expected an agent registration, got {type(message).__name__}")
        return message

    def type_of(self, data: bytes) -> type[Any] | None:
        """The message type named by the header's fingerprint, without decoding the body
        (None when the header is missing or the fingerprint unknown). A restore uses it to
        skip runs it does not need; it proves nothing about the body: decode to validate."""
        if len(data) < HEADER_LEN or data[:2] != MAGIC:
            return None
        writer = self._by_fingerprint.get(bytes(data[2:HEADER_LEN]))
        return None if writer is None else writer.target.cls

    # -- schema-registry framing --------------------------------------------------------------

    def registry_ids(self, values: Iterable[bytes]) -> set[int]:
        """Schema ids of registry-framed `values` whose writer schema is not known yet: look
        each up (GET /schemas/ids/{id}) and hand it to `learn` before decoding them."""
        if self.registry is None:
            return set()
        return self.registry.missing(values)

    def refuse(self, schema_id: int, reason: str) -> None:
        """Remember that the registry has no usable schema for `schema_id` (e.g. 404)."""
        if self.registry is not None:
            self.registry.refuse(schema_id, reason)

    def learn(self, schema_id: int, schema_text: str) -> None:
        """Take the registry's writer schema for `schema_id`; raises `SchemaRefused` (and
        remembers it, so its records are refused with the reason) unless it is a schema of
        one of our types that today's reader schema can read."""
        if self.registry is None:
            raise UnknownSchema("this codec does not read the schema-registry format")
        self.registry.learn(schema_id, schema_text)

    # -- internals ----------------------------------------------------------------------------

    def _writer_of(self, data: bytes, headers: Headers) -> tuple[Writer, int]:
        if len(data) > self.max_message_bytes:
            raise MessageTooLarge(
                f"message of {len(data)} bytes is over the {self.max_message_bytes}-byte limit"
            )
        if len(data) >= HEADER_LEN and data[:2] == MAGIC:
            fingerprint = bytes(data[2:HEADER_LEN])
            writer = self._by_fingerprint.get(fingerprint)
            if writer is None:
                raise newer_or_unknown(fingerprint, headers, self.release)
            return writer, HEADER_LEN
        if self.registry is not None and len(data) >= REGISTRY_HEADER_LEN and data[0] == 0:
            return self.registry.writer(int.from_bytes(data[1:REGISTRY_HEADER_LEN], "big")), 5
        raise DecodeError("not an Avro single-object message (missing C3 01 header)")

    def _body(
        self, writer: Writer, data: bytes, start: int
    ) -> tuple[dict[str, Any] | tuple[Any, ...], int]:
        """The record whose body starts at `start`, bounds-walked, and where it ends: in one
        pass when the writer schema is today's (as the tuple of its values when the writer
        has a builder, `events.building`), else the walk then fastavro's resolution."""
        if type(data) is bytes and writer.fused is not None:
            values: tuple[Any, ...]
            values, end = read(writer.fused[0], data, start)
            return values, end
        if writer.read is not None and type(data) is bytes:
            record, end = read(writer.read, data, start)
            if not isinstance(record, dict):
                raise DecodeError("the body is not a record")
            return record, end
        end = walk(writer.walk, data, start)
        return self._read(writer, data, start), end

    def _read(self, writer: Writer, data: bytes, start: int) -> dict[str, Any]:
        try:
            if not writer.upcasters:
                return avro.read(data, start, writer.schema, writer.reader)[0]
            record, _ = avro.read(data, start, writer.schema, None)
            return _upcast(writer, record)
        except DecodeError as exc:
            raise DecodeError(
                f"undecodable {writer.name} (version {writer.version}): {exc}"
            ) from exc


def _upcast(writer: Writer, record: dict[str, Any]) -> dict[str, Any]:
    """Apply the writer's upcasters, then let Avro carry their shape to today's schema (the
    re-encoding is in memory only: the log's bytes, and so the hash chain, are untouched)."""
    for upcaster in writer.upcasters:
        try:
            record = upcaster.fn(record)
        except (KeyError, TypeError, ValueError) as exc:
            raise DecodeError(
                f"upcaster {upcaster.source}@{upcaster.version}: {type(exc).__name__}: {exc}"
            ) from exc
    assert writer.via is not None
    try:
        body = avro.write(writer.via, record)
    except Exception as exc:  # the upcaster's record does not fit its target schema
        raise DecodeError(f"an upcast record does not fit its schema: {exc}") from exc
    return avro.read(body, 0, writer.via, writer.reader)[0]
