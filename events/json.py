"""JSON values as they travel inside events (tool arguments, results, run input and output).

Avro has no JSON type, so the codec carries these as canonical JSON strings; in Python they
are plain dicts, lists and scalars.
"""

from __future__ import annotations

import hashlib
import json
from typing import TypeAlias

Json: TypeAlias = "bool | int | float | str | list[Json] | dict[str, Json] | None"
JsonObject: TypeAlias = "dict[str, Json]"


def canonical_json(value: Json) -> str:
    """One spelling per value: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def digest(value: Json) -> str:
    """sha256 of the canonical JSON, hex; used to match recorded calls on replay."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def _refuse_constant(name: str) -> Json:
    raise ValueError(f"{name} is not JSON")


def loads(text: str) -> Json:
    """Strict JSON: NaN and Infinity are refused (PostgreSQL's jsonb refuses them too)."""
    value: Json = json.loads(text, parse_constant=_refuse_constant)
    return value
