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


# Built once: json.dumps/loads with non-default options build a new encoder/decoder per
# call, which was a third of the cost of replaying a run.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: Json) -> str:
    """One spelling per value: sorted keys, no spaces, UTF-8 kept as is."""
    return _ENCODER.encode(value)


def digest(value: Json) -> str:
    """sha256 of the canonical JSON, hex; used to match recorded calls on replay."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def _refuse_constant(name: str) -> Json:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def loads(text: str) -> Json:
    """Strict JSON: NaN and Infinity are refused (PostgreSQL's jsonb refuses them too)."""
    value: Json = _DECODER.decode(text)
    return value
