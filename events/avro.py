"""fastavro behind three typed functions: the only module that imports it.

Schemas are parsed once into an opaque `AvroSchema`; bodies are written, and read with Avro's
schema resolution (writer schema → reader schema) when the two differ. Callers bound the
bytes first (`events.bounds`): fastavro trusts what it reads.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fastavro

from events.errors import DecodeError


class InvalidSchema(ValueError):
    """fastavro cannot parse the schema."""


@dataclass(frozen=True, eq=False)
class AvroSchema:
    """A parsed schema. `raw` is the self-contained JSON it was parsed from."""

    raw: Mapping[str, Any]
    parsed: Any


def parse(raw: Mapping[str, Any]) -> AvroSchema:
    try:
        parsed = fastavro.parse_schema(dict(raw), named_schemas={})
    except Exception as exc:  # fastavro raises SchemaParseError, ValueError, KeyError, ...
        raise InvalidSchema(f"{type(exc).__name__}: {exc}") from exc
    return AvroSchema(raw, parsed)


def write(schema: AvroSchema, record: Mapping[str, Any]) -> bytes:
    """The Avro binary body of `record`; raises what fastavro raises for a bad value."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema.parsed, record)
    return buffer.getvalue()


def read(
    data: bytes, start: int, writer: AvroSchema, reader: AvroSchema | None
) -> tuple[dict[str, Any], int]:
    """The record at `data[start:]` and the position after it. Resolves `writer`'s record to
    `reader`'s when one is given."""
    body = io.BytesIO(data)
    body.seek(start)
    try:
        record = fastavro.schemaless_reader(
            body, writer.parsed, None if reader is None else reader.parsed
        )
    except Exception as exc:  # fastavro raises many types for bad bytes; all mean poison
        raise DecodeError(f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(record, dict):
        raise DecodeError("the body is not a record")
    return record, body.tell()
