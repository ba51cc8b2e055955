"""Upcasters: pure functions that carry a retired message shape to its successor. Pure.

A breaking change (a type renamed, a field renamed or re-typed, values re-coded) cannot go
through Avro's schema resolution. Instead, the old writer schema stays in the catalog and an
upcaster registered for (old full name, old version) turns the record as that version wrote
it into a record of `target` version `target_version`; chains apply in order, and Avro's
resolution then carries the result to today's schema of the target. Applied at decode only:
the log keeps the original bytes, so the hash chain (sha256 of those bytes) still verifies.

A run event's record holds its envelope fields (event_id, run_id, seq, ...) beside the
payload's, so an upcaster sees and returns both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]


@dataclass(frozen=True)
class Upcaster:
    source: str
    """Full Avro name of the retired shape."""
    version: int
    """The version of `source` it reads."""
    target: str
    target_version: int
    fn: Callable[[Mapping[str, Any]], Record]
    """Must be pure (no clock, no I/O): a replay must see the same record every time."""


UPCASTERS: tuple[Upcaster, ...] = ()
"""This release's upcasters (none yet: release 1 is the first)."""
