"""What the codec holds per schema: today's message types, and every writer schema it can read
with the walk, resolution and upcasters that carry its bytes to a current type. Pure.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping
from typing import Any

from events import avro
from events.bounds import Walk, compile_walk
from events.building import Build, compile_builder
from events.catalog import COMMANDS, EVENTS, Catalog, SchemaVersion
from events.envelope import EventEnvelope
from events.limits import COMMAND_STRING_CAPS, MAX_COMMAND_JSON_CHARS, MAX_JSON_CHARS
from events.reading import Read, compile_reader
from events.records import RecordMapper
from events.upcasting import Upcaster


@dataclasses.dataclass(frozen=True, eq=False)
class MessageType:
    """A type this release reads into and writes: its class and today's schema."""

    name: str
    cls: type[Any]
    schema: avro.AvroSchema
    version: SchemaVersion
    mapper: RecordMapper
    envelope: bool


@dataclasses.dataclass(frozen=True, eq=False)
class Writer:
    """A schema some release (or a registry client) wrote with, and how to read its bytes."""

    name: str
    version: int
    release: int
    schema: avro.AvroSchema
    walk: Walk
    target: MessageType
    reader: avro.AvroSchema | None
    """Today's schema when it differs from the writer's (Avro resolution), else None."""
    upcasters: tuple[Upcaster, ...] = ()
    via: avro.AvroSchema | None = None
    """With upcasters: the schema of the shape they produce."""
    current: bool = False
    """The writer schema is today's: no resolution, no upcaster."""

    @functools.cached_property
    def read(self) -> Read | None:
        """The walk and the read in one pass (`events.reading`) for a current schema,
        compiled when first needed: a codec is built in every process and command, and
        compiling all its schemas would triple what that costs."""
        return compile_reader(self.schema.parsed) if self.current else None

    @functools.cached_property
    def fused(self) -> tuple[Read, Build] | None:
        """For a current schema: the read as a tuple of the record's values, and the message
        built from them (`events.building`), when the schema has every field it needs."""
        if not self.current:
            return None
        parsed = self.schema.parsed
        envelope = EventEnvelope if self.target.envelope else None
        names = [f["name"] for f in parsed["fields"]]
        build = compile_builder(names, self.target.mapper, envelope)
        return None if build is None else (compile_reader(parsed, values=True), build)


def mapper_for(cls: type[Any], name: str) -> RecordMapper:
    if name.startswith(COMMANDS + "."):
        return RecordMapper(cls, json_chars=MAX_COMMAND_JSON_CHARS, string_caps=COMMAND_STRING_CAPS)
    return RecordMapper(cls, json_chars=MAX_JSON_CHARS)


def message_types(catalog: Catalog) -> dict[str, MessageType]:
    out = {}
    for name, cls in catalog.types.items():
        version = catalog.version_of(name)
        schema = avro.parse(version.raw)
        envelope = name.startswith(EVENTS + ".")  # run events travel in an envelope
        out[name] = MessageType(name, cls, schema, version, mapper_for(cls, name), envelope)
    return out


def writer_for(
    catalog: Catalog, types: Mapping[str, MessageType], version: SchemaVersion
) -> Writer:
    schema = avro.parse(version.raw)
    walk = compile_walk(schema.parsed)
    chain = tuple(catalog.upcast_chain(version.name, version.version))
    if not chain:
        target = types[version.name]
        current = version.fingerprint == target.version.fingerprint
        reader = None if current else target.schema
        return Writer(
            version.name, version.version, version.release, schema, walk, target, reader,
            current=current,
        )  # fmt: skip
    last = chain[-1]
    target = types[last.target]
    via = catalog.find(last.target, last.target_version)
    assert via is not None  # the catalog checked it
    reader = None if via.fingerprint == target.version.fingerprint else target.schema
    return Writer(
        version.name, version.version, version.release, schema, walk, target, reader,
        chain, avro.parse(via.raw),
    )  # fmt: skip


def index_classes(types: Iterable[MessageType]) -> dict[type[Any], MessageType]:
    """Each type's class, and the classes it extends: a later release may register a subclass
    of an older message class (fields added) and still encode instances of the base."""
    index: dict[type[Any], MessageType] = {t.cls: t for t in types}
    for message_type in list(index.values()):
        for base in message_type.cls.__mro__[1:]:
            if dataclasses.is_dataclass(base) and base not in index:
                index[base] = message_type
    return index
