"""Field markers shared by the message types, read by the codec."""

from __future__ import annotations

import dataclasses
from typing import Any

JSON_FIELD = "countersign.json"
CAP = "countersign.cap"


def json_field(**kwargs: Any) -> Any:
    """A dataclass field holding a JSON value; the codec stores it as canonical JSON text."""
    metadata = {JSON_FIELD: True}
    return dataclasses.field(metadata=metadata, **kwargs)


def is_json_field(field: dataclasses.Field[Any]) -> bool:
    return bool(field.metadata.get(JSON_FIELD))


def capped_field(limit: int, **kwargs: Any) -> Any:
    """A string field of a command with its own length cap (characters), for fields the
    shared table (`events.limits.COMMAND_STRING_CAPS`) does not name."""
    return dataclasses.field(metadata={CAP: limit}, **kwargs)


def cap_of(field: dataclasses.Field[Any]) -> int | None:
    cap = field.metadata.get(CAP)
    return None if cap is None else int(cap)
