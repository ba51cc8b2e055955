"""The schema catalog: every `.avsc` in `schemas/`, parsed once, indexed by fingerprint.

Files are named by their full Avro name (`countersign.events.RunStarted.avsc`) so that a
schema can refer to a named type defined in another file.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from events.errors import EventsError

DEFAULT_SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


def _fingerprint_table() -> list[int]:
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    return table


_EMPTY = 0xC15D213AA4D7A795
_TABLE = _fingerprint_table()


def rabin_fingerprint(data: bytes) -> bytes:
    """CRC-64-AVRO of the parsing canonical form, little-endian, as single-object encoding wants."""
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return struct.pack("<Q", fp)


@dataclass(frozen=True)
class SchemaFile:
    full_name: str
    path: Path
    raw: dict[str, Any]


def schema_dir() -> Path:
    return Path(os.environ.get("COUNTERSIGN_SCHEMA_DIR", DEFAULT_SCHEMA_DIR))


def load_schema_files(directory: Path | None = None) -> dict[str, SchemaFile]:
    directory = directory or schema_dir()
    if not directory.is_dir():
        raise EventsError(f"schema directory {directory} not found (set COUNTERSIGN_SCHEMA_DIR)")
    files: dict[str, SchemaFile] = {}
    for path in sorted(directory.glob("*.avsc")):
        raw = json.loads(path.read_text())
        full_name = f"{raw['namespace']}.{raw['name']}"
        if path.stem != full_name:
            raise EventsError(f"{path.name} holds {full_name}: name the file after the schema")
        files[full_name] = SchemaFile(full_name, path, raw)
    return files
