"""Field markers shared by the message types, read by the codec."""

from __future__ import annotations

import dataclasses
from typing import Any

JSON_FIELD = "countersign.json"


def json_field(**kwargs: Any) -> Any:
    """A dataclass field holding a JSON value; the codec stores it as canonical JSON text."""
    metadata = {JSON_FIELD: True}
    return dataclasses.field(metadata=metadata, **kwargs)


def is_json_field(field: dataclasses.Field[Any]) -> bool:
    return bool(field.metadata.get(JSON_FIELD))
