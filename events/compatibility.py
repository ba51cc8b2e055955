"""Can a reader schema read what a writer schema wrote? Avro's resolution rules as the Apache
Avro project's own checker implements them (`avro.compatibility`, a port of Java's
SchemaCompatibility). The only module that imports `avro`. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import avro.compatibility
import avro.schema


def read_problems(reader: Mapping[str, Any], writer: Mapping[str, Any]) -> list[str]:
    """Why `reader` cannot read data written with `writer` (self-contained schemas); empty
    when it can."""
    try:
        parsed_reader = avro.schema.parse(json.dumps(reader))
        parsed_writer = avro.schema.parse(json.dumps(writer))
    except Exception as exc:  # avro raises SchemaParseException, but also KeyError, TypeError
        return [f"not a valid Avro schema: {type(exc).__name__}: {exc}"]
    checker = avro.compatibility.ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(parsed_reader, parsed_writer)
    if result.compatibility is avro.compatibility.SchemaCompatibilityType.compatible:
        return []
    kinds = sorted(kind.value for kind in result.incompatibilities)
    return [
        f"{', '.join(kinds)} at {', '.join(sorted(result.locations))}: "
        + "; ".join(sorted(str(message) for message in result.messages))
    ]
