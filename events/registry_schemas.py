"""Writer schemas from a schema registry, by id, judged before any record uses them. Pure.

Registry clients (Confluent's serializers, Apicurio's, Karapace's) frame a record as 0x00 and a
4-byte big-endian schema id. An I/O adapter fetches the schema text for an id; this table
decides whether to read records with it: it must be a schema of one of our types, small and
shallow, and today's reader schema must be able to read it by Avro's resolution rules.
Refusals are remembered too, so each record that uses a refused id is refused with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from events import avro
from events.bounds import compile_walk
from events.canonical import canonical_form, fingerprint, full_name
from events.compatibility import read_problems
from events.errors import DecodeError, SchemaRefused, UnknownSchema
from events.json import JsonRefused, check_depth, loads
from events.readers import MessageType, Writer

MAX_SCHEMA_CHARS = 65_536
"""Our largest schema is under 8 kB; a registry's answer beyond this is refused unread."""
MAX_SCHEMA_DEPTH = 32
MAX_SCHEMAS = 1_024
"""Ids remembered (learned or refused); the oldest are forgotten past this."""


class RegistrySchemas:
    def __init__(self, types: Mapping[str, MessageType], known: Mapping[bytes, Writer]) -> None:
        self._types = types
        self._known = known
        self._by_id: dict[int, Writer | str] = {}

    def missing(self, values: Iterable[bytes]) -> set[int]:
        ids = set()
        for value in values:
            if len(value) >= 5 and value[0] == 0:
                schema_id = int.from_bytes(value[1:5], "big")
                if schema_id not in self._by_id:
                    ids.add(schema_id)
        return ids

    def writer(self, schema_id: int) -> Writer:
        found = self._by_id.get(schema_id)
        if found is None:
            raise UnknownSchema(f"schema registry id {schema_id} is not loaded")
        if isinstance(found, str):
            raise SchemaRefused(f"schema registry id {schema_id}: {found}")
        return found

    def refuse(self, schema_id: int, reason: str) -> None:
        self._remember(schema_id, reason[:500])

    def learn(self, schema_id: int, text: str) -> None:
        try:
            writer = self._judge(text)
        except SchemaRefused as exc:
            self.refuse(schema_id, str(exc))
            raise
        self._remember(schema_id, writer)

    def _remember(self, schema_id: int, entry: Writer | str) -> None:
        self._by_id.pop(schema_id, None)
        while len(self._by_id) >= MAX_SCHEMAS:
            del self._by_id[next(iter(self._by_id))]
        self._by_id[schema_id] = entry

    def _judge(self, text: str) -> Writer:
        if len(text) > MAX_SCHEMA_CHARS:
            raise SchemaRefused(f"a schema of {len(text)} characters is over {MAX_SCHEMA_CHARS}")
        try:
            check_depth(text, MAX_SCHEMA_DEPTH)
            raw = loads(text, max_chars=MAX_SCHEMA_CHARS)
        except JsonRefused as exc:
            raise SchemaRefused(f"not a schema: {exc}") from exc
        if not isinstance(raw, dict) or raw.get("type") not in ("record", "error"):
            raise SchemaRefused("not a record schema")
        name = full_name(raw) if isinstance(raw.get("name"), str) else "?"
        target = self._types.get(name)
        if target is None:
            raise SchemaRefused(f"{name} is not one of our message types")
        return self._writer(raw, target)

    def _writer(self, raw: dict[str, Any], target: MessageType) -> Writer:
        problems = read_problems(target.version.raw, raw)
        if problems:
            raise SchemaRefused(f"today's {target.name} cannot read it: {problems[0]}")
        try:
            same = self._known.get(fingerprint(raw))
            if same is not None and canonical_form(raw) == canonical_form(same.schema.raw):
                return same
            schema = avro.parse(raw)
            walk = compile_walk(schema.parsed)
        except (avro.InvalidSchema, DecodeError, KeyError, TypeError, ValueError) as exc:
            raise SchemaRefused(f"unreadable schema: {exc}") from exc
        return Writer(target.name, 0, 0, schema, walk, target, target.schema)
