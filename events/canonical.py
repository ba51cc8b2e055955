"""Avro's Parsing Canonical Form and its CRC-64-AVRO fingerprint, and inlining named types. Pure.

The fingerprint in every single-object message is computed over the canonical form with named
types written out in full where first used (Avro spec, "Parsing Canonical Form for Schemas"),
so a change to a referenced type (ApprovalRequest) changes the fingerprint of every message
that carries it.
"""

from __future__ import annotations

import copy
import json
import struct
from collections.abc import Mapping
from typing import Any

PRIMITIVES = frozenset(("null", "boolean", "int", "long", "float", "double", "bytes", "string"))
NAMED = frozenset(("record", "error", "enum", "fixed"))
_KEPT = ("name", "type", "fields", "symbols", "items", "values", "size")

_EMPTY = 0xC15D213AA4D7A795


def _fingerprint_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY & -(fp & 1))
        table.append(fp)
    return table


_TABLE = _fingerprint_table()


def rabin_fingerprint(data: bytes) -> bytes:
    """CRC-64-AVRO of the parsing canonical form, little-endian, as single-object encoding wants."""
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return struct.pack("<Q", fp)


def full_name(schema: Mapping[str, Any], namespace: str = "") -> str:
    name = str(schema["name"])
    if "." in name:
        return name
    space = schema.get("namespace", namespace)
    return f"{space}.{name}" if space else name


def canonical_form(schema: Any) -> str:
    """The Parsing Canonical Form: full names, only the attributes that shape the bytes, in
    the spec's order, no whitespace; a named type is written out once, then named."""
    return json.dumps(_canonical(schema, "", set()), separators=(",", ":"))


def fingerprint(schema: Any) -> bytes:
    return rabin_fingerprint(canonical_form(schema).encode())


def _canonical(schema: Any, namespace: str, seen: set[str]) -> Any:
    if isinstance(schema, list):
        return [_canonical(branch, namespace, seen) for branch in schema]
    if isinstance(schema, str):
        if schema in PRIMITIVES or "." in schema or not namespace:
            return schema
        return f"{namespace}.{schema}"
    kind = schema["type"]
    if not isinstance(kind, str):
        return _canonical(kind, namespace, seen)
    if kind in PRIMITIVES:
        return kind
    out: dict[str, Any] = {}
    if kind in NAMED:
        name = full_name(schema, namespace)
        if name in seen:
            return name
        seen.add(name)
        namespace = name.rpartition(".")[0]
        out["name"] = name
    out["type"] = "record" if kind == "error" else kind
    for key in _KEPT[2:]:
        if key not in schema:
            continue
        value = schema[key]
        if key == "fields":
            value = [
                {"name": f["name"], "type": _canonical(f["type"], namespace, seen)} for f in value
            ]
        elif key in ("items", "values"):
            value = _canonical(value, namespace, seen)
        out[key] = value
    return out


def inline_named(schema: Any, named: Mapping[str, Any]) -> Any:
    """`schema` with each reference to a type in `named` (full name → its schema) replaced by
    that type's definition where first used: a self-contained schema, as a registry or a
    history file keeps it."""
    seen: set[str] = set()

    def walk(node: Any, namespace: str) -> Any:
        if isinstance(node, list):
            return [walk(branch, namespace) for branch in node]
        if isinstance(node, str):
            name = node if "." in node or not namespace else f"{namespace}.{node}"
            if node not in PRIMITIVES and name in named and name not in seen:
                seen.add(name)
                return walk(copy.deepcopy(dict(named[name])), namespace)
            return node
        node = dict(node)
        kind = node["type"]
        if kind in NAMED:
            seen.add(full_name(node, namespace))
            namespace = full_name(node, namespace).rpartition(".")[0]
        if isinstance(kind, dict | list):
            node["type"] = walk(kind, namespace)
        if "fields" in node:
            node["fields"] = [{**f, "type": walk(f["type"], namespace)} for f in node["fields"]]
        for key in ("items", "values"):
            if key in node:
                node[key] = walk(node[key], namespace)
        return node

    return walk(schema, "")
