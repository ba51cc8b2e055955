"""Avro single-object encoding of every message we write. The only module importing fastavro.

Wire format (Avro spec, "single object encoding"): 0xC3 0x01, the 8-byte little-endian
CRC-64-AVRO fingerprint of the writer schema's parsing canonical form, then the Avro binary
body. The fingerprint says which type (and which version of it) the body is.

Decoding is bounded: a message over `max_message_bytes` is refused before it is read, a
fingerprint not in the catalog is refused, trailing bytes after the record are refused, and a
declared array block count larger than the bytes left is refused before fastavro allocates.
"""

from __future__ import annotations

import dataclasses
import io
import types
import typing
from collections.abc import Callable
from typing import Any

import fastavro
import fastavro.schema

from events.approval import ApprovalRequest
from events.catalog import load_schema_files, rabin_fingerprint
from events.commands import COMMAND_TYPES, Command
from events.envelope import EventEnvelope
from events.errors import DecodeError, EncodeError, MessageTooLarge, UnknownSchema
from events.fields import is_json_field
from events.json import Json, canonical_json
from events.json import loads as json_loads
from events.notices import NOTICE_TYPES, Notice
from events.run_events import RUN_EVENT_TYPES, RunEventPayload

MAGIC = b"\xc3\x01"
HEADER_LEN = 10
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576

_ENVELOPE_FIELDS = tuple(f.name for f in dataclasses.fields(EventEnvelope) if f.name != "payload")

Message = EventEnvelope | Command | Notice

_NAMESPACES: dict[type[Any], str] = {
    **{cls: "countersign.events" for cls in RUN_EVENT_TYPES},
    **{cls: "countersign.commands" for cls in COMMAND_TYPES},
    **{cls: "countersign.approvals" for cls in NOTICE_TYPES},
    ApprovalRequest: "countersign.events",
}


def _json_dump(value: Json) -> str:
    return canonical_json(value)


def _json_load(text: str) -> Json:
    try:
        value: Json = json_loads(text)
    except ValueError as exc:
        raise DecodeError(f"a JSON field does not hold JSON: {exc}") from exc
    return value


@dataclasses.dataclass(frozen=True)
class _FieldCodec:
    name: str
    to_avro: Callable[[Any], Any] | None
    from_avro: Callable[[Any], Any] | None


def _field_codecs(cls: type[Any]) -> tuple[_FieldCodec, ...]:
    module_globals = vars(__import__(cls.__module__, fromlist=["_"]))
    out = []
    for field in dataclasses.fields(cls):
        if is_json_field(field):
            out.append(_FieldCodec(field.name, _json_dump, _json_load))
            continue
        hint = eval(field.type, module_globals) if isinstance(field.type, str) else field.type
        origin = typing.get_origin(hint)
        if origin is tuple:
            out.append(_FieldCodec(field.name, list, tuple))
        elif hint is ApprovalRequest:
            out.append(_FieldCodec(field.name, _record_to_avro, _approval_from_avro))
        elif (
            origin in (typing.Union, types.UnionType)
            or hint in (str, int, float, bool)
            or origin is typing.Literal
        ):
            out.append(_FieldCodec(field.name, None, None))
        else:  # pragma: no cover - a new field type needs a codec rule
            raise TypeError(f"{cls.__name__}.{field.name}: no Avro mapping for {hint!r}")
    return tuple(out)


_CODECS: dict[type[Any], tuple[_FieldCodec, ...]] = {}


def _codecs(cls: type[Any]) -> tuple[_FieldCodec, ...]:
    found = _CODECS.get(cls)
    if found is None:
        found = _CODECS[cls] = _field_codecs(cls)
    return found


def _record_to_avro(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fc in _codecs(type(obj)):
        value = getattr(obj, fc.name)
        out[fc.name] = fc.to_avro(value) if fc.to_avro is not None else value
    return out


def _record_from_avro(cls: type[Any], data: dict[str, Any]) -> Any:
    kwargs = {}
    for fc in _codecs(cls):
        value = data[fc.name]
        kwargs[fc.name] = fc.from_avro(value) if fc.from_avro is not None else value
    return cls(**kwargs)


def _approval_from_avro(data: dict[str, Any]) -> ApprovalRequest:
    request: ApprovalRequest = _record_from_avro(ApprovalRequest, data)
    return request


@dataclasses.dataclass(frozen=True)
class _Entry:
    cls: type[Any]
    parsed: Any
    fingerprint: bytes
    expanded: Any
    has_arrays: bool


class Codec:
    """Encodes and decodes every message type; schemas are parsed once, at construction."""

    def __init__(self, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.max_message_bytes = max_message_bytes
        files = load_schema_files()
        named: dict[str, Any] = {}
        fastavro.parse_schema(files["countersign.events.ApprovalRequest"].raw, named_schemas=named)
        self._by_class: dict[type[Any], _Entry] = {}
        self._by_fingerprint: dict[bytes, _Entry] = {}
        for cls, namespace in _NAMESPACES.items():
            if cls is ApprovalRequest:
                continue
            raw = files[f"{namespace}.{cls.__name__}"].raw
            parsed = fastavro.parse_schema(raw, named_schemas=dict(named))
            # Named types (ApprovalRequest) written out in full, as the spec's canonical form
            # wants: a change to a referenced type must change the fingerprint too.
            expanded = fastavro.schema.expand_schema(parsed)
            canonical = fastavro.schema.to_parsing_canonical_form(expanded)
            entry = _Entry(
                cls,
                parsed,
                rabin_fingerprint(canonical.encode()),
                expanded,
                '"array"' in canonical,
            )
            self._by_class[cls] = entry
            self._by_fingerprint[entry.fingerprint] = entry

    def fingerprint_of(self, cls: type[Any]) -> bytes:
        return self._by_class[cls].fingerprint

    # -- encoding -----------------------------------------------------------------------------

    def encode(self, message: Message) -> bytes:
        """Encode; raises `EncodeError` for values the schema cannot carry (NaN, bad text)."""
        try:
            if isinstance(message, EventEnvelope):
                record = {name: getattr(message, name) for name in _ENVELOPE_FIELDS}
                record.update(_record_to_avro(message.payload))
                entry = self._by_class[type(message.payload)]
            else:
                record = _record_to_avro(message)
                entry = self._by_class[type(message)]
            buffer = io.BytesIO()
            buffer.write(MAGIC)
            buffer.write(entry.fingerprint)
            fastavro.schemaless_writer(buffer, entry.parsed, record)
        except (ValueError, TypeError, UnicodeEncodeError) as exc:
            raise EncodeError(f"cannot encode {type(message).__name__}: {exc}") from exc
        encoded = buffer.getvalue()
        if len(encoded) > self.max_message_bytes:
            raise MessageTooLarge(
                f"{type(message).__name__} of {len(encoded)} bytes is over the "
                f"{self.max_message_bytes}-byte limit its readers enforce"
            )
        return encoded

    # -- decoding -----------------------------------------------------------------------------

    def decode(self, data: bytes) -> Message:
        """Decode any message; raises `DecodeError` (dead-letter it) for anything unreadable."""
        entry, record = self._read(data)
        cls = entry.cls
        if cls in _ENVELOPE_PAYLOADS:
            payload = _record_from_avro(cls, record)
            meta = {name: record[name] for name in _ENVELOPE_FIELDS}
            return EventEnvelope(payload=payload, **meta)
        message: Message = _record_from_avro(cls, record)
        return message

    def decode_event(self, data: bytes) -> EventEnvelope:
        message = self.decode(data)
        if not isinstance(message, EventEnvelope):
            raise DecodeError(f"expected a run event, got {type(message).__name__}")
        return message

    def decode_command(self, data: bytes) -> Command:
        message = self.decode(data)
        if not isinstance(message, COMMAND_TYPES):
            raise DecodeError(f"expected a command, got {type(message).__name__}")
        return message

    def decode_notice(self, data: bytes) -> Notice:
        message = self.decode(data)
        if not isinstance(message, NOTICE_TYPES):
            raise DecodeError(f"expected an approvals-topic message, got {type(message).__name__}")
        return message

    def type_of(self, data: bytes) -> type[Any] | None:
        """The message type named by the header's fingerprint, without decoding the body
        (None when the header is missing or the fingerprint unknown). A restore uses it to
        skip runs it does not need; it proves nothing about the body: decode to validate."""
        if len(data) < HEADER_LEN or data[:2] != MAGIC:
            return None
        entry = self._by_fingerprint.get(bytes(data[2:HEADER_LEN]))
        return None if entry is None else entry.cls

    def _read(self, data: bytes) -> tuple[_Entry, dict[str, Any]]:
        if len(data) > self.max_message_bytes:
            raise MessageTooLarge(
                f"message of {len(data)} bytes is over the {self.max_message_bytes}-byte limit"
            )
        if len(data) < HEADER_LEN or data[:2] != MAGIC:
            raise DecodeError("not an Avro single-object message (missing C3 01 header)")
        entry = self._by_fingerprint.get(bytes(data[2:HEADER_LEN]))
        if entry is None:
            raise UnknownSchema(f"unknown schema fingerprint {data[2:HEADER_LEN].hex()}")
        body = io.BytesIO(data)
        body.seek(HEADER_LEN)
        if entry.has_arrays:
            _check_array_counts(entry.expanded, data, HEADER_LEN)
        try:
            record = fastavro.schemaless_reader(body, entry.parsed, None)
        except Exception as exc:  # fastavro raises many types for bad bytes; all mean poison
            raise DecodeError(
                f"undecodable {entry.cls.__name__}: {type(exc).__name__}: {exc}"
            ) from exc
        if body.tell() != len(data):
            raise DecodeError(
                f"{len(data) - body.tell()} trailing bytes after a {entry.cls.__name__} record"
            )
        if not isinstance(record, dict):  # pragma: no cover - our schemas are all records
            raise DecodeError("decoded value is not a record")
        return entry, record


_ENVELOPE_PAYLOADS: frozenset[type[RunEventPayload]] = frozenset(RUN_EVENT_TYPES)


def _check_array_counts(schema: Any, data: bytes, start: int) -> None:
    """Walk the body once without allocating, refusing any block count the bytes cannot hold.

    fastavro allocates per the declared count before it reads the items; every item in our
    schemas takes at least one byte, so a count above the bytes left is always a lie.
    """
    try:
        _skip(schema, data, start)
    except IndexError as exc:
        raise DecodeError("message ends inside a record") from exc


def _read_long(data: bytes, pos: int) -> tuple[int, int]:
    shift = 0
    acc = 0
    while True:
        byte = data[pos]
        pos += 1
        acc |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift > 63:
            raise DecodeError("varint longer than 10 bytes")
    return (acc >> 1) ^ -(acc & 1), pos


def _skip(schema: Any, data: bytes, pos: int) -> int:
    if isinstance(schema, list):
        index, pos = _read_long(data, pos)
        if not 0 <= index < len(schema):
            raise DecodeError(f"union branch {index} out of range")
        return _skip(schema[index], data, pos)
    kind = schema if isinstance(schema, str) else schema["type"]
    if kind == "null":
        return pos
    if kind == "boolean":
        return pos + 1
    if kind in ("int", "long"):
        return _read_long(data, pos)[1]
    if kind == "double":
        return pos + 8
    if kind == "float":
        return pos + 4
    if kind in ("string", "bytes"):
        length, pos = _read_long(data, pos)
        if length < 0 or length > len(data) - pos:
            raise DecodeError(f"declared length {length} exceeds the {len(data) - pos} bytes left")
        return pos + length
    if kind == "record":
        for field in schema["fields"]:
            pos = _skip(field["type"], data, pos)
        return pos
    if kind == "array":
        while True:
            count, pos = _read_long(data, pos)
            if count == 0:
                return pos
            if count < 0:
                count = -count
                _size, pos = _read_long(data, pos)
            if count > len(data) - pos:
                raise DecodeError(
                    f"array block declares {count} items but only {len(data) - pos} bytes are left"
                )
            for _ in range(count):
                pos = _skip(schema["items"], data, pos)
    raise DecodeError(f"schema type {kind!r} not supported by the bounds check")  # pragma: no cover
